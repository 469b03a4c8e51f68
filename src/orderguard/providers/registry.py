"""Every provider package orderguard knows, and what the rest of it asks about them.

Adding a provider is its package under ``providers/``, its plug-in in :data:`PLUGINS`, its
settings among the bases of :class:`~.settings.ProviderSettings` and, when it has a sandbox,
its lab in :data:`~.labs.LABS` (see ``docs/adding-a-provider.md``). Nothing outside
``providers/`` names a provider: wiring, production's refusals, ``doctor``, log redaction,
the console and the settlement report formats read it here. Nothing here imports a sandbox
(:mod:`.labs` does).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from orderguard.providers.alipay.plugin import PLUGIN as ALIPAY
from orderguard.providers.plugin import Account, ProviderPlugin, TestKit
from orderguard.providers.settlement import SettlementFormat
from orderguard.providers.stripe.plugin import PLUGIN as STRIPE
from orderguard.providers.wechatpay.plugin import PLUGIN as WECHATPAY

#: The registered providers.
PLUGINS: tuple[ProviderPlugin, ...] = (STRIPE, ALIPAY, WECHATPAY)


def plugin(name: str) -> ProviderPlugin:
    """The registered provider ``name``; :class:`LookupError` when none is."""
    for candidate in PLUGINS:
        if candidate.name == name:
            return candidate
    raise LookupError(name)


def accounts(settings: Any) -> Iterator[tuple[ProviderPlugin, Account]]:
    """Every account the settings name, main accounts (key set or not) before fail-over ones."""
    named = [(p, a) for p in PLUGINS for a in p.accounts(settings)]
    yield from sorted(named, key=lambda pair: not pair[1].primary)


def configured(settings: Any) -> list[tuple[ProviderPlugin, Account]]:
    """The accounts whose API key is set, main accounts first."""
    return [(p, a) for p, a in accounts(settings) if a.api_key]


def has_real_account(settings: Any) -> bool:
    """Whether a main account of some provider has a key (else the sandbox takes charges)."""
    return any(a.primary and a.api_key for _, a in accounts(settings))


def main_account(settings: Any) -> Account:
    """The first registered provider's main account (named in what production asks for)."""
    return next(a for _, a in accounts(settings) if a.primary)


def is_live_key(account: Account) -> bool:
    """Whether ``account``'s key moves real money."""
    return bool((account.api_key or "").strip()) and plugin(account.provider).is_live(account)


def not_live(account: Account) -> tuple[str, str]:
    """``(variable, what is wrong)`` for ``account`` when it takes no real money: its key
    is not a live key, or (a provider whose address says it) its address is not live."""
    if plugin(account.provider).live_by == "url":
        return account.url_variable, f"is not the live address ({account.base_url})"
    return account.key_variable, "is not a live key"


def live(account: Account) -> tuple[str, str]:
    """``(variable, what)`` for ``account`` when it moves real money (refused in
    development): its live key, or its live address."""
    if plugin(account.provider).live_by == "url":
        return account.url_variable, f"is the live address ({account.base_url})"
    return account.key_variable, "is a live key"


def test_methods() -> list[str]:
    """The test payment methods of every registered provider."""
    return [m for p in PLUGINS for m in p.profile.test_methods]


def credential_pattern() -> str:
    """One regular expression matching every registered provider's credentials (logs)."""
    return "|".join(f"(?:{c})" for p in PLUGINS for c in p.credentials)


def credential_markers() -> tuple[str, ...]:
    """Substrings one of which each of :func:`credential_pattern`'s alternatives needs."""
    return tuple(m for p in PLUGINS for m in p.credential_markers)


def hidden_shapes() -> str:
    """One regular expression of what the console hides from a non-admin."""
    return "|".join(f"(?:{c})" for p in PLUGINS for c in p.hidden_shapes)


def signature_headers() -> frozenset[str]:
    """The (lower-case) headers carrying any registered provider's webhook signature."""
    return frozenset(h for p in PLUGINS for h in p.signature_headers)


def loggers() -> tuple[str, ...]:
    """The registered providers' SDK loggers."""
    return tuple(name for p in PLUGINS for name in p.loggers)


def settlement_formats() -> tuple[SettlementFormat, ...]:
    """The settlement report formats the registered providers bring (``reconcile --format``)."""
    return tuple(f for p in PLUGINS for f in p.settlement_formats)


def test_kit() -> TestKit:
    """The test payment methods and units of the first registered provider that declares
    them (the one whose sandbox the demo runs: ``providers/labs.py`` lists it first)."""
    return next(p.test_kit for p in PLUGINS if p.test_kit is not None)


def production_problems(settings: Any) -> list[tuple[str, str, str]]:
    """``(variable, what is wrong, provider title)`` for what each provider package's own
    checks refuse in production (beyond the neutral checks of every account)."""
    return [(v, what, p.title) for p in PLUGINS for v, what in p.problems(settings)]

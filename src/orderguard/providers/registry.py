"""Every provider package orderguard knows, and what the rest of it asks about them.

Adding a provider is its package under ``providers/``, its plug-in in :data:`PLUGINS` and
its settings among :class:`ProviderSettings`' bases (see ``docs/adding-a-provider.md``).
Nothing outside ``providers/`` names a provider: configuration, wiring, production's
refusals, ``doctor``, log redaction and the console read it here.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

from orderguard.providers.plugin import Account, ProviderPlugin
from orderguard.providers.stripe.plugin import PLUGIN as STRIPE
from orderguard.providers.stripe.settings import StripeSettings

#: The registered providers; the first with a sandbox runs it in development.
PLUGINS: tuple[ProviderPlugin, ...] = (STRIPE,)


@dataclass(frozen=True)
class ProviderSettings(StripeSettings):
    """Every registered provider's settings (``orderguard.config.Settings`` extends it)."""


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


def sandbox_plugin() -> ProviderPlugin:
    """The provider whose sandbox runs in development when no account has a key."""
    return next(p for p in PLUGINS if p.sandbox is not None)


def start_sandbox(settings: Any, resources: ExitStack, secret: str, public_url: str) -> Account:
    """Start the development sandbox; its webhooks go to ``public_url``'s route for it."""
    chosen = sandbox_plugin()
    assert chosen.sandbox is not None
    url = public_url.rstrip("/") + "/v1/webhooks/sandbox"
    return chosen.sandbox(settings, resources, secret, url)


def is_live_key(account: Account) -> bool:
    """Whether ``account``'s key moves real money."""
    return bool(account.api_key) and plugin(account.provider).is_live_key(
        (account.api_key or "").strip()
    )


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


def sandbox_env(base_url: str, webhook_secret: str) -> dict[str, str]:
    """The environment that points the sandbox provider's main account at a sandbox
    running at ``base_url`` (a process of its own, as the demo runs it)."""
    chosen = sandbox_plugin()
    main = next(a for a in chosen.accounts(ProviderSettings()) if a.primary)
    assert chosen.sandbox is not None
    return {
        main.variable("API_KEY"): chosen.sandbox_key,
        main.variable("BASE_URL"): base_url,
        main.variable("WEBHOOK_SECRET"): webhook_secret,
    }


def sandbox_secret_variable() -> str:
    """The variable that gives the sandbox provider's main account its webhook secret."""
    chosen = sandbox_plugin()
    main = next(a for a in chosen.accounts(ProviderSettings()) if a.primary)
    return main.variable("WEBHOOK_SECRET")


def serve_sandbox(*args: Any) -> None:
    """Serve the sandbox provider as a process (see :attr:`ProviderPlugin.serve_sandbox`)."""
    serve = sandbox_plugin().serve_sandbox
    assert serve is not None, "a provider with a sandbox serves it"
    serve(*args)


def sandbox_variables() -> tuple[str, ...]:
    """Environment variables a sandbox process reads (test hooks passed on to it)."""
    return sandbox_plugin().sandbox_variables


def sandbox_route() -> str:
    """The webhook route's last part for the sandbox provider's main account."""
    chosen = sandbox_plugin()
    return next(a.name for a in chosen.accounts(ProviderSettings()) if a.primary)

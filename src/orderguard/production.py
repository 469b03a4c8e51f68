"""What production mode refuses (``ORDERGUARD_ENV=production``): the unsafe defaults that
development allows so that ``make demo`` runs with nothing configured.

One pure policy, :func:`production_problems`, read by ``serve``, ``worker`` and ``doctor``
alike: the first two refuse to start on the first problem, ``doctor`` lists every one.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

from orderguard.config import Settings
from orderguard.providers import registry
from orderguard.providers.plugin import Account

#: Webhook secrets that are public: the old built-in default, the ones in this repository's
#: demo and fakes, and what people leave in a template. Anyone can sign with them.
KNOWN_DEFAULT_SECRETS = frozenset(
    {"whsec_sandbox", "whsec_demo", "whsec_memory", "whsec_test", "whsec_secret"}
)
#: What is left of a placeholder once ``whsec_`` and ``x``, ``.``, ``*``, ``_``, ``-``,
#: ``<>`` and spaces are taken away, lower-cased (``whsec_...``, ``<your secret>``, ``changeme``).
_PLACEHOLDER_WORDS = frozenset({"", "changeme", "yoursecret", "secret", "todo", "placeholder"})


@dataclass(frozen=True, slots=True)
class Problem:
    """One setting production mode refuses, and how to fix it."""

    #: The environment variable (or the thing) that is wrong, e.g. ``ORDERGUARD_PUBLIC_URL``.
    setting: str
    #: What is wrong with it, e.g. ``is not https (http://shop.example)``.
    problem: str
    #: How to fix it, in one clause.
    fix: str
    #: The mode that refuses it: ``production``, or ``development`` (a live key there).
    mode: str = "production"

    @property
    def line(self) -> str:
        """The one line ``serve`` and ``worker`` print when they refuse to start."""
        return f"orderguard: {self.mode}: {self.setting} {self.problem}: {self.fix}"


def _test_fix(account: Account) -> str:
    """The fix of a test key, or a test provider's address, in production."""
    hint = registry.plugin(account.provider).live_key_hint
    return (
        f"give {hint}, or set ORDERGUARD_ALLOW_TEST_PROVIDER=true for a staging deployment "
        "that takes no real money"
    )


def production_problems(settings: Settings, *, active_api_keys: int) -> list[Problem]:
    """Every reason a production deployment described by ``settings`` must not start.

    Refused: no real provider account (only the in-process sandbox); an account whose
    webhook secret is missing, public or a placeholder (anyone could sign a
    ``payment_intent.succeeded``), or the fail-over account reusing the primary's; no
    active API key (the API would answer no one, or, without keys, anyone); a public URL
    that is not https with a host shoppers can reach, unless ``allow_http`` and the URL is
    on loopback (a TLS-terminating proxy on the same host); a planted defect. A test key,
    or a provider address that is not https, unless ``allow_test_provider`` (staging; then
    the address may be plain http on loopback only).

    In development only a live key is refused: live money is never development.
    """
    if not settings.production:
        return _live_in_development(settings)
    problems = _provider_problems(settings)
    if active_api_keys < 1:
        problems.append(
            Problem(
                "API key",
                "is missing (none is active)",
                "create one with `orderguard keys create NAME` (against the same database)",
            )
        )
    problems += _public_url_problems(settings)
    if settings.planted_defect:
        problems.append(
            Problem(
                "ORDERGUARD_PLANTED_DEFECT",
                f"is set ({settings.planted_defect})",
                "unset it: it switches on a deliberate defect (the demo proves its checks with it)",
            )
        )
    return problems


def _live_in_development(settings: Settings) -> list[Problem]:
    return [
        Problem(
            *registry.live(account),
            "set ORDERGUARD_ENV=production (live money is never development), or use a test key",
            mode="development",
        )
        for _, account in registry.accounts(settings)
        if registry.is_live_key(account)
    ]


def _public_url_problems(settings: Settings) -> list[Problem]:
    url = urlsplit(settings.public_url.strip())
    setting, given = "ORDERGUARD_PUBLIC_URL", settings.public_url
    fix = (
        "give the https address shoppers use (a TLS-terminating proxy may forward to "
        "orderguard over http)"
    )
    if url.scheme not in ("http", "https") or not url.hostname:
        return [Problem(setting, f"has no host ({given})", fix)]
    loopback = _is_loopback(url)
    if url.scheme == "https":
        if loopback:
            return [Problem(setting, f"is on loopback ({given}): shoppers cannot reach it", fix)]
        return []
    if settings.allow_http and loopback:
        return []
    if settings.allow_http:
        return [Problem(setting, f"is plain http off this host ({given})", fix)]
    return [
        Problem(
            setting,
            f"is not https ({given})",
            "give the https address shoppers use, or set ORDERGUARD_ALLOW_HTTP=true when "
            "a TLS-terminating proxy on this host forwards to orderguard",
        )
    ]


def _is_loopback(url: SplitResult) -> bool:
    host = url.hostname or ""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _account_problems(settings: Settings, account: Account) -> list[Problem]:
    """A test key, or an address that is not the provider's over https."""
    fix = _test_fix(account)
    if not registry.is_live_key(account) and not settings.allow_test_provider:
        return [Problem(*registry.not_live(account), fix)]
    url = account.base_url
    address = urlsplit(url.strip())
    if not address.hostname or address.scheme not in ("http", "https"):
        return [Problem(account.url_variable, f"has no host ({url})", fix)]
    if address.scheme == "https":
        return []
    if settings.allow_test_provider and _is_loopback(address):
        return []
    return [Problem(account.url_variable, f"is not https ({url})", fix)]


def _provider_problems(settings: Settings) -> list[Problem]:
    accounts = [account for _, account in registry.accounts(settings)]
    if not any(a.primary and (a.api_key or "").strip() for a in accounts):
        return [
            Problem(
                registry.main_account(settings).key_variable,
                "is not set",
                "configure a real provider account (the in-process sandbox is for "
                "development only)",
            )
        ]
    problems: list[Problem] = []
    for account in accounts:
        if not (account.api_key or "").strip():
            if account.primary:
                continue  # another provider's main account is configured
            fix = "give the fail-over account's key, or unset the variable"
            problems.append(Problem(account.key_variable, "is empty", fix))
            continue
        problems += _account_problems(settings, account)
        problems += _secret_problems(account)
    problems += _shared_secrets(accounts)
    problems += [
        Problem(
            variable, what, f"give {title}'s production setting (see its page in docs/providers/)"
        )
        for variable, what, title in registry.production_problems(settings)
    ]
    return problems


def _shared_secrets(accounts: list[Account]) -> list[Problem]:
    """A fail-over account verifying with its provider's main account's secret."""
    main = {a.provider: (a.webhook_secret or "").strip() for a in accounts if a.primary}
    return [
        Problem(
            account.secret_variable,
            "is the primary account's secret",
            "set the signing secret of the fail-over account's own webhook endpoint",
        )
        for account in accounts
        if not account.primary
        and account.api_key
        and (account.webhook_secret or "").strip()
        and (account.webhook_secret or "").strip() == main.get(account.provider)
    ]


def _secret_problems(account: Account) -> list[Problem]:
    setting, secret = account.secret_variable, account.webhook_secret
    fix = f"set {registry.plugin(account.provider).secret_hint}"
    if not secret or not secret.strip():
        return [Problem(setting, "is not set", fix)]
    if is_known_default(secret):
        return [Problem(setting, "is a public default or placeholder", fix)]
    return []


def is_known_default(secret: str) -> bool:
    """Whether ``secret`` is one anybody could know: a shipped default or a placeholder."""
    text = secret.strip().lower()
    if text in KNOWN_DEFAULT_SECRETS:
        return True
    core = text.removeprefix("whsec_")
    for filler in "x.*_-<> ":
        core = core.replace(filler, "")
    return core in _PLACEHOLDER_WORDS

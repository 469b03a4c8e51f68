"""What production mode refuses (``ORDERGUARD_ENV=production``): the unsafe defaults that
development allows so that ``make demo`` runs with nothing configured.

One pure policy, :func:`production_problems`, read by ``serve``, ``worker`` and ``doctor``
alike: the first two refuse to start on the first problem, ``doctor`` lists every one.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from orderguard.config import Settings

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

    @property
    def line(self) -> str:
        """The one line ``serve`` and ``worker`` print when they refuse to start."""
        return f"orderguard: production: {self.setting} {self.problem}: {self.fix}"


def production_problems(settings: Settings, *, active_api_keys: int) -> list[Problem]:
    """Every reason a production deployment described by ``settings`` must not start.

    Refused: no real provider account (only the in-process sandbox); an account whose
    webhook secret is missing, public or a placeholder (anyone could sign a
    ``payment_intent.succeeded``), or the fail-over account reusing the primary's; no
    active API key (the API would answer no one, or, without keys, anyone); a public URL
    that is not https, unless ``allow_http`` (a TLS-terminating proxy on the same host).
    An empty list in development: nothing is refused there.
    """
    if not settings.production:
        return []
    problems = _provider_problems(settings)
    if active_api_keys < 1:
        problems.append(
            Problem(
                "API key",
                "is missing (none is active)",
                "create one with `orderguard keys create NAME` (against the same database)",
            )
        )
    if urlsplit(settings.public_url).scheme != "https" and not settings.allow_http:
        problems.append(
            Problem(
                "ORDERGUARD_PUBLIC_URL",
                f"is not https ({settings.public_url})",
                "give the https address shoppers use, or set ORDERGUARD_ALLOW_HTTP=true when "
                "a TLS-terminating proxy on this host forwards to orderguard",
            )
        )
    return problems


def _provider_problems(settings: Settings) -> list[Problem]:
    if not settings.stripe_api_key:
        return [
            Problem(
                "ORDERGUARD_STRIPE_API_KEY",
                "is not set",
                "configure a real provider account (the in-process sandbox is for "
                "development only)",
            )
        ]
    problems = _secret_problems("ORDERGUARD_STRIPE_WEBHOOK_SECRET", settings.stripe_webhook_secret)
    if settings.secondary_stripe_api_key:
        name = "ORDERGUARD_SECONDARY_STRIPE_WEBHOOK_SECRET"
        secondary = settings.secondary_stripe_webhook_secret
        problems += _secret_problems(name, secondary)
        if secondary and secondary == settings.stripe_webhook_secret:
            problems.append(
                Problem(
                    name,
                    "is the primary account's secret",
                    "set the signing secret of the fail-over account's own webhook endpoint",
                )
            )
    return problems


def _secret_problems(setting: str, secret: str | None) -> list[Problem]:
    fix = "set the signing secret (whsec_...) of this account's webhook endpoint"
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

"""Stripe's settings (``ORDERGUARD_STRIPE_*``, ``ORDERGUARD_SECONDARY_STRIPE_*`` and the
in-process sandbox's), part of :class:`orderguard.config.Settings` through
``providers/settings.py``, and the accounts they describe."""

from __future__ import annotations

from dataclasses import dataclass

from orderguard.providers.plugin import Account

#: Stripe's production API.
DEFAULT_BASE_URL = "https://api.stripe.com"
#: Prefixes of the keys that move real money (secret and restricted live keys).
LIVE_KEY_PREFIXES = ("sk_live_", "rk_live_")
#: The API key the in-process sandbox accepts.
SANDBOX_KEY = "sk_test_orderguard_sandbox"


def is_live_key(api_key: str) -> bool:
    """Whether ``api_key`` belongs to a live Stripe account (test keys and the sandbox's: no)."""
    return api_key.startswith(LIVE_KEY_PREFIXES)


@dataclass(frozen=True)
class StripeSettings:
    """Stripe's accounts; each field is ``ORDERGUARD_<NAME>`` in the environment."""

    #: Stripe secret key; when unset, an in-process sandbox provider is used.
    stripe_api_key: str | None = None
    #: Stripe API base URL (point it at ``orderguard sandbox-provider`` to test).
    stripe_base_url: str = DEFAULT_BASE_URL
    #: The signing secret of the Stripe account's webhook endpoint (``whsec_...``). No
    #: default: unset, every webhook to ``/v1/webhooks/stripe`` is refused (and production
    #: refuses to start). The in-process sandbox signs with its own secret, made at start.
    stripe_webhook_secret: str | None = None
    #: A second Stripe-compatible account to fail over to while the first is down, and the
    #: signing secret of ITS webhook endpoint (never the first account's).
    secondary_stripe_api_key: str | None = None
    secondary_stripe_base_url: str = DEFAULT_BASE_URL
    secondary_stripe_webhook_secret: str | None = None
    #: The in-process sandbox's ledger file and fault profile (``none``, ``flaky``, ``storm``).
    sandbox_db: str = "./orderguard-sandbox.db"
    sandbox_faults: str = "none"


def accounts(settings: StripeSettings) -> list[Account]:
    """The main account (its key may be unset), then the fail-over account when its key is
    set."""
    found = [
        Account(
            "stripe",
            "stripe",
            "ORDERGUARD_STRIPE",
            settings.stripe_api_key,
            settings.stripe_base_url,
            settings.stripe_webhook_secret,
        )
    ]
    if settings.secondary_stripe_api_key:
        found.append(
            Account(
                "stripe",
                "stripe-secondary",
                "ORDERGUARD_SECONDARY_STRIPE",
                settings.secondary_stripe_api_key,
                settings.secondary_stripe_base_url,
                settings.secondary_stripe_webhook_secret,
                primary=False,
            )
        )
    return found

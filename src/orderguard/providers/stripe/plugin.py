"""Stripe as the registry knows it: its profile, accounts, adapter, sandbox and credentials.

Importing this module is cheap: the SDK (in :mod:`.adapter`) and the sandbox are imported
only when an account is built or the sandbox started.
"""

from __future__ import annotations

from contextlib import ExitStack
from datetime import timedelta

from orderguard.providers.plugin import Account, AccountProvider, ProviderPlugin
from orderguard.providers.profile import (
    CARD_METHODS,
    Capabilities,
    MetadataLimits,
    ProviderProfile,
    json_ack,
)
from orderguard.providers.stripe import testcards
from orderguard.providers.stripe.settings import SANDBOX_KEY, StripeSettings, accounts, is_live_key

#: Cards; every recheck and sweep call; Stripe keeps idempotency keys 24 hours (23 with a
#: margin); metadata of 50 keys of 40 characters, values of 500; webhooks answered in JSON.
PROFILE = ProviderProfile(
    methods=CARD_METHODS,
    capabilities=Capabilities(
        retrieve_by_reference=True,
        find_by_order_id=True,
        list_recent_charges=True,
        key_retention=timedelta(hours=23),
        metadata=MetadataLimits(keys=50, key_chars=40, value_chars=500),
    ),
    test_methods=tuple(testcards.TEST_METHODS),
    reply=json_ack,
)


def build(account: Account, timeout_s: float) -> AccountProvider:
    """The Stripe adapter for ``account``."""
    from orderguard.providers.stripe.adapter import StripeProvider

    assert account.api_key is not None, "an account is built only once its key is set"
    return StripeProvider(
        api_key=account.api_key,
        base_url=account.base_url,
        webhook_secret=account.webhook_secret,
        name=account.name,
        timeout_s=timeout_s,
    )


def start_sandbox(
    settings: StripeSettings, resources: ExitStack, webhook_secret: str, webhook_url: str
) -> Account:
    """The in-process Stripe-compatible sandbox (ledger and faults from ``settings``), as
    the account ``sandbox``; it stops when ``resources`` closes."""
    from orderguard.providers.stripe.sandbox.faults import load_profile
    from orderguard.providers.stripe.sandbox.server import run_sandbox
    from orderguard.providers.stripe.sandbox.service import SandboxConfig

    config = SandboxConfig(
        db_path=settings.sandbox_db,
        faults=load_profile(settings.sandbox_faults),
        webhook_url=webhook_url,
        webhook_secret=webhook_secret,
    )
    url = resources.enter_context(run_sandbox(config))
    return Account("stripe", "sandbox", "ORDERGUARD_STRIPE", SANDBOX_KEY, url, webhook_secret)


def serve_sandbox(
    host: str,
    port: int,
    faults: str,
    seed: int,
    db_path: str,
    webhook_url: str | None,
    webhook_secret: str,
) -> None:
    """Serve the Stripe-compatible sandbox as a process until interrupted."""
    from orderguard.providers.stripe.sandbox.server import main

    main(host, port, faults, seed, db_path, webhook_url, webhook_secret)


PLUGIN = ProviderPlugin(
    name="stripe",
    title="Stripe",
    profile=PROFILE,
    accounts=accounts,
    build=build,
    is_live_key=is_live_key,
    live_key_hint="the account's live key (sk_live_...) at https://api.stripe.com",
    sandbox=start_sandbox,
    sandbox_key=SANDBOX_KEY,
    serve_sandbox=serve_sandbox,
    sandbox_variables=("ORDERGUARD_SANDBOX_CONTRACT_LOG",),  # sandbox/recording.py's ENV
    credentials=(
        r"\b(?:sk_live|sk_test|rk_live|rk_test|whsec)_[\w-]+",  # secret keys, webhook secrets
        r"\b(?:pi|seti)_\w+?_secret_\w+",  # a payment's (or setup's) client secret
    ),
    credential_markers=("sk_", "rk_", "whsec_", "_secret_"),
    hidden_shapes=(
        r"\b(?:pi|seti|src)_[A-Za-z0-9]+_secret_[A-Za-z0-9]+",  # client secrets
        r"\b(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]+",  # API keys
        r"\bwhsec_[A-Za-z0-9+/=_-]+",  # webhook secrets
        r"\b(?:tok|pm|card|src|ba|btok)_[A-Za-z0-9_]+",  # shopper payment tokens
    ),
    signature_headers=("stripe-signature",),
    loggers=("stripe",),
)

"""Stripe as the registry knows it: its profile, accounts, adapter, credentials and
settlement reports.

Importing this module is cheap: the SDK (in :mod:`.adapter`) is imported only when an
account is built. The sandbox is not reached from here at all (it is Stripe's lab,
:mod:`.lab`).
"""

from __future__ import annotations

from datetime import timedelta

from orderguard.providers.plugin import Account, AccountProvider, ProviderPlugin, TestKit
from orderguard.providers.profile import (
    CARD_METHODS,
    Capabilities,
    MetadataLimits,
    ProviderProfile,
    json_ack,
)
from orderguard.providers.stripe import currencies, settlement, testcards
from orderguard.providers.stripe.settings import accounts, is_live_key

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


def minor_units(amount: int, currency: str) -> int:
    """An amount in Stripe's units (its ledger's) in the currency's ISO 4217 minor units."""
    return currencies.from_stripe(amount, currency.upper())


def amount_step(currency: str) -> int:
    """The step (ISO 4217 minor units) of every amount Stripe charges in ``currency``."""
    return currencies.rule(currency).step


#: Stripe's test cards by what they do, and its units.
TEST_KIT = TestKit(
    succeeds=testcards.SUCCEEDS,
    declined=testcards.DECLINED,
    needs_authentication=testcards.NEEDS_AUTHENTICATION,
    minor_units=minor_units,
    amount_step=amount_step,
)


PLUGIN = ProviderPlugin(
    name="stripe",
    title="Stripe",
    profile=PROFILE,
    accounts=accounts,
    build=build,
    is_live=lambda account: is_live_key((account.api_key or "").strip()),
    live_key_hint="the account's live key (sk_live_...) at https://api.stripe.com",
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
    settlement_formats=settlement.FORMATS,
    test_kit=TEST_KIT,
)

"""Alipay as the registry knows it: profile, account, adapter, credentials.

Importing this module
is cheap: the adapter (httpx, cryptography) is imported only when an account is built; the
sandbox is reached only through :mod:`.lab`.
"""

from __future__ import annotations

from datetime import timedelta

from orderguard.providers.alipay import currencies, methods
from orderguard.providers.alipay.settings import (
    AlipayAccount,
    accounts,
    is_live_account,
    production_problems,
)
from orderguard.providers.plugin import Account, AccountProvider, Checkup, ProviderPlugin
from orderguard.providers.profile import (
    Capabilities,
    MetadataLimits,
    ProviderProfile,
    plain_ack,
)

#: ``alipay_*`` methods; the trade is asked for by its ``out_trade_no`` (our reference);
#: Alipay has no search by order and no listing of trades; a refund's ``out_request_no``
#: is recognised for the trade's whole refund period (a year, kept 360 days); nothing of
#: the order snapshot travels (Alipay keeps no metadata); notifications are answered with
#: the plain text ``success``, which Alipay retries until it reads.
PROFILE = ProviderProfile(
    methods=methods.METHODS,
    capabilities=Capabilities(
        retrieve_by_reference=True,
        find_by_order_id=False,
        list_recent_charges=False,
        key_retention=timedelta(days=360),
        metadata=MetadataLimits(keys=0, key_chars=0, value_chars=0),
    ),
    test_methods=methods.TEST_METHODS,
    reply=plain_ack("success"),
)


def build(account: Account, timeout_s: float) -> AccountProvider:
    """The Alipay adapter for ``account`` (its keys read now, from text or file)."""
    from orderguard.providers.alipay import keys
    from orderguard.providers.alipay.adapter import AlipayProvider

    assert isinstance(account, AlipayAccount), "Alipay's accounts come from its settings"
    assert account.api_key is not None, "an account is built only once its app id is set"
    if not account.app_private_key or not account.webhook_secret:
        raise keys.UnreadableKey(
            f"{account.variable('APP_PRIVATE_KEY')} and {account.variable('PUBLIC_KEY')} "
            "must both be set"
        )
    return AlipayProvider(
        app_id=account.api_key,
        app_private_key=keys.private_key(account.app_private_key),
        alipay_public_key=keys.public_key(account.webhook_secret),
        gateway_url=account.base_url,
        seller_id=account.seller_id,
        notify_url=account.notify_url,
        return_url=account.return_url,
        name=account.name,
        timeout_s=timeout_s,
    )


def checkup(account: Account) -> Checkup:
    """What ``doctor`` checks of the account's keys and notify URL (read now)."""
    from orderguard.providers.alipay.checkup import checkup as check

    return check(account)


def minor_units(amount: int, currency: str) -> int:
    """The sandbox ledger's fen as ISO minor units (the same)."""
    return currencies.rule(currency).from_provider(amount)


def amount_step(currency: str) -> int:
    """Any fen amount: step 1."""
    return currencies.rule(currency).step


#: No :class:`TestKit`: Alipay has no test methods that decline or ask for authentication
#: (the shopper pays or abandons at the cashier, whatever the method); the demo's shoppers
#: need another kind of kit for a redirect wallet (the lead's call).
TEST_KIT = None

PLUGIN = ProviderPlugin(
    name="alipay",
    title="Alipay",
    profile=PROFILE,
    accounts=accounts,
    build=build,
    is_live=is_live_account,
    live_by="url",
    live_key_hint="the app's keys at the production gateway https://openapi.alipay.com/gateway.do",
    secret_hint="Alipay's public key of this app (Open Platform console, public-key mode)",
    problems=production_problems,
    checkup=checkup,
    credentials=(
        r"-----BEGIN (?:RSA )?PRIVATE KEY-----[\s\S]+?-----END (?:RSA )?PRIVATE KEY-----",
        r"\bMII[A-Za-z0-9+/]{200,}={0,2}",  # a one-line base64 key (private or public)
    ),
    credential_markers=("PRIVATE KEY", "MII"),
    hidden_shapes=(
        r"-----BEGIN (?:RSA )?PRIVATE KEY-----[\s\S]+?-----END (?:RSA )?PRIVATE KEY-----",
        r"\bMII[A-Za-z0-9+/]{200,}={0,2}",
    ),
    signature_headers=(),
    loggers=(),
    settlement_formats=(),
    test_kit=TEST_KIT,
)

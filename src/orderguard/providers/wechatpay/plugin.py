"""WeChat Pay as the registry knows it: its profile, account, adapter and credentials.

Importing this module is cheap: the adapter (httpx, cryptography) is imported only when an
account is built, and the sandbox is not reached from here at all (:mod:`.lab`).
"""

from __future__ import annotations

from datetime import timedelta

from orderguard.providers.plugin import Account, AccountProvider, Checkup, ProviderPlugin, TestKit
from orderguard.providers.profile import (
    Capabilities,
    MetadataLimits,
    ProviderProfile,
    WebhookReply,
)
from orderguard.providers.wechatpay import currencies, methods
from orderguard.providers.wechatpay.settings import (
    WechatPayAccount,
    accounts,
    is_live_key,
    is_sandbox_url,
    production_problems,
)

#: The acknowledgement body of WeChat Pay's v1 notifications, still read by some tools.
ACK_BODY = b'{"code":"SUCCESS","message":"OK"}'


def reply(*, duplicate: bool) -> WebhookReply:
    """``200 {"code":"SUCCESS"}``: WeChat Pay v3 takes any 200 or 204 as received (and
    retries on anything else); the body satisfies integrations of the older format too."""
    return WebhookReply(200, "application/json", ACK_BODY)


#: Native and H5; the active query by ``out_trade_no`` (the attempt id) but no search by
#: order id and no list of charges (only the daily bill); an ``out_trade_no`` and an
#: ``out_refund_no`` stay unique at the merchant, so a repeat never charges or refunds
#: twice (refunds are taken for a year: the retention is a year less a margin); no metadata
#: beyond ``attach`` (the order id, which the adapter writes itself).
PROFILE = ProviderProfile(
    methods=(methods.PREFIX,),
    capabilities=Capabilities(
        retrieve_by_reference=True,
        find_by_order_id=False,
        list_recent_charges=False,
        key_retention=timedelta(days=360),
        metadata=MetadataLimits(keys=2, key_chars=10, value_chars=32),
    ),
    test_methods=(),
    reply=reply,
    qr_methods=(methods.NATIVE,),
    code_prefixes=(methods.CODE_PREFIX,),
)


def build(account: Account, timeout_s: float) -> AccountProvider:
    """The WeChat Pay adapter for ``account`` (a :class:`WechatPayAccount`); its key files
    are read now. :class:`ValueError` names the variable of a key that is missing or bad."""
    from orderguard.providers.wechatpay.adapter import WechatPayProvider
    from orderguard.providers.wechatpay.keys import verifying_keys

    assert isinstance(account, WechatPayAccount) and account.credentials is not None
    found = account.credentials
    private_key = found.private_key.text()
    if private_key is None:
        raise ValueError(f"{found.private_key.variable} is not set")
    if not account.webhook_secret:
        raise ValueError(f"{account.variable('APIV3_KEY')} is not set")
    return WechatPayProvider(
        mchid=account.api_key or "",
        appid=found.appid,
        merchant_serial_no=found.merchant_serial_no,
        private_key_pem=private_key,
        apiv3_key=account.webhook_secret,
        verifying_keys=verifying_keys(
            certificates=found.platform_certificates.texts(),
            public_key_pem=found.public_key.text(),
            public_key_id=found.public_key_id,
        ),
        notify_url=found.notify_url,
        base_url=account.base_url,
        name=account.name,
        timeout_s=timeout_s,
    )


def checkup(account: Account) -> Checkup:
    """What ``doctor`` checks of the account's keys and notify URL (read now)."""
    from orderguard.providers.wechatpay.checkup import checkup as check

    return check(account)


def minor_units(amount: int, currency: str) -> int:
    """Fen (the sandbox ledger's) in ISO 4217 minor units of CNY (the same number)."""
    return currencies.from_fen(amount, currency)


def amount_step(currency: str) -> int:
    """Every whole number of fen is chargeable."""
    return currencies.rule(currency).step


#: WeChat Pay has no test methods that decide the outcome: the simulated shopper does
#: (the sandbox's admin routes). Every behaviour names the Native method; the demo's
#: shoppers need the sandbox's shopper routes to drive it.
TEST_KIT = TestKit(
    succeeds=methods.NATIVE,
    declined=methods.NATIVE,
    needs_authentication=methods.NATIVE,
    minor_units=minor_units,
    amount_step=amount_step,
)

PLUGIN = ProviderPlugin(
    name="wechatpay",
    title="WeChat Pay",
    profile=PROFILE,
    accounts=accounts,
    build=build,
    is_live=lambda account: (
        is_live_key((account.api_key or "").strip()) and not is_sandbox_url(account.base_url)
    ),
    live_key_hint="the merchant number (mchid) of a live merchant at https://api.mch.weixin.qq.com",
    secret_hint="the APIv3 key (32 characters) set in the merchant platform",
    problems=production_problems,
    checkup=checkup,
    credentials=(
        r"-----BEGIN (?:RSA )?PRIVATE KEY-----[\s\S]*?-----END (?:RSA )?PRIVATE KEY-----",
        r"(?i:apiv3_?key)[\"']?\s*[:=]\s*[\"']?[^\s\"',]{32}",
    ),
    credential_markers=("PRIVATE KEY-----", "apiv3", "APIV3"),
    hidden_shapes=(
        r"-----BEGIN (?:RSA )?PRIVATE KEY-----[\s\S]*?-----END (?:RSA )?PRIVATE KEY-----",
        r"(?i:apiv3_?key)[\"']?\s*[:=]\s*[\"']?[^\s\"',]{32}",
    ),
    signature_headers=("wechatpay-signature",),
    loggers=(),
    test_kit=TEST_KIT,
)

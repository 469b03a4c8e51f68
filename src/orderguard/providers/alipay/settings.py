"""Alipay's settings (``ORDERGUARD_ALIPAY_*``), part of :class:`orderguard.config.Settings`
once ``providers/settings.py`` lists :class:`AlipaySettings`, and the account they describe.

An account maps onto :class:`~orderguard.providers.plugin.Account` as: ``api_key`` the app
id (the account is configured once it is set), ``base_url`` the gateway, ``webhook_secret``
Alipay's public key (what verifies notifications). The private key, seller id and URLs are
read from the settings by :func:`provider_options` when the adapter is built.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

from orderguard.providers.plugin import Account

#: The production gateway (https://openapi.alipay.com/gateway.do).
PRODUCTION_GATEWAY = "https://openapi.alipay.com/gateway.do"
#: Alipay's sandbox gateways (the current one and the older one): test money only.
SANDBOX_GATEWAY_HOSTS = ("openapi-sandbox.dl.alipaydev.com", "openapi.alipaydev.com")
#: The hosts of the production gateway (the only ones that move real money).
LIVE_GATEWAY_HOSTS = ("openapi.alipay.com",)
#: The app id of the sandbox's test app (``orderguard``'s own sandbox).
SANDBOX_APP_ID = "9021000100000001"
#: Variable prefix of the account.
VARIABLES = "ORDERGUARD_ALIPAY"


def is_live_gateway(url: str) -> bool:
    """Whether ``url`` is Alipay's production gateway (https, ``openapi.alipay.com``).

    Alipay's app ids and keys do not say whether they are live: the gateway does. A sandbox
    gateway (``*.alipaydev.com``), a local ``orderguard`` sandbox or anything else is test
    money, and production refuses it.
    """
    parts = urlsplit(url)
    return parts.scheme == "https" and (parts.hostname or "") in LIVE_GATEWAY_HOSTS


def is_live_account(account: Account) -> bool:
    """Whether ``account`` charges real money: configured, at the production gateway."""
    return bool(account.api_key) and is_live_gateway(account.base_url)


@dataclass(frozen=True, slots=True)
class AlipayAccount(Account):
    """An Alipay account: the neutral fields (app id, gateway, Alipay's public key) and what
    only Alipay needs to build its adapter. The private key is never shown in a repr."""

    app_private_key: str | None = field(default=None, repr=False)
    seller_id: str | None = None
    notify_url: str | None = None
    return_url: str | None = None


@dataclass(frozen=True)
class AlipaySettings:
    """Alipay's account; each field is ``ORDERGUARD_<NAME>`` in the environment."""

    #: The app id of the Open Platform app (``2021...``); unset, Alipay is not configured.
    alipay_app_id: str | None = None
    #: The app's RSA private key (RSA2): the PEM text, Alipay's one-line base64, or the path
    #: of a file holding either. Never logged.
    alipay_app_private_key: str | None = None
    #: Alipay's public key (the console's "支付宝公钥", not the app's): PEM, one-line base64
    #: or a file path. It verifies every gateway answer and every notification.
    alipay_public_key: str | None = None
    #: The merchant's Alipay user id (``2088...``): a notification for another seller is
    #: refused. Unset, only ``app_id`` is checked.
    alipay_seller_id: str | None = None
    #: The gateway; production refuses anything but https://openapi.alipay.com/gateway.do.
    alipay_gateway_url: str = PRODUCTION_GATEWAY
    #: Where Alipay posts notifications: orderguard's ``/v1/webhooks/alipay`` as the world
    #: reaches it.
    alipay_notify_url: str | None = None
    #: Where the cashier sends the shopper back when the payment request does not say.
    alipay_return_url: str | None = None


def accounts(settings: AlipaySettings) -> list[Account]:
    """The one Alipay account (its app id may be unset)."""
    return [
        AlipayAccount(
            "alipay",
            "alipay",
            VARIABLES,
            settings.alipay_app_id,
            settings.alipay_gateway_url,
            settings.alipay_public_key,
            app_private_key=settings.alipay_app_private_key,
            seller_id=settings.alipay_seller_id,
            notify_url=settings.alipay_notify_url,
            return_url=settings.alipay_return_url,
            key_name="APP_ID",
            url_name="GATEWAY_URL",
            secret_name="PUBLIC_KEY",
        )
    ]


def production_problems(settings: AlipaySettings) -> list[tuple[str, str]]:
    """(variable, what is wrong) for each setting production refuses once the app id is
    set, beyond the neutral checks (a gateway other than the production one, Alipay's
    public key missing): no app private key (nothing could be signed), no https notify
    URL (Alipay could not tell orderguard a trade was paid)."""
    if not (settings.alipay_app_id or "").strip():
        return []
    found: list[tuple[str, str]] = []
    if not (settings.alipay_app_private_key or "").strip():
        found.append((f"{VARIABLES}_APP_PRIVATE_KEY", "is not set"))
    if urlsplit(settings.alipay_notify_url or "").scheme != "https":
        found.append((f"{VARIABLES}_NOTIFY_URL", "is not an https URL"))
    return found

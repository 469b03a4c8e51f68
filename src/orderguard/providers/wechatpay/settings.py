"""WeChat Pay's settings (``ORDERGUARD_WECHATPAY_*``), the account they describe and what
production refuses of them.

An :class:`~orderguard.providers.plugin.Account` carries one key and one secret; WeChat
Pay needs more (merchant number, app id, merchant key and its serial, APIv3 key, the keys
that verify WeChat Pay). :class:`WechatPayAccount` extends it with them: its ``api_key``
is the merchant number (``mchid``: set means configured) and its ``webhook_secret`` the
APIv3 key (what opens notifications).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from orderguard.providers.plugin import Account

#: WeChat Pay's production API.
DEFAULT_BASE_URL = "https://api.mch.weixin.qq.com"
#: The environment variables' prefix.
VARIABLES = "ORDERGUARD_WECHATPAY"
#: The merchant number the sandbox knows (never a live merchant).
SANDBOX_MCHID = "1900009191"
#: The hosts a sandbox answers on: production refuses them as a base URL.
SANDBOX_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "0.0.0.0"})


def _var(suffix: str) -> str:
    return f"{VARIABLES}_{suffix}"


def is_live_key(mchid: str) -> bool:
    """Whether ``mchid`` is a real merchant number (digits, not the sandbox's)."""
    return mchid.isdigit() and mchid != SANDBOX_MCHID


def is_sandbox_url(url: str) -> bool:
    """Whether ``url`` points at a sandbox (loopback) rather than WeChat Pay."""
    return (urlsplit(url).hostname or "") in SANDBOX_HOSTS


@dataclass(frozen=True)
class WechatPaySettings:
    """WeChat Pay's merchant account; each field is ``ORDERGUARD_<NAME>``."""

    #: Merchant number (商户号); unset, WeChat Pay is not configured.
    wechatpay_mchid: str | None = None
    #: The app id (公众号/应用 APPID) bound to the merchant number.
    wechatpay_appid: str | None = None
    #: Serial number of the merchant API certificate (what signs our requests).
    wechatpay_merchant_serial_no: str | None = None
    #: The merchant API private key: a PEM file path, or the PEM itself.
    wechatpay_private_key_file: str | None = None
    wechatpay_private_key: str | None = None
    #: The APIv3 key (32 characters): opens notification resources. A secret.
    wechatpay_apiv3_key: str | None = None
    #: Platform certificate PEM files (comma-separated), verifying by certificate serial.
    wechatpay_platform_certificates: str | None = None
    #: The WeChat Pay public key (PEM file path or PEM) and its id (``PUB_KEY_ID_...``).
    #: Either or both of the certificates and the public key; both during a migration.
    wechatpay_public_key_file: str | None = None
    wechatpay_public_key: str | None = None
    wechatpay_public_key_id: str | None = None
    #: WeChat Pay API base URL (point it at the WeChat Pay sandbox to test).
    wechatpay_base_url: str = DEFAULT_BASE_URL
    #: Where WeChat Pay posts notifications (orderguard's ``/v1/webhooks/wechatpay``).
    wechatpay_notify_url: str | None = None


@dataclass(frozen=True, slots=True)
class KeyMaterial:
    """A PEM given inline or as a file, read only when an adapter is built (so that reading
    the settings never touches the disk), under the variable that names it."""

    variable: str
    inline: str | None = field(default=None, repr=False)
    files: tuple[str, ...] = ()

    def texts(self) -> tuple[str, ...]:
        """The PEM texts (the inline one, else each file's); none when neither is set."""
        if self.inline and self.inline.strip():
            return (self.inline.replace("\\n", "\n"),)
        try:
            return tuple(Path(f).read_text() for f in self.files)
        except OSError as exc:
            raise ValueError(f"{self.variable}: {exc}") from exc

    def text(self) -> str | None:
        """The one PEM text, if any."""
        return next(iter(self.texts()), None)


@dataclass(frozen=True, slots=True)
class WechatPayCredentials:
    """What an account needs beyond :class:`Account`'s fields."""

    appid: str
    merchant_serial_no: str
    private_key: KeyMaterial
    platform_certificates: KeyMaterial
    public_key: KeyMaterial
    public_key_id: str | None = None
    notify_url: str = ""


@dataclass(frozen=True, slots=True)
class WechatPayAccount(Account):
    """A WeChat Pay account: ``api_key`` the mchid, ``webhook_secret`` the APIv3 key."""

    credentials: WechatPayCredentials | None = None


def _files(value: str | None) -> tuple[str, ...]:
    return tuple(f.strip() for f in (value or "").split(",") if f.strip())


def credentials(settings: WechatPaySettings) -> WechatPayCredentials:
    """The credentials the settings give (files are read when an adapter is built)."""
    return WechatPayCredentials(
        appid=settings.wechatpay_appid or "",
        merchant_serial_no=settings.wechatpay_merchant_serial_no or "",
        private_key=KeyMaterial(
            _var("PRIVATE_KEY_FILE"),
            settings.wechatpay_private_key,
            _files(settings.wechatpay_private_key_file),
        ),
        platform_certificates=KeyMaterial(
            _var("PLATFORM_CERTIFICATES"), None, _files(settings.wechatpay_platform_certificates)
        ),
        public_key=KeyMaterial(
            _var("PUBLIC_KEY_FILE"),
            settings.wechatpay_public_key,
            _files(settings.wechatpay_public_key_file),
        ),
        public_key_id=settings.wechatpay_public_key_id,
        notify_url=settings.wechatpay_notify_url or "",
    )


def accounts(settings: WechatPaySettings) -> list[Account]:
    """The one merchant account (its mchid may be unset: then it is not configured)."""
    return [
        WechatPayAccount(
            "wechatpay",
            "wechatpay",
            VARIABLES,
            settings.wechatpay_mchid,
            settings.wechatpay_base_url,
            settings.wechatpay_apiv3_key,
            credentials=credentials(settings),
            key_name="MCHID",
            secret_name="APIV3_KEY",
        )
    ]


def production_problems(settings: WechatPaySettings) -> list[tuple[str, str]]:
    """(variable, what is wrong) for each setting production refuses, once the mchid is
    set: a sandbox or plain-http base URL, a missing key or id, an APIv3 key that is not
    32 bytes, nothing to verify WeChat Pay with, no https notify URL."""
    if not settings.wechatpay_mchid:
        return []
    found: list[tuple[str, str]] = []
    url = settings.wechatpay_base_url
    if is_sandbox_url(url):
        found.append((_var("BASE_URL"), f"points at a sandbox ({url})"))
    elif urlsplit(url).scheme != "https":
        found.append((_var("BASE_URL"), f"is not https ({url})"))
    if not is_live_key(settings.wechatpay_mchid):
        found.append((_var("MCHID"), "is the sandbox's merchant number"))
    for suffix, value in (
        ("APPID", settings.wechatpay_appid),
        ("MERCHANT_SERIAL_NO", settings.wechatpay_merchant_serial_no),
        ("PRIVATE_KEY_FILE", settings.wechatpay_private_key_file or settings.wechatpay_private_key),
    ):
        if not (value or "").strip():
            found.append((_var(suffix), "is not set"))
    if len((settings.wechatpay_apiv3_key or "").encode()) != 32:
        found.append((_var("APIV3_KEY"), "is not a 32-byte APIv3 key"))
    has_public = settings.wechatpay_public_key_file or settings.wechatpay_public_key
    if has_public and not (settings.wechatpay_public_key_id or "").startswith("PUB_KEY_ID_"):
        found.append((_var("PUBLIC_KEY_ID"), "is not a public key id (PUB_KEY_ID_...)"))
    if not (settings.wechatpay_platform_certificates or has_public):
        found.append((_var("PUBLIC_KEY_FILE"), "nothing verifies WeChat Pay's signatures"))
    if urlsplit(settings.wechatpay_notify_url or "").scheme != "https":
        found.append((_var("NOTIFY_URL"), "is not an https URL"))
    return found

"""The sandbox's state: its identity, its book of trades, how it signs, its notifier, its
switched faults and its fault profile's injector; and the check of a merchant's signed
request."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import rsa

from orderguard.providers.wallet_courier import Courier
from orderguard.providers.wallet_faults import FaultInjector, WalletFaultProfile
from orderguard.providers.wechatpay.sandbox.identity import Identity, load_identity
from orderguard.providers.wechatpay.sandbox.notify import RETRY_DELAYS_S, Notifier
from orderguard.providers.wechatpay.sandbox.trades import ApiError, Book
from orderguard.providers.wechatpay.signing import (
    DEFAULT_TOLERANCE_S,
    parse_authorization,
    request_message,
    signature_matches,
    signed_headers,
)

#: How the sandbox signs: with its platform certificate's key or the WeChat Pay public key's.
MODES = ("public_key", "certificate")


@dataclass
class Faults:
    """Switchable trouble: the next ``fail_next`` API calls answer ``status`` without
    doing anything; every API answer waits ``delay_s`` after the work is done."""

    fail_next: int = 0
    status: int = 500
    delay_s: float = 0.0


@dataclass
class SandboxConfig:
    """Where the sandbox keeps its identity, and its timing."""

    data_dir: str | Path
    clock: Callable[[], float] = time.time
    retry_delays_s: tuple[float, ...] = RETRY_DELAYS_S
    #: Refunds end SUCCESS right after they are accepted (else by the admin route).
    settle_refunds: bool = True
    mode: str = "public_key"
    #: The faults it injects (``--faults``; switched at run time at ``/_sandbox/faults``).
    faults: WalletFaultProfile = field(default_factory=WalletFaultProfile)
    #: Seeds every fault stream: the same seed gives the same faults.
    seed: int = 0


@dataclass
class Sandbox:
    """One running sandbox."""

    config: SandboxConfig
    identity: Identity = field(init=False)
    book: Book = field(init=False)
    notifier: Notifier = field(init=False)
    injector: FaultInjector = field(init=False)
    faults: Faults = field(default_factory=Faults)
    mode: str = "public_key"

    def __post_init__(self) -> None:
        self.identity = load_identity(self.config.data_dir)
        self.mode = self.config.mode
        self.book = Book(self.identity.mchid, self.identity.appid, self.config.clock)
        self.injector = FaultInjector(self.config.faults, self.config.seed)
        self.notifier = Notifier(
            self.identity.apiv3_key,
            self.sign,
            self.book.now,
            self.config.retry_delays_s,
            courier=Courier(self.injector),
        )

    def signing_key(self) -> tuple[rsa.RSAPrivateKey, str]:
        """The key the sandbox signs with now, and the serial that names it."""
        if self.mode == "certificate":
            return self.identity.platform_key, self.identity.platform_serial
        return self.identity.public_key_key, self.identity.public_key_id

    def sign(self, body: bytes) -> dict[str, str]:
        """The ``Wechatpay-*`` headers of an answer or a notification carrying ``body``."""
        key, serial = self.signing_key()
        return signed_headers(key, serial, body, timestamp=int(self.config.clock()))

    def authenticate(self, authorization: str, method: str, url: str, body: str) -> None:
        """Refuse (``401 SIGN_ERROR``) a request the test merchant did not sign now."""
        try:
            fields = parse_authorization(authorization)
        except ValueError as exc:
            raise ApiError(401, "SIGN_ERROR", str(exc)) from exc
        stamp = fields.get("timestamp", "")
        if fields.get("mchid") != self.identity.mchid:
            raise ApiError(401, "SIGN_ERROR", "商户号不一致")
        if fields.get("serial_no") != self.identity.merchant_serial_no:
            raise ApiError(401, "SIGN_ERROR", "商户证书序列号有误")
        if not stamp.isdigit() or abs(self.config.clock() - int(stamp)) > DEFAULT_TOLERANCE_S:
            raise ApiError(401, "SIGN_ERROR", "请求时间戳已过期")
        message = request_message(method, url, stamp, fields.get("nonce_str", ""), body)
        public = self.identity.merchant_key.public_key()
        if not signature_matches(public, message.encode(), fields.get("signature", "")):
            raise ApiError(401, "SIGN_ERROR", "签名错误")

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.config.clock(), UTC)

"""The sandbox's identity, generated into its data directory at first start and read back
afterwards: the test merchant (mchid, appid, its API key pair and serial), the platform
key pair and certificate, the WeChat Pay public key pair and its id, the APIv3 key.

In real life the merchant makes its own key pair; here the sandbox hands one out, so that
``--print-config`` can give orderguard everything it needs in one go.
"""

from __future__ import annotations

import json
import secrets
import string
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from orderguard.providers.wechatpay.settings import SANDBOX_MCHID
from orderguard.providers.wechatpay.signing import (
    PUBLIC_KEY_PREFIX,
    certificate_serial,
    load_private_key,
)

#: The app id the sandbox binds to its merchant.
SANDBOX_APPID = "wxsandbox0000001"
_FILES = ("merchant_key.pem", "platform_key.pem", "platform_cert.pem", "pubkey_key.pem")


@dataclass(frozen=True)
class Identity:
    """Everything the sandbox signs, verifies and encrypts with."""

    data_dir: Path
    mchid: str
    appid: str
    merchant_serial_no: str
    merchant_key: rsa.RSAPrivateKey
    platform_key: rsa.RSAPrivateKey
    platform_serial: str
    public_key_key: rsa.RSAPrivateKey
    public_key_id: str
    apiv3_key: str

    def path(self, name: str) -> Path:
        """A file of the data directory."""
        return self.data_dir / name

    def config(self, base_url: str, notify_url: str) -> dict[str, str]:
        """The ``ORDERGUARD_WECHATPAY_*`` variables that point orderguard at this sandbox."""
        return {
            "ORDERGUARD_WECHATPAY_MCHID": self.mchid,
            "ORDERGUARD_WECHATPAY_APPID": self.appid,
            "ORDERGUARD_WECHATPAY_MERCHANT_SERIAL_NO": self.merchant_serial_no,
            "ORDERGUARD_WECHATPAY_PRIVATE_KEY_FILE": str(self.path("merchant_key.pem")),
            "ORDERGUARD_WECHATPAY_APIV3_KEY": self.apiv3_key,
            "ORDERGUARD_WECHATPAY_PLATFORM_CERTIFICATES": str(self.path("platform_cert.pem")),
            "ORDERGUARD_WECHATPAY_PUBLIC_KEY_FILE": str(self.path("pubkey.pem")),
            "ORDERGUARD_WECHATPAY_PUBLIC_KEY_ID": self.public_key_id,
            "ORDERGUARD_WECHATPAY_BASE_URL": base_url,
            "ORDERGUARD_WECHATPAY_NOTIFY_URL": notify_url,
        }


def _write_key(path: Path) -> rsa.RSAPrivateKey:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.write_bytes(pem)
    path.chmod(0o600)
    return key


def _certificate(key: rsa.RSAPrivateKey) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Tenpay.com Root CA (sandbox)")])
    now = datetime.now(UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=3650))
        .sign(key, hashes.SHA256())
    )


def _create(data_dir: Path) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    _write_key(data_dir / "merchant_key.pem")
    platform = _write_key(data_dir / "platform_key.pem")
    cert = _certificate(platform)
    (data_dir / "platform_cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pubkey = _write_key(data_dir / "pubkey_key.pem")
    (data_dir / "pubkey.pem").write_bytes(
        pubkey.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    alphabet = string.ascii_letters + string.digits
    meta = {
        "mchid": SANDBOX_MCHID,
        "appid": SANDBOX_APPID,
        "merchant_serial_no": secrets.token_hex(20).upper(),
        "platform_serial": certificate_serial(cert.serial_number),
        "public_key_id": f"{PUBLIC_KEY_PREFIX}01{secrets.randbelow(10**20):020d}",
        "apiv3_key": "".join(secrets.choice(alphabet) for _ in range(32)),
    }
    (data_dir / "identity.json").write_text(json.dumps(meta, indent=2))
    (data_dir / "identity.json").chmod(0o600)


def load_identity(data_dir: str | Path) -> Identity:
    """The identity kept in ``data_dir``, generated there first when it is not."""
    root = Path(data_dir)
    if not (root / "identity.json").exists() or not all((root / f).exists() for f in _FILES):
        _create(root)
    meta = json.loads((root / "identity.json").read_text())

    def key(name: str) -> rsa.RSAPrivateKey:
        return load_private_key((root / name).read_bytes(), own=True)

    return Identity(
        data_dir=root,
        mchid=meta["mchid"],
        appid=meta["appid"],
        merchant_serial_no=meta["merchant_serial_no"],
        merchant_key=key("merchant_key.pem"),
        platform_key=key("platform_key.pem"),
        platform_serial=meta["platform_serial"],
        public_key_key=key("pubkey_key.pem"),
        public_key_id=meta["public_key_id"],
        apiv3_key=meta["apiv3_key"],
    )

"""The sandbox's configuration and its keys, generated into its data directory once.

The data directory holds Alipay's key pair (the sandbox signs with it) and a test app's key
pair (the sandbox verifies the app's requests with its public key; ``--print-config``
hands its private key to orderguard). An app with a key of its own gives the sandbox its
public key instead (``app_public_key``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import rsa

from orderguard.providers.alipay import keys
from orderguard.providers.alipay.settings import SANDBOX_APP_ID
from orderguard.providers.wallet_faults import WalletFaultProfile

#: The sandbox's app id and seller (``2088...``) unless told otherwise.
APP_ID = SANDBOX_APP_ID
SELLER_ID = "2088100000000001"
#: Seconds between notification attempts: Alipay's 4m, 10m, 10m, 1h, 2h, 6h, 15h, shrunk.
RETRY_DELAYS_S = (0.05, 0.2, 0.5, 1.0, 2.0, 4.0, 8.0)

ALIPAY_KEY_FILE = "alipay_private_key.pem"
ALIPAY_PUBLIC_FILE = "alipay_public_key.pem"
APP_KEY_FILE = "app_private_key.pem"
APP_PUBLIC_FILE = "app_public_key.pem"


@dataclass(frozen=True)
class SandboxConfig:
    """What one sandbox runs with."""

    data_dir: str
    app_id: str = APP_ID
    seller_id: str = SELLER_ID
    #: The app's public key (PEM, base64 or file); unset, the data directory's test app's.
    app_public_key: str | None = None
    retry_delays_s: tuple[float, ...] = RETRY_DELAYS_S
    #: The faults it injects (``--faults``; switched at run time at ``/_sandbox/faults``).
    faults: WalletFaultProfile = field(default_factory=WalletFaultProfile)
    #: Seeds every fault stream: the same seed gives the same faults.
    seed: int = 0


@dataclass(frozen=True)
class SandboxKeys:
    """The sandbox's signing key and the app key it verifies requests with."""

    alipay: rsa.RSAPrivateKey
    app_public: rsa.RSAPublicKey
    #: Files orderguard is pointed at.
    alipay_public_file: Path
    app_private_file: Path


def _pair(directory: Path, private_name: str, public_name: str) -> rsa.RSAPrivateKey:
    private_file = directory / private_name
    if private_file.exists():
        return keys.private_key(str(private_file), trusted=True)
    key = keys.new_private_key()
    private_file.write_text(keys.private_pem(key))
    private_file.chmod(0o600)
    (directory / public_name).write_text(keys.public_pem(key.public_key()))
    return key


def load_keys(config: SandboxConfig) -> SandboxKeys:
    """The sandbox's keys, made at first start and read from its data directory after."""
    directory = Path(config.data_dir)
    directory.mkdir(parents=True, exist_ok=True)
    alipay = _pair(directory, ALIPAY_KEY_FILE, ALIPAY_PUBLIC_FILE)
    app = _pair(directory, APP_KEY_FILE, APP_PUBLIC_FILE)
    app_public = (
        keys.public_key(config.app_public_key) if config.app_public_key else app.public_key()
    )
    return SandboxKeys(
        alipay=alipay,
        app_public=app_public,
        alipay_public_file=directory / ALIPAY_PUBLIC_FILE,
        app_private_file=directory / APP_KEY_FILE,
    )


def settings_for(config: SandboxConfig, sandbox_keys: SandboxKeys, base_url: str) -> dict[str, str]:
    """The ``ORDERGUARD_ALIPAY_*`` settings that point orderguard at this sandbox."""
    return {
        "ORDERGUARD_ALIPAY_APP_ID": config.app_id,
        "ORDERGUARD_ALIPAY_APP_PRIVATE_KEY": str(sandbox_keys.app_private_file.resolve()),
        "ORDERGUARD_ALIPAY_PUBLIC_KEY": str(sandbox_keys.alipay_public_file.resolve()),
        "ORDERGUARD_ALIPAY_SELLER_ID": config.seller_id,
        "ORDERGUARD_ALIPAY_GATEWAY_URL": f"{base_url}/gateway.do",
    }

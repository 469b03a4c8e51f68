"""WeChat Pay's lab: its sandbox, in-process or as a process of its own.

Only the lab registry (``providers/labs.py``) should import this module: the production
registry never reaches the sandbox.
"""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from typing import Any

from orderguard.providers.lab import ProviderLab
from orderguard.providers.plugin import Account
from orderguard.providers.wallet_faults import load_profile
from orderguard.providers.wechatpay.settings import (
    SANDBOX_MCHID,
    VARIABLES,
    KeyMaterial,
    WechatPayAccount,
    WechatPayCredentials,
)


def data_dir(settings: Any) -> Path:
    """The sandbox's data directory, beside the in-process sandbox ledger."""
    return Path(getattr(settings, "sandbox_db", "./orderguard-sandbox.db")).parent / "wechatpay"


def start_sandbox(settings: Any, resources: ExitStack, webhook_secret: str, url: str) -> Account:
    """The in-process sandbox, as the account ``wechatpay-sandbox`` notifying ``url``; it
    stops when ``resources`` closes. (It encrypts with its own APIv3 key, not
    ``webhook_secret``: the key is part of its identity.)"""
    from orderguard.providers.wechatpay.sandbox.server import run_sandbox
    from orderguard.providers.wechatpay.sandbox.service import SandboxConfig

    config = SandboxConfig(data_dir(settings))
    base_url = resources.enter_context(run_sandbox(config))
    return sandbox_account(config.data_dir, base_url, url)


def sandbox_account(directory: str | Path, base_url: str, notify_url: str) -> WechatPayAccount:
    """The account that charges at the sandbox whose identity is in ``directory``."""
    from orderguard.providers.wechatpay.sandbox.identity import load_identity

    identity = load_identity(directory)
    return WechatPayAccount(
        "wechatpay",
        "wechatpay-sandbox",
        VARIABLES,
        identity.mchid,
        base_url,
        identity.apiv3_key,
        credentials=WechatPayCredentials(
            appid=identity.appid,
            merchant_serial_no=identity.merchant_serial_no,
            private_key=KeyMaterial(
                f"{VARIABLES}_PRIVATE_KEY_FILE", files=(str(identity.path("merchant_key.pem")),)
            ),
            platform_certificates=KeyMaterial(
                f"{VARIABLES}_PLATFORM_CERTIFICATES",
                files=(str(identity.path("platform_cert.pem")),),
            ),
            public_key=KeyMaterial(
                f"{VARIABLES}_PUBLIC_KEY_FILE", files=(str(identity.path("pubkey.pem")),)
            ),
            public_key_id=identity.public_key_id,
            notify_url=notify_url,
        ),
    )


def serve_sandbox(
    host: str,
    port: int,
    faults: str,
    seed: int,
    db_path: str,
    webhook_url: str | None,
    webhook_secret: str,
) -> None:
    """Serve the sandbox as a process (``orderguard sandbox-provider``) with the fault
    profile ``faults`` (switched at run time at ``/_sandbox/faults``); its identity lives
    beside ``db_path``."""
    from orderguard.providers.wechatpay.sandbox.server import serve

    serve(host, port, str(Path(db_path).parent / "wechatpay"), faults=faults, seed=seed)


def sandbox_config(host: str, port: int, db_path: str, webhook_secret: str) -> str:
    """The ``ORDERGUARD_WECHATPAY_*`` lines for a sandbox served so: its identity (made now
    if it has none) and address; notifications are encrypted with its own APIv3 key."""
    from orderguard.providers.wechatpay.sandbox.identity import load_identity

    identity = load_identity(str(Path(db_path).parent / "wechatpay"))
    notify_url = "http://127.0.0.1:8000/v1/webhooks/wechatpay"
    found = identity.config(f"http://{host}:{port}", notify_url)
    return "\n".join(f"{name}={value}" for name, value in found.items())


LAB = ProviderLab(
    provider="wechatpay",
    title="WeChat Pay",
    start=start_sandbox,
    serve=serve_sandbox,
    key=SANDBOX_MCHID,
    variables=(),
    config=sandbox_config,
    load_faults=load_profile,
    signs_with_secret=False,
)

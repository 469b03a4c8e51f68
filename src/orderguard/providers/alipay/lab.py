"""Alipay's lab: its sandbox in-process or as a process (only ``providers/labs.py``
imports this module)."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from typing import Any

from orderguard.providers.alipay.settings import SANDBOX_APP_ID, AlipayAccount
from orderguard.providers.lab import ProviderLab
from orderguard.providers.plugin import Account
from orderguard.providers.wallet_faults import load_profile


def _data_dir(db_path: str) -> str:
    """The sandbox's data directory beside the (Stripe-shaped) sandbox ledger path."""
    return str(Path(db_path).resolve().parent / "alipay-sandbox")


def start_sandbox(
    settings: Any, resources: ExitStack, webhook_secret: str, webhook_url: str
) -> Account:
    """The in-process sandbox as the account ``alipay``, notifying ``webhook_url`` (the
    webhook secret is unused: notifications are signed with the sandbox's RSA key)."""
    from orderguard.providers.alipay.sandbox.config import SandboxConfig, load_keys
    from orderguard.providers.alipay.sandbox.server import run_sandbox

    config = SandboxConfig(data_dir=_data_dir(getattr(settings, "sandbox_db", "./x.db")))
    sandbox_keys = load_keys(config)
    url = resources.enter_context(run_sandbox(config))
    return AlipayAccount(
        "alipay",
        "alipay",
        "ORDERGUARD_ALIPAY",
        config.app_id,
        f"{url}/gateway.do",
        str(sandbox_keys.alipay_public_file),
        app_private_key=str(sandbox_keys.app_private_file),
        seller_id=config.seller_id,
        notify_url=webhook_url,
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
    """Serve the sandbox as a process with the fault profile ``faults`` (switched at run
    time at ``/_sandbox/faults``); the notify URL comes with each payment."""
    from orderguard.providers.alipay.sandbox.server import serve

    serve(host, port, _data_dir(db_path), faults=faults, seed=seed)


def sandbox_config(host: str, port: int, db_path: str, webhook_secret: str) -> str:
    """The ``ORDERGUARD_ALIPAY_*`` lines for a sandbox served so: its keys (made now if
    its data directory has none) and gateway; notifications are signed, not by a secret."""
    from orderguard.providers.alipay.sandbox.server import print_config

    return print_config(host, port, _data_dir(db_path))


LAB = ProviderLab(
    provider="alipay",
    title="Alipay",
    start=start_sandbox,
    serve=serve_sandbox,
    key=SANDBOX_APP_ID,
    variables=(),
    config=sandbox_config,
    load_faults=load_profile,
    signs_with_secret=False,
)

"""Stripe's lab: the Stripe-compatible sandbox, in-process or as ``orderguard
sandbox-provider``.

Only :mod:`orderguard.providers.labs` imports this module: the production registry never
reaches the sandbox.
"""

from __future__ import annotations

from contextlib import ExitStack

from orderguard.providers.lab import ProviderLab
from orderguard.providers.plugin import Account
from orderguard.providers.stripe.settings import SANDBOX_KEY, StripeSettings


def start_sandbox(
    settings: StripeSettings, resources: ExitStack, webhook_secret: str, webhook_url: str
) -> Account:
    """The in-process Stripe-compatible sandbox (ledger and faults from ``settings``), as
    the account ``sandbox``; it stops when ``resources`` closes."""
    from orderguard.providers.stripe.sandbox.faults import load_profile
    from orderguard.providers.stripe.sandbox.server import run_sandbox
    from orderguard.providers.stripe.sandbox.service import SandboxConfig

    config = SandboxConfig(
        db_path=settings.sandbox_db,
        faults=load_profile(settings.sandbox_faults),
        webhook_url=webhook_url,
        webhook_secret=webhook_secret,
    )
    url = resources.enter_context(run_sandbox(config))
    return Account("stripe", "sandbox", "ORDERGUARD_STRIPE", SANDBOX_KEY, url, webhook_secret)


def serve_sandbox(
    host: str,
    port: int,
    faults: str,
    seed: int,
    db_path: str,
    webhook_url: str | None,
    webhook_secret: str,
) -> None:
    """Serve the Stripe-compatible sandbox as a process until interrupted."""
    from orderguard.providers.stripe.sandbox.server import main

    main(host, port, faults, seed, db_path, webhook_url, webhook_secret)


def load_faults(spec: str) -> object:
    """The sandbox's fault profile named ``spec`` or read from the TOML file ``spec``."""
    from orderguard.providers.stripe.sandbox.faults import load_profile

    return load_profile(spec)


def sandbox_config(host: str, port: int, db_path: str, webhook_secret: str) -> str:
    """The ``ORDERGUARD_STRIPE_*`` lines for a sandbox served so (any ``sk_test_`` key)."""
    return "\n".join(
        [
            f"ORDERGUARD_STRIPE_API_KEY={SANDBOX_KEY}",
            f"ORDERGUARD_STRIPE_BASE_URL=http://{host}:{port}",
            f"ORDERGUARD_STRIPE_WEBHOOK_SECRET={webhook_secret}",
        ]
    )


LAB = ProviderLab(
    provider="stripe",
    title="Stripe",
    start=start_sandbox,
    serve=serve_sandbox,
    key=SANDBOX_KEY,
    variables=("ORDERGUARD_SANDBOX_CONTRACT_LOG",),  # sandbox/recording.py's ENV
    config=sandbox_config,
    load_faults=load_faults,
)

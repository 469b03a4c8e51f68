"""A small Stripe-compatible payment service with switchable, seeded faults.

Use it in-process (:func:`create_app`, :func:`run_sandbox`) or as a process (:func:`main`,
behind ``orderguard sandbox-provider``). ``GET /ledger`` is the test oracle.
"""

from __future__ import annotations

from orderguard.providers.stripe.sandbox.app import create_app
from orderguard.providers.stripe.sandbox.faults import PROFILES, FaultProfile, load_profile
from orderguard.providers.stripe.sandbox.server import main, run_sandbox, serve_in_thread
from orderguard.providers.stripe.sandbox.service import SandboxConfig

__all__ = [
    "PROFILES",
    "FaultProfile",
    "SandboxConfig",
    "create_app",
    "load_profile",
    "main",
    "run_sandbox",
    "serve_in_thread",
]

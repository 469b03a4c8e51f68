"""Settings from ``ORDERGUARD_*`` environment variables and an optional ``orderguard.toml``.

The defaults run with nothing set: SQLite in ``./orderguard.db``, loopback only, no keys.
Environment variables win over the file; the file is ``./orderguard.toml`` or the path in
``ORDERGUARD_CONFIG``.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, fields
from datetime import timedelta
from pathlib import Path
from typing import Any, get_type_hints

from orderguard.services.shopper_data import InvalidShopperData, normalise_country


class ConfigError(Exception):
    """The configuration is invalid."""


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything orderguard can be told; each field is ``ORDERGUARD_<NAME>`` in the env."""

    #: ``sqlite:///PATH`` (default) or ``postgresql://user@host:5432/db``.
    database_url: str = "sqlite:///./orderguard.db"
    #: Base URL shoppers reach the service at; used in ``status_url``.
    public_url: str = "http://127.0.0.1:8000"
    #: ISO 3166-1 alpha-2 country used when a shipping address has none.
    default_country: str | None = None
    #: How long idempotency records are kept, in hours (at least 24).
    idempotency_ttl_hours: int = 24
    #: Database connections per process (PostgreSQL).
    db_pool_size: int = 10
    #: Stripe secret key; when unset, an in-process sandbox provider is used.
    stripe_api_key: str | None = None
    #: Stripe API base URL (point it at ``orderguard sandbox-provider`` to test).
    stripe_base_url: str = "https://api.stripe.com"
    #: Secret that signs Stripe webhooks (``whsec_...``).
    stripe_webhook_secret: str = "whsec_sandbox"
    #: A second Stripe-compatible account to fail over to while the first is down.
    secondary_stripe_api_key: str | None = None
    secondary_stripe_base_url: str = "https://api.stripe.com"
    #: The in-process sandbox's ledger file and fault profile (``none``, ``flaky``, ``storm``).
    sandbox_db: str = "./orderguard-sandbox.db"
    sandbox_faults: str = "none"
    #: Longest a charge call may take before its outcome counts as unknown, in seconds.
    payment_time_budget_s: float = 10.0
    #: Minutes a shopper has to finish authentication (3-D Secure) before the order is cancelled.
    action_expiry_minutes: float = 30.0
    #: Orders never paid, and declined orders not paid again, are cancelled after (hours).
    abandon_received_hours: float = 24.0
    abandon_failed_hours: float = 24.0
    #: Multiplies every wait of the janitor's recheck schedule (below 1 for demos and tests).
    recheck_scale: float = 1.0
    #: Seconds between the worker's rounds, and how long a worker holds an order it checks.
    worker_round_s: float = 1.0
    janitor_lease_s: float = 60.0
    #: Consecutive transport failures that open a provider's circuit, and its cool-down (s).
    breaker_threshold: int = 5
    breaker_cool_down_s: float = 30.0
    #: Whether the sweep refunds orphan and duplicate charges (off: it flags them for review).
    sweep_auto_refund: bool = True
    #: How far back each sweep of the providers' charges looks, in hours.
    sweep_window_hours: int = 24
    #: Whether ``/readyz`` needs a fresh worker heartbeat (off for API-only deployments
    #: whose workers are checked elsewhere).
    ready_requires_worker: bool = True
    #: Seconds ``/metrics`` reuses its reading of the database (keeps scrapes cheap).
    metrics_cache_s: float = 5.0

    @property
    def idempotency_ttl(self) -> timedelta:
        """How long an idempotency record is kept."""
        return timedelta(hours=self.idempotency_ttl_hours)

    @classmethod
    def load(cls, env: dict[str, str] | None = None) -> Settings:
        """Settings from the TOML file (if any) overlaid with the environment."""
        env = dict(os.environ if env is None else env)
        values: dict[str, Any] = _read_file(env)
        for f in fields(cls):
            name = f"ORDERGUARD_{f.name.upper()}"
            if name in env:
                values[f.name] = env[name]
        return cls._checked(values)

    @classmethod
    def _checked(cls, values: dict[str, Any]) -> Settings:
        known = {f.name: f for f in fields(cls)}
        unknown = set(values) - set(known)
        if unknown:
            raise ConfigError(f"unknown settings: {', '.join(sorted(unknown))}")
        types = get_type_hints(cls)
        for name, value in values.items():
            values[name] = _convert(name, value, types[name])
        settings = cls(**values)
        if settings.idempotency_ttl_hours < 24:
            raise ConfigError("idempotency_ttl_hours must be at least 24 (G2)")
        if settings.default_country:
            try:
                country = normalise_country(settings.default_country)
            except InvalidShopperData as exc:
                raise ConfigError(f"default_country: {exc}") from None
            object.__setattr__(settings, "default_country", country)
        return settings


def _read_file(env: dict[str, str]) -> dict[str, Any]:
    path = Path(env.get("ORDERGUARD_CONFIG", "orderguard.toml"))
    if not path.is_file():
        if "ORDERGUARD_CONFIG" in env:
            raise ConfigError(f"config file {path} does not exist")
        return {}
    try:
        return dict(tomllib.loads(path.read_text()).get("orderguard", {}))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def _int(name: str, value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a whole number, not {value!r}") from None


def _float(name: str, value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number of seconds, not {value!r}") from None


def _convert(name: str, value: Any, kind: Any) -> Any:
    """A setting's text (from the environment) as its declared type."""
    if kind is bool:
        return _bool(name, value)
    if kind is int:
        return _int(name, value)
    if kind is float:
        return _float(name, value)
    return value


def _bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"1", "true", "yes", "on"}:
        return True
    if text in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"{name} must be true or false, not {value!r}")

"""Settings from ``ORDERGUARD_*`` environment variables and an optional ``orderguard.toml``.

The defaults run with nothing set: SQLite in ``./orderguard.db``, loopback only, no keys.
Environment variables win over the file; the file is ``./orderguard.toml`` or the path in
``ORDERGUARD_CONFIG``.
"""

from __future__ import annotations

import difflib
import math
import os
import re
import tomllib
from dataclasses import dataclass, fields
from datetime import timedelta
from pathlib import Path
from typing import Any, get_type_hints

from orderguard.domain.countries import NotACountry, country_code
from orderguard.providers.settings import ProviderSettings

#: Deliberate defects ``planted_defect`` can switch on, to prove that the demo's checker
#: fails: each is wired around a part of the service by ``demo/defects.py`` (its registry,
#: ``DEFECTS``, which these names must match) and breaks one invariant of the demo.
PLANTED_DEFECTS = (
    "answer_first",
    "forget_keys",
    "recharge_unknown",
    "success_ignored",
    "janitor_asleep",
    "charge_amount",
    "silent_paid",
    "refund_amount",
    "pay_again_old_method",
    "three_ds_return_token",
    "alipay_amount_unchecked",
    "wechatpay_expiry_without_close",
)


#: The deployment modes: ``development`` (the default: the in-process sandbox is allowed and
#: everything it takes is test mode) and ``production`` (every unsafe default is refused).
MODES = ("development", "production")


#: ``ORDERGUARD_*`` environment variables read outside :class:`Settings` (by the logging set-up,
#: the settings loader itself and the test suite); every other ``ORDERGUARD_*`` name must be a
#: setting, or the start is refused (a misspelt variable must not be silently ignored).
OTHER_VARIABLES = (
    "ORDERGUARD_CONFIG",
    "ORDERGUARD_LOG_LEVEL",
    "ORDERGUARD_LOG_FORMAT",
    "ORDERGUARD_TEST_POSTGRES",
    "ORDERGUARD_CRASH_SEED",
    "ORDERGUARD_SANDBOX_CONTRACT_LOG",
)
#: The prefix of every orderguard environment variable.
PREFIX = "ORDERGUARD_"
#: The word before the first separator of a variable that is meant for orderguard: any
#: case, or a typo this close to it (``ORDERGAURD_ENV``, ``ORDERGUARD-ENV``), is refused
#: unless the name is exactly one orderguard reads.
_PREFIX_WORD = PREFIX.rstrip("_")
_PREFIX_LIKENESS = 0.8
#: The one table of the config file.
TABLE = "orderguard"
#: Durations and rates that must be more than zero (zero locks nobody out, lets no charge
#: finish...).
POSITIVE = (
    "payment_time_budget_s",
    "action_expiry_minutes",
    "worker_round_s",
    "janitor_lease_s",
    "console_lockout_minutes",
    "console_session_hours",
    "outbox_timeout_s",
    "outbox_lease_s",
    "sweep_queries_per_s",
)
#: Counts that must be at least one.
AT_LEAST_ONE = (
    "db_pool_size",
    "janitor_concurrency",
    "waiting_concurrency",
    "breaker_threshold",
    "console_max_failed_logins",
    "outbox_max_attempts",
    "sweep_query_batch",
    "retention_batch",
)
#: Retention periods, in days: 0 keeps rows forever, otherwise at least a day (support needs
#: yesterday's trail) and at most a century (longer is a typo, and overflows the calendar).
RETENTION_DAYS = ("outbox_retention_days", "webhook_body_retention_days")
RETENTION_MAX_DAYS = 36500
#: Most rows one retention statement may touch: each batch is one short transaction.
RETENTION_MAX_BATCH = 10000


class ConfigError(Exception):
    """The configuration is invalid."""


@dataclass(frozen=True, slots=True)
class Settings(ProviderSettings):
    """Everything orderguard can be told; each field is ``ORDERGUARD_<NAME>`` in the env
    (each provider's own settings come from its package, through ``providers/settings.py``)."""

    #: ``development`` (default) or ``production``: see ``MODES``.
    env: str = "development"
    #: In production, accept an ``http://`` public URL (a TLS-terminating proxy on this host).
    allow_http: bool = False
    #: In production, accept a test key and a provider on plain http at a loopback address
    #: (a staging deployment against ``orderguard sandbox-provider``; no real money moves).
    allow_test_provider: bool = False
    #: Comma-separated addresses of reverse proxies whose ``X-Forwarded-For`` and
    #: ``X-Forwarded-Proto`` are believed (default: none, every header is ignored and the
    #: peer address is the client's). ``*`` believes everyone: never on a shared host.
    trusted_proxies: str = ""
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
    #: Longest a charge call may take before its outcome counts as unknown, in seconds.
    payment_time_budget_s: float = 10.0
    #: Minutes a shopper has to finish authentication (3-D Secure) before the order is cancelled.
    action_expiry_minutes: float = 30.0
    #: Orders never paid, and declined orders not paid again, are cancelled after (hours).
    abandon_received_hours: float = 24.0
    abandon_failed_hours: float = 24.0
    #: Multiplies every wait of the janitor's recheck schedule and of the refund check's
    #: lookup schedule (below 1 for demos and tests).
    recheck_scale: float = 1.0
    #: Seconds between the worker's rounds, and how long a worker holds an order it checks.
    worker_round_s: float = 1.0
    janitor_lease_s: float = 60.0
    #: Orders one worker rechecks at once (each check waits on the provider).
    janitor_concurrency: int = 8
    #: Orders waiting for a provider that one worker charges at once once it is back.
    waiting_concurrency: int = 8
    #: Consecutive transport failures that open a provider's circuit, and its cool-down (s).
    breaker_threshold: int = 5
    breaker_cool_down_s: float = 30.0
    #: Whether the sweep refunds orphan and duplicate charges (off: it flags them for review).
    sweep_auto_refund: bool = True
    #: How far back each sweep of the providers' charges looks, in hours, and how often the
    #: worker sweeps (seconds).
    sweep_window_hours: int = 24
    sweep_every_s: float = 300.0
    #: At providers that cannot list their charges (Alipay, WeChat Pay) each sweep asks
    #: about the trades of at most this many cancelled orders, at most this many questions
    #: a second.
    sweep_query_batch: int = 200
    sweep_queries_per_s: float = 5.0
    #: A deliberate defect, switched on only to prove that ``orderguard demo`` catches a
    #: broken service (see ``PLANTED_DEFECTS``). Never set it in production.
    planted_defect: str | None = None
    #: How shoppers reach the shop's support (an email address or URL), shown on their page.
    support_contact: str = ""
    #: ``Secure`` flag on the pages' cookies: ``auto`` (when public_url is https), true, false.
    cookie_secure: str = "auto"
    #: Failed console log-ins in a row that lock an account, for how long, and session length.
    console_max_failed_logins: int = 5
    console_lockout_minutes: float = 15.0
    console_session_hours: float = 12.0
    #: Outbox relay (G8). Shopper email: ``smtp://user:pass@host:587?starttls=true``
    #: (``smtps://`` for TLS); unset: no email is sent.
    smtp_url: str | None = None
    #: The sender of shopper email, and a directory of templates searched before the shipped ones.
    smtp_from: str = "orderguard <orders@localhost>"
    email_template_dir: str | None = None
    #: Event stream: ``nats://127.0.0.1:4222``; unset: nothing is published. Stream and
    #: subject prefix (events go to ``<prefix>.paid`` etc.).
    nats_url: str | None = None
    nats_stream: str = "ORDERGUARD_ORDERS"
    nats_subject_prefix: str = "orderguard.orders"
    #: Seconds one delivery may take (SMTP, a merchant webhook, a JetStream ack).
    outbox_timeout_s: float = 10.0
    #: Tries before a delivery becomes a dead letter; first and longest retry wait (s).
    outbox_max_attempts: int = 10
    outbox_backoff_s: float = 5.0
    outbox_backoff_max_s: float = 3600.0
    #: How long a relay holds claimed deliveries; what a newly switched-on sink catches up on.
    outbox_lease_s: float = 60.0
    outbox_backfill_hours: float = 1.0
    #: After ``endpoints rotate-secret``, hours the old secret still signs alongside the new.
    webhook_secret_overlap_hours: float = 24.0
    #: Whether ``/readyz`` needs a fresh worker heartbeat (off for API-only deployments
    #: whose workers are checked elsewhere).
    ready_requires_worker: bool = True
    #: Seconds ``/metrics`` reuses its reading of the database (keeps scrapes cheap).
    metrics_cache_s: float = 5.0
    #: Retention, in days (0 keeps forever; see ``RETENTION_DAYS``): outbox deliveries
    #: delivered this long ago are deleted, with their events once every sink is done with
    #: them; processed webhook events lose their body and headers (their row stays, so a late
    #: duplicate is still refused). Orders, attempts, timelines and refunds are never deleted.
    outbox_retention_days: int = 30
    webhook_body_retention_days: int = 90
    #: Rows one retention statement deletes or clears at most (one short transaction each).
    retention_batch: int = 1000

    @property
    def outbox_retention(self) -> timedelta | None:
        """How long delivered outbox rows are kept (``None``: forever)."""
        return _days(self.outbox_retention_days)

    @property
    def webhook_body_retention(self) -> timedelta | None:
        """How long processed webhook bodies are kept (``None``: forever)."""
        return _days(self.webhook_body_retention_days)

    @property
    def production(self) -> bool:
        """Whether this is a production deployment (``ORDERGUARD_ENV=production``)."""
        return self.env == "production"

    @property
    def idempotency_ttl(self) -> timedelta:
        """How long an idempotency record is kept."""
        return timedelta(hours=self.idempotency_ttl_hours)

    @classmethod
    def load(cls, env: dict[str, str] | None = None) -> Settings:
        """Settings from the TOML file (if any) overlaid with the environment."""
        env = dict(os.environ if env is None else env)
        _refuse_unknown_variables(env)
        values: dict[str, Any] = _read_file(env)
        _file_types(values)
        for f in fields(cls):
            name = variable(f.name)
            if name in env:
                values[f.name] = env[name]
        return cls._checked(values)

    @classmethod
    def _checked(cls, values: dict[str, Any]) -> Settings:
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(values) - set(known))
        if unknown:  # only the file can hold one: the environment is checked by name
            problem = f"unknown setting {unknown[0]} in the config file"
            raise ConfigError(did_you_mean(problem, unknown[0], known))
        types = get_type_hints(cls)
        for name, value in values.items():
            values[name] = _convert(name, value, types[name])
        settings = cls(**values)
        if settings.env not in MODES:
            raise ConfigError(f"env must be one of {', '.join(MODES)}, not {settings.env!r}")
        if settings.idempotency_ttl_hours < 24:
            raise ConfigError("idempotency_ttl_hours must be at least 24 (G2)")
        for name in AT_LEAST_ONE:
            if getattr(settings, name) < 1:
                raise ConfigError(f"{name} must be at least 1")
        for name in POSITIVE:
            if getattr(settings, name) <= 0:
                raise ConfigError(f"{name} must be more than 0")
        _check_retention(settings)
        if settings.planted_defect not in (None, *PLANTED_DEFECTS):
            raise ConfigError(
                f"planted_defect must be one of {', '.join(PLANTED_DEFECTS)}, "
                f"not {settings.planted_defect!r}"
            )
        if settings.default_country:
            try:
                country = country_code(settings.default_country)
            except NotACountry as exc:
                raise ConfigError(f"default_country: {exc}") from None
            object.__setattr__(settings, "default_country", country)
        return settings


def _check_retention(settings: Settings) -> None:
    """Raise ``ConfigError`` for a retention that would prune too early or never make sense."""
    for name in RETENTION_DAYS:
        days = getattr(settings, name)
        if days < 0 or days > RETENTION_MAX_DAYS:
            raise ConfigError(
                f"{name} must be 0 (keep forever) or 1 to {RETENTION_MAX_DAYS} days, not {days}"
            )
    if settings.retention_batch > RETENTION_MAX_BATCH:
        raise ConfigError(f"retention_batch must be at most {RETENTION_MAX_BATCH}")
    retention = settings.outbox_retention
    if retention is not None and timedelta(hours=settings.outbox_backfill_hours) >= retention:
        raise ConfigError(
            "outbox_backfill_hours must be shorter than outbox_retention_days: a sink switched "
            "on would catch up on events retention deletes"
        )


def _days(days: int) -> timedelta | None:
    return timedelta(days=days) if days else None


def variable(setting: str) -> str:
    """A setting's environment variable: ``public_url`` -> ``ORDERGUARD_PUBLIC_URL``."""
    return f"{PREFIX}{setting.upper()}"


def known_variables() -> list[str]:
    """Every ``ORDERGUARD_*`` environment variable orderguard reads."""
    return [variable(f.name) for f in fields(Settings)] + list(OTHER_VARIABLES)


def did_you_mean(problem: str, name: str, known: list[str]) -> str:
    """``problem``, followed by the known name closest to ``name`` (when one is close)."""
    stems = {k.removeprefix(PREFIX): k for k in known}  # the shared prefix proves nothing
    close = difflib.get_close_matches(name.removeprefix(PREFIX), list(stems), n=1, cutoff=0.6)
    return f"{problem}: did you mean {stems[close[0]]}?" if close else problem


def _refuse_unknown_variables(env: dict[str, str]) -> None:
    """Raise ``ConfigError`` for the first ``ORDERGUARD_*`` variable that nothing reads."""
    known = known_variables()
    for name in sorted(env):
        meant = meant_for_orderguard(name)
        if name not in known and meant is not None:
            raise ConfigError(did_you_mean(f"unknown setting {name}", meant, known))


def meant_for_orderguard(name: str) -> str | None:
    """The ``ORDERGUARD_*`` name the variable ``name`` was probably meant as, when it looks
    like one of orderguard's: its first word is ``ORDERGUARD`` in any case, or nearly (a
    typo), followed by a separator (``orderguard_env``, ``ORDERGAURD-ENV``); else ``None``."""
    word = re.match(r"[A-Za-z]+", name)
    if word is None or len(name) <= word.end() or name[word.end()].isalnum():
        return None
    likeness = difflib.SequenceMatcher(None, word.group().upper(), _PREFIX_WORD).ratio()
    if likeness < _PREFIX_LIKENESS:
        return None
    return PREFIX + re.sub(r"[^A-Z0-9]", "_", name[word.end() + 1 :].upper())


def _read_file(env: dict[str, str]) -> dict[str, Any]:
    path = Path(env.get("ORDERGUARD_CONFIG", "orderguard.toml"))
    if not path.is_file():
        if "ORDERGUARD_CONFIG" in env:
            raise ConfigError(f"config file {path} does not exist")
        return {}
    try:
        document = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    for name, value in document.items():
        if name != TABLE:  # a setting outside the table would be silently ignored
            what = f"table [{name}]" if isinstance(value, dict) else f"key {name}"
            raise ConfigError(f"{path}: {what} is outside the [{TABLE}] table")
    table = document.get(TABLE, {})
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: {TABLE} must be a table ([{TABLE}])")
    return dict(table)


def _file_types(values: dict[str, Any]) -> None:
    """Raise ``ConfigError`` for a file value whose TOML type is not its setting's."""
    types = get_type_hints(Settings)
    for name, value in values.items():
        kind = types.get(name)
        if kind is None or value is None:
            continue
        if kind is bool:
            ok = isinstance(value, bool)
        elif kind is int:
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif kind is float:
            ok = isinstance(value, int | float) and not isinstance(value, bool)
        else:
            ok = isinstance(value, str)
        if not ok:
            raise ConfigError(
                f"{name} in the config file must be {_TOML_NAMES.get(kind, 'text')}, not {value!r}"
            )


#: How a setting's type is named in an error about a file value.
_TOML_NAMES: dict[Any, str] = {bool: "true or false", int: "a whole number", float: "a number"}


def _int(name: str, value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a whole number, not {value!r}") from None


def _float(name: str, value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number, not {value!r}") from None
    if not math.isfinite(number) or number < 0:
        raise ConfigError(f"{name} must be a finite number, 0 or more, not {value!r}")
    return number


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


def given(setting: str, env: dict[str, str] | None = None) -> bool:
    """Whether ``setting`` was given (in the environment or the config file), not defaulted."""
    env = dict(os.environ if env is None else env)
    return variable(setting) in env or setting in _read_file(env)

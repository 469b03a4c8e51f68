"""``orderguard doctor``: check a deployment end to end and say how to fix what is wrong.

Every check gives pass / warn / fail (or skip when there is nothing to check) and, unless
it passed, the fix in one line. The worker runs the same checks periodically and exports
them as ``orderguard_check_status``.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from orderguard.config import Settings
from orderguard.domain.stuck import STUCK_AFTER, STUCK_STATES
from orderguard.observability.checks import Check, Status
from orderguard.observability.doctor_accounts import account_checks
from orderguard.observability.doctor_network import (
    greets,
    no_provider,
    provider_check,
    webhook_secret_check,
    webhook_url_check,
)
from orderguard.observability.hooks import OutboxStats
from orderguard.observability.readiness import heartbeat_horizon, worker_check
from orderguard.production import production_problems
from orderguard.providers import registry
from orderguard.providers.base import PaymentProvider
from orderguard.storage import migrate
from orderguard.storage.budget import nearly_full
from orderguard.storage.database import Database, redact_url
from orderguard.storage.errors import StorageError
from orderguard.storage.ops_stats import probe_postgres
from orderguard.storage.ports import OpsStats, UnitOfWorkFactory

#: Seconds any one check may take.
CHECK_TIMEOUT_S = 10.0
#: Outbox lag above this is a warning.
OUTBOX_LAG_WARN_S = 300.0
#: A database round trip slower than this (seconds) is a warning.
SLOW_DATABASE_S = 0.5
#: Free disk space (bytes) next to a SQLite file below which doctor warns, and fails.
DISK_WARN, DISK_FAIL = 1 << 30, 100 << 20


@dataclass(frozen=True, slots=True)
class Targets:
    """Services checked when configured (``None``: not part of this deployment)."""

    smtp_url: str | None = None
    nats_url: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> Targets:
        """Whatever SMTP and NATS URLs the settings carry."""
        return cls(
            smtp_url=settings.smtp_url,
            nats_url=settings.nats_url,
        )


@dataclass
class Doctor:
    """The checks of one deployment; ``storage`` is ``None`` when it could not be opened."""

    settings: Settings
    storage: UnitOfWorkFactory | None
    db_error: str | None
    providers: Sequence[PaymentProvider]
    outbox: OutboxStats
    targets: Targets = Targets()
    #: This host's clock, held against the wallets' gateways.
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)

    async def run(self) -> list[Check]:
        """Every check, in a fixed order."""
        checks = [self._sqlite_file(), await self._database()]
        checks += await self._from_database()
        checks += await self._providers() or [no_provider(self.settings)]
        checks.append(webhook_secret_check(self.settings))
        checks.append(await webhook_url_check(self.settings, [p.name for p in self.providers]))
        checks.append(await greets("smtp", self.targets.smtp_url, 25, b"220"))
        checks.append(await greets("nats", self.targets.nats_url, 4222, b"INFO"))
        checks += await self._mode()
        return checks

    async def _providers(self) -> list[Check]:
        """Each account with a checkup (keys, signature, clock, notify URL), then a
        read-only call to every other provider."""
        built = {p.name: p for p in self.providers}
        checks: list[Check] = []
        for plugin, account in registry.configured(self.settings):
            if plugin.checkup is not None:
                provider = built.pop(account.name, None)
                checks += await account_checks(
                    plugin, account, provider, self.settings, clock=self.clock
                )
        return checks + [await provider_check(p, self.settings) for p in built.values()]

    # -- the mode ------------------------------------------------------------------------

    async def _mode(self) -> list[Check]:
        """Development says so; production fails on each unsafe default, with its fix."""
        if not self.settings.production:
            problems = production_problems(self.settings, active_api_keys=0)
            detail = "development: the in-process sandbox is allowed; its orders are test mode"
            if not problems:
                return [Check("mode", Status.PASS, detail)]
        else:
            keys = await self._active_keys()
            problems = production_problems(self.settings, active_api_keys=keys)
            if not problems:
                return [Check("mode", Status.PASS, "production: no unsafe default")]
        return [
            Check(f"{p.mode} {p.setting}", Status.FAIL, f"{p.setting} {p.problem}", p.fix)
            for p in problems
        ]

    async def _active_keys(self) -> int:
        """API keys not revoked (0 when the database cannot say)."""
        if self.storage is None:
            return 0
        try:
            async with self.storage.reader() as uow:
                return await uow.api_keys.count_active()
        except StorageError:
            return 0

    # -- the database --------------------------------------------------------------------

    def _sqlite_file(self) -> Check:
        url = self.settings.database_url
        if not url.startswith("sqlite:///"):
            return Check("sqlite file", Status.SKIP, "not using SQLite")
        path = Path(url.removeprefix("sqlite:///")).resolve()
        free = shutil.disk_usage(path.parent if path.parent.exists() else Path.cwd()).free
        space = f"{free / (1 << 30):.1f} GiB free"
        if not path.is_file():
            return Check(
                "sqlite file",
                Status.FAIL,
                f"{path} does not exist ({space})",
                "run `orderguard migrate` (or check ORDERGUARD_DATABASE_URL)",
            )
        if free < DISK_WARN:
            status = Status.FAIL if free < DISK_FAIL else Status.WARN
            return Check(
                "sqlite file", status, f"{path}: {space}", f"free disk space on {path.parent}"
            )
        return Check("sqlite file", Status.PASS, f"{path}: {space}")

    async def _database(self) -> Check:
        where = redact_url(self.settings.database_url)
        fix = "check ORDERGUARD_DATABASE_URL and that the database server is running"
        if self.storage is None:
            return Check("database", Status.FAIL, f"{where}: {self.db_error}", fix)
        try:
            latency = await asyncio.wait_for(self.storage.stats.ping(), CHECK_TIMEOUT_S)
        except (StorageError, TimeoutError) as exc:
            return Check("database", Status.FAIL, f"{where}: {exc or 'no answer'}", fix)
        detail = f"{where} answers in {latency * 1000:.0f} ms"
        if latency > SLOW_DATABASE_S:
            return Check("database", Status.WARN, detail, "the database is slow: check its load")
        return Check("database", Status.PASS, detail)

    async def _from_database(self) -> list[Check]:
        names = (
            "schema", "clock skew", "database connections", "worker", "outbox",
            "stuck orders", "flagged orders",
        )  # fmt: skip
        if self.storage is None:
            return [Check(n, Status.SKIP, "database unreachable") for n in names]
        db = self.storage.stats
        checks: list[Check] = []
        for name, check in (
            ("schema", lambda: self._schema(db)),
            ("clock skew", lambda: self._clock_skew(db)),
            ("database connections", lambda: self._connections(db)),
            ("worker", lambda: self._worker(db)),
            ("outbox", self._outbox),
        ):
            checks.append(await _guarded(name, check))
        checks += await self._orders(db)
        return checks

    async def _schema(self, db: OpsStats) -> Check:
        version, expected = await db.schema_version(), migrate.latest_version()
        if version < expected:
            return Check(
                "schema",
                Status.FAIL,
                f"at {version}, this orderguard needs {expected}",
                "run `orderguard migrate`",
            )
        if version > expected:
            return Check(
                "schema",
                Status.WARN,
                f"at {version}, newer than this orderguard ({expected})",
                "upgrade orderguard on this host",
            )
        return Check("schema", Status.PASS, f"version {version}")

    async def _clock_skew(self, db: OpsStats) -> Check:
        started = time.perf_counter()
        theirs = await db.database_now()
        if theirs is None:
            return Check("clock skew", Status.SKIP, "SQLite uses this host's clock")
        round_trip = time.perf_counter() - started
        skew = abs((datetime.now(UTC) - theirs).total_seconds()) - round_trip / 2
        detail = f"{max(skew, 0):.1f}s between this host and the database"
        fix = "synchronise the clocks (NTP) of this host and the database server"
        if skew > 60:
            return Check("clock skew", Status.FAIL, detail, fix)
        if skew > 5:
            return Check("clock skew", Status.WARN, detail, fix)
        return Check("clock skew", Status.PASS, detail)

    async def _connections(self, db: OpsStats) -> Check:
        name = "database connections"
        room = await db.connection_room()
        if room is None:
            return Check(name, Status.SKIP, "SQLite: one file, no connection limit")
        detail = (
            f"{room.in_use} of {room.available} open (max_connections "
            f"{room.max_connections} - {room.reserved} reserved); each process here opens "
            f"up to {self.settings.db_pool_size}"
        )
        if nearly_full(room):
            fix = (
                "raise max_connections or lower ORDERGUARD_DB_POOL_SIZE; add up every "
                "host's pools with `orderguard budget` (docs/deployment.md)"
            )
            return Check(name, Status.WARN, detail, fix)
        return Check(name, Status.PASS, detail)

    async def _worker(self, db: OpsStats) -> Check:
        seen = await db.last_heartbeat()
        return worker_check(seen, now=datetime.now(UTC), horizon=heartbeat_horizon(self.settings))

    async def _outbox(self) -> Check:
        lag = await self.outbox.lag_seconds(datetime.now(UTC))
        dead = await self.outbox.dead_letters_by_sink()
        if lag is None and dead is None:
            return Check("outbox", Status.SKIP, "no delivery records to read")
        dead_total = sum((dead or {}).values())
        detail = f"lag {lag or 0:.0f}s, {dead_total} dead letters"
        if dead_total:
            return Check("outbox", Status.WARN, detail, "see docs/runbook.md#dead-letters")
        if lag is not None and lag > OUTBOX_LAG_WARN_S:
            return Check("outbox", Status.WARN, detail, "see docs/runbook.md#outbox-lag")
        return Check("outbox", Status.PASS, detail)

    async def _orders(self, db: OpsStats) -> list[Check]:
        now = datetime.now(UTC)
        try:
            stats = await asyncio.wait_for(
                db.read(now=now, watched=frozenset(), shortest_wait=timedelta(0)),
                CHECK_TIMEOUT_S,
            )
        except (StorageError, TimeoutError) as exc:
            return [
                Check(n, Status.FAIL, f"could not count: {exc}")
                for n in ("stuck orders", "flagged orders")
            ]
        minutes = int(STUCK_AFTER.total_seconds() // 60)
        stuck = {state: n for state, n in sorted(stats.stuck_by_state.items()) if n}
        if stuck:
            stuck_check = Check(
                "stuck orders",
                Status.WARN,
                f"{sum(stuck.values())} unresolved payments unchanged for over {minutes} minutes: "
                + ", ".join(f"{n} in {state}" for state, n in stuck.items()),
                f"orderguard orders list --stuck --older-than {minutes}m "
                "(docs/runbook.md#stuck-orders)",
            )
        else:
            states = " or ".join(sorted(STUCK_STATES))
            stuck_check = Check(
                "stuck orders", Status.PASS, f"none in {states} unchanged for {minutes} minutes"
            )
        flagged = sum(stats.flagged_by_reason.values())
        if flagged:
            flagged_check = Check(
                "flagged orders",
                Status.WARN,
                f"{flagged} open review flags await a person",
                "orderguard orders list --flagged",
            )
        else:
            flagged_check = Check("flagged orders", Status.PASS, "review queue empty")
        return [stuck_check, flagged_check]


async def _guarded(name: str, check: Callable[[], Awaitable[Check]]) -> Check:
    try:
        return await asyncio.wait_for(check(), CHECK_TIMEOUT_S)
    except (StorageError, TimeoutError) as exc:
        return Check(name, Status.FAIL, f"could not check: {exc or 'timed out'}")


async def open_for_doctor(settings: Settings) -> tuple[Database | None, str | None]:
    """The configured database without creating or migrating anything; or why not."""
    from orderguard.storage.connect import connect

    url = settings.database_url
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_file():
        return None, "no database file"
    if url.startswith(("postgresql://", "postgres://")):
        refused = await probe_postgres(url)
        if refused is not None:
            return None, " ".join(refused.split())
    try:
        return await asyncio.wait_for(connect(url, pool_size=1), CHECK_TIMEOUT_S + 5), None
    except (StorageError, TimeoutError) as exc:
        return None, str(exc) or "no answer"

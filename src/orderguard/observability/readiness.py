"""``/readyz``: the database answers, its schema is the one this code needs, and a worker
is alive when one is expected. Each check has a time limit, so a hung database makes
readiness fail fast instead of hanging the probe.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from orderguard.config import Settings
from orderguard.observability.checks import Check, Status
from orderguard.storage import migrate
from orderguard.storage.errors import StorageError
from orderguard.storage.ports import OpsStats

#: Seconds each readiness query may take.
CHECK_TIMEOUT_S = 2.0


def heartbeat_horizon(settings: Settings) -> timedelta:
    """How old the newest worker heartbeat may be before the worker counts as gone."""
    return timedelta(seconds=max(15.0, 3 * settings.worker_round_s + 10))


async def readiness(
    stats: OpsStats, settings: Settings, *, now: datetime, worker_expected: bool
) -> list[Check]:
    """The readiness checks; those after a failed database check are not attempted."""
    try:
        latency = await asyncio.wait_for(stats.ping(), CHECK_TIMEOUT_S)
        version = await asyncio.wait_for(stats.schema_version(), CHECK_TIMEOUT_S)
    except (StorageError, TimeoutError) as exc:
        reason = str(exc) or f"no answer within {CHECK_TIMEOUT_S:g}s"
        return [Check("database", Status.FAIL, f"unreachable: {reason}", "check the database")]
    checks = [Check("database", Status.PASS, f"reachable in {latency * 1000:.0f} ms")]
    expected = migrate.latest_version()
    if version < expected:
        checks.append(
            Check("schema", Status.FAIL, f"at {version}, needs {expected}", "orderguard migrate")
        )
    else:
        checks.append(Check("schema", Status.PASS, f"version {version}"))
    if worker_expected:
        checks.append(await _worker(stats, settings, now))
    return checks


async def _worker(stats: OpsStats, settings: Settings, now: datetime) -> Check:
    try:
        seen = await asyncio.wait_for(stats.last_heartbeat(), CHECK_TIMEOUT_S)
    except (StorageError, TimeoutError) as exc:
        return Check("worker", Status.FAIL, f"heartbeat unreadable: {exc}")
    return worker_check(seen, now=now, horizon=heartbeat_horizon(settings))


def worker_check(seen: datetime | None, *, now: datetime, horizon: timedelta) -> Check:
    """Whether the newest heartbeat (``seen``) is recent enough."""
    start = "start one: `orderguard worker` (or `orderguard serve` without --no-worker)"
    if seen is None:
        return Check("worker", Status.FAIL, "no worker has ever run on this database", start)
    age = (now - seen).total_seconds()
    if age > horizon.total_seconds():
        return Check("worker", Status.FAIL, f"last heartbeat {age:.0f}s ago", start)
    return Check("worker", Status.PASS, f"heartbeat {max(age, 0):.0f}s ago")

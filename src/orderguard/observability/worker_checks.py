"""The worker's periodic doctor run, exported as ``orderguard_check_status``."""

from __future__ import annotations

import logging
import time

from orderguard.container import Container
from orderguard.observability.checks import Check, Status
from orderguard.observability.doctor import Doctor, Targets
from orderguard.observability.metrics import CHECK_STATUS, CHECK_TIMESTAMP
from orderguard.observability.wiring import outbox_stats, sql_database
from orderguard.providers.instrumented import ObservedBreaker

log = logging.getLogger("orderguard.doctor")
#: Seconds between the worker's doctor runs.
CHECK_EVERY_SECONDS = 60.0


async def run_checks(container: Container) -> list[Check]:
    """Run the doctor's checks on the worker's own wiring and export the outcome."""
    db = sql_database(container)
    doctor = Doctor(
        container.settings,
        db=db,
        db_error=None if db is not None else "in-memory storage",
        providers=[slot.provider for slot in container.payments.providers.slots],
        outbox=outbox_stats(db, container.settings) if db is not None else _NoOutbox(),
        targets=Targets.from_settings(container.settings),
    )
    checks = await doctor.run()
    for check in checks:
        CHECK_STATUS.labels(check.name).set(check.status.severity)
        if check.status is Status.FAIL:
            log.warning("doctor: %s fails: %s (fix: %s)", check.name, check.detail, check.fix)
    for slot in container.payments.providers.slots:
        if isinstance(slot.breaker, ObservedBreaker):
            slot.breaker.publish()
    CHECK_TIMESTAMP.set(time.time())
    return checks


class _NoOutbox:
    async def lag_seconds(self, now: object) -> float | None:
        return None

    async def dead_letters_by_sink(self) -> dict[str, int] | None:
        return None

"""The worker's periodic doctor run, exported as ``orderguard_check_status``."""

from __future__ import annotations

import logging
import time

from orderguard.bootstrap import Container
from orderguard.observability.checks import Check, Status
from orderguard.observability.doctor import Doctor, Targets
from orderguard.observability.instrumented import ObservedBreaker
from orderguard.observability.metrics import CHECK_STATUS, CHECK_TIMESTAMP
from orderguard.observability.wiring import container_outbox_stats

log = logging.getLogger("orderguard.doctor")
#: Seconds between the worker's doctor runs.
CHECK_EVERY_SECONDS = 60.0


async def run_checks(container: Container) -> list[Check]:
    """Run the doctor's checks on the worker's own wiring and export the outcome."""
    doctor = Doctor(
        container.settings,
        storage=container.storage,
        db_error=None,
        providers=[slot.provider for slot in container.payments.providers.slots],
        outbox=container_outbox_stats(container),
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

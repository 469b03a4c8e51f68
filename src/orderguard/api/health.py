"""``/healthz``, ``/readyz`` and ``/metrics``.

``metrics_router`` is mounted on the main app, or on the metrics app that ``serve
--metrics-port`` binds to an address of its own.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol

import orjson
from fastapi import APIRouter, Request
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.responses import Response

from orderguard.api.ports import Wired
from orderguard.api.render import Payments
from orderguard.observability.checks import Status
from orderguard.observability.collector import DatabaseCollector, database_up_text
from orderguard.observability.instrumented import ObservedBreaker
from orderguard.observability.metrics import process_metrics_text
from orderguard.observability.readiness import readiness
from orderguard.storage.errors import StorageError


class Probes(Wired, Protocol):
    """What ``/readyz`` and ``/metrics`` read: the storage's statistics, the settings and
    the providers' breakers (the database's gauges come from the ``gauges`` the app was
    given)."""

    @property
    def payments(self) -> Payments: ...


def probes(request: Request) -> Probes:
    """The wired application, as the probes see it."""
    found: Probes = request.app.state.container
    return found


router = APIRouter(tags=["observability"])
metrics_router = APIRouter(tags=["observability"])
log = logging.getLogger("orderguard.metrics")
#: Seconds the database may take to answer a scrape's queries.
SCRAPE_TIMEOUT_S = 3.0


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is alive."""
    return {"status": "ok"}


@router.get(
    "/readyz",
    responses={503: {"description": "Not ready: ``failing`` names the failed checks"}},
)
async def readyz(request: Request) -> Response:
    """Ready to take orders: database reachable, schema current, worker alive (when the
    settings expect one: ``ORDERGUARD_READY_REQUIRES_WORKER``)."""
    wired = probes(request)
    settings = wired.settings
    checks = await readiness(
        wired.storage.stats,
        settings,
        now=datetime.now(UTC),
        worker_expected=getattr(settings, "ready_requires_worker", True),
    )
    failing = [c.name for c in checks if c.status is Status.FAIL]
    body = {
        "status": "unready" if failing else "ready",
        "failing": failing,
        "checks": [c.as_dict() for c in checks],
    }
    return Response(
        orjson.dumps(body),
        503 if failing else 200,
        media_type="application/json",
        headers={"Cache-Control": "no-store"},
    )


@metrics_router.get("/metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    """Prometheus metrics: this deployment's process counters and the database's gauges."""
    _publish_breakers(probes(request))
    text = process_metrics_text()
    collector = _collector(request)
    if collector is not None:
        try:
            text += await asyncio.wait_for(collector.text(datetime.now(UTC)), SCRAPE_TIMEOUT_S)
            text += database_up_text(True)
        except (StorageError, TimeoutError) as exc:
            log.warning("metrics: the database gauges are left out: %s", exc or "timed out")
            text += database_up_text(False)
    return Response(text, media_type=CONTENT_TYPE_LATEST)


def _collector(request: Request) -> DatabaseCollector | None:
    """The collector over the current wiring's database (rebuilt if the app re-opened),
    built by the ``gauges`` the app was given; ``None`` without them."""
    state = request.app.state
    gauges: Callable[[Probes], DatabaseCollector] | None = getattr(state, "gauges", None)
    if gauges is None:
        return None
    cached = getattr(state, "db_collector", None)
    if cached is None or cached[0] is not state.container:
        cached = state.db_collector = (state.container, gauges(state.container))
    collector: DatabaseCollector = cached[1]
    return collector


def _publish_breakers(wired: Probes) -> None:
    """Bring this process's breaker gauges up to date (open turns half-open with time)."""
    for slot in wired.payments.providers.slots:
        if isinstance(slot.breaker, ObservedBreaker):
            slot.breaker.publish()

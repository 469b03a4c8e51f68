"""Metrics counted in the process that sees the event (intake requests, provider calls,
circuit breakers, the worker's checks), safe when several processes serve ``/metrics``.

With ``PROMETHEUS_MULTIPROC_DIR`` set (before the process starts), ``prometheus-client``
keeps these values in files in that folder and :func:`process_metrics_text` merges every
process's files, so any API process answers for all of them (and for the worker, when it
shares the folder). Empty the folder before starting the processes of a deployment.
Gauges use ``livemax`` (the worst value among live processes), except
``orderguard_api_process_requests``, ``liveall`` (one sample per live process, by ``pid``).
``orderguard serve --processes N`` makes a private folder of its own and tells each exited
process's live gauges apart (:func:`forget_process`).
"""

from __future__ import annotations

import atexit
import functools
import os

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import multiprocess as _multiprocess

#: Where multi-process metric files go; ``None`` in single-process mode.
MULTIPROC_DIR = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None
#: This process's metrics (in single-process mode; in multi-process mode values go to files).
REGISTRY = CollectorRegistry(auto_describe=True)

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

INTAKE_REQUESTS = Counter(
    "orderguard_intake_requests",
    "POST /v1/orders requests by outcome (created, replayed, invalid, conflict, unavailable, "
    "error).",
    ["outcome"],
    registry=REGISTRY,
)
INTAKE_LATENCY = Histogram(
    "orderguard_intake_duration_seconds",
    "Time to answer POST /v1/orders, by outcome.",
    ["outcome"],
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
PROVIDER_CALLS = Counter(
    "orderguard_provider_calls",
    "Calls to payment providers (each attempt, retries included) by outcome: ok or the error kind.",
    ["provider", "operation", "outcome"],
    registry=REGISTRY,
)
PROVIDER_LATENCY = Histogram(
    "orderguard_provider_call_duration_seconds",
    "Time of one call to a payment provider.",
    ["provider", "operation", "outcome"],
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
API_PROCESS_REQUESTS = Gauge(
    "orderguard_api_process_requests",
    "HTTP requests answered by this API process since it started (under serve --processes, "
    "one sample per live process, labelled by pid).",
    multiprocess_mode="liveall",
    registry=REGISTRY,
)
CIRCUIT_STATE = Gauge(
    "orderguard_provider_circuit_state",
    "A provider's circuit breaker: 0 closed, 1 half-open (probing), 2 open (calls refused).",
    ["provider"],
    multiprocess_mode="livemax",
    registry=REGISTRY,
)
CHECK_STATUS = Gauge(
    "orderguard_check_status",
    "The worker's periodic doctor checks: 0 pass (or skipped), 1 warn, 2 fail.",
    ["check"],
    multiprocess_mode="livemax",
    registry=REGISTRY,
)
CHECK_TIMESTAMP = Gauge(
    "orderguard_check_run_timestamp_seconds",
    "When the worker last ran its doctor checks (unix time).",
    multiprocess_mode="livemax",
    registry=REGISTRY,
)


def process_metrics_text() -> bytes:
    """The exposition text of the process metrics (of every process in multi-process mode)."""
    if MULTIPROC_DIR is None:
        return generate_latest(REGISTRY)
    return generate_latest(_merged(MULTIPROC_DIR))


@functools.cache
def _merged(folder: str) -> CollectorRegistry:
    """The registry that merges every process's files in ``folder`` (built once: it reads
    the files on each scrape)."""
    merged = CollectorRegistry()
    _multiprocess.MultiProcessCollector(merged, path=folder)  # type: ignore[no-untyped-call]
    return merged


def forget_process(pid: int, folder: str) -> None:
    """Drop the live gauges of the exited process ``pid`` from ``folder`` (its counters and
    histograms stay: they still count in the sums)."""
    _multiprocess.mark_process_dead(pid, folder)  # type: ignore[no-untyped-call]


def _mark_dead() -> None:  # pragma: no cover - runs at interpreter exit
    if MULTIPROC_DIR is not None:
        _multiprocess.mark_process_dead(os.getpid(), MULTIPROC_DIR)  # type: ignore[no-untyped-call]


atexit.register(_mark_dead)

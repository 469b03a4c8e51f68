"""Intake requests counted and timed by outcome, and every request counted by the API
process that answered it (called by the API's edge, :mod:`orderguard.api.edge`)."""

from __future__ import annotations

from orderguard.observability.metrics import (
    API_PROCESS_REQUESTS,
    INTAKE_LATENCY,
    INTAKE_REQUESTS,
)

#: The route counted as intake.
INTAKE_PATH = "/v1/orders"


def intake_outcome(status: int, *, replayed: bool) -> str:
    """The ``outcome`` label of an intake answer."""
    if replayed and status < 300:
        return "replayed"
    if status < 300:
        return "created"
    if status == 409:
        return "conflict"
    if status in {401, 403}:
        return "unauthorized"
    if status == 503:
        return "unavailable"
    if status >= 500:
        return "error"
    return "invalid"


def observe_intake(status: int, replayed: bool, seconds: float) -> None:
    """Count an answer of ``POST /v1/orders`` by outcome, with its latency."""
    outcome = intake_outcome(status, replayed=replayed)
    INTAKE_REQUESTS.labels(outcome).inc()
    INTAKE_LATENCY.labels(outcome).observe(seconds)


def count_request() -> None:
    """Count an HTTP request this process answers (``orderguard_api_process_requests``: how
    ``serve --processes`` shares requests among its processes)."""
    API_PROCESS_REQUESTS.inc()

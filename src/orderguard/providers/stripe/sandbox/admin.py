"""Test and demo endpoints: the ledger oracle, fault counts, runtime fault and outage switches.

Also the sandbox's clock (``/_sandbox/clock``: moved forward to expire idempotency keys or
let the search index catch up), a switch that holds writes mid-flight (``/_sandbox/writes``:
their keys stay in use), and settling refunds (``/_sandbox/refunds/{id}``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from orderguard.providers.stripe.sandbox.faults import PROFILES, profile_from
from orderguard.providers.stripe.sandbox.scripted import scripted_answers
from orderguard.providers.stripe.sandbox.service import Sandbox

#: The most the clock may be moved in one call (a year), to keep its arithmetic sane.
MAX_ADVANCE_S = 366 * 24 * 3600.0


def _sandbox(request: Request) -> Sandbox:
    sandbox: Sandbox = request.app.state.sandbox
    return sandbox


async def ledger(request: Request) -> JSONResponse:
    """Every payment intent, charge, refund and event the sandbox holds."""
    book = _sandbox(request).ledger
    return JSONResponse(
        {
            "payment_intents": book.all("payment_intent"),
            "charges": book.all("charge"),
            "refunds": book.all("refund"),
            "events": book.events(),
        }
    )


async def faults(request: Request) -> JSONResponse:
    """Injected faults: counts by kind and the full log in order."""
    log = _sandbox(request).ledger.faults()
    return JSONResponse({"counts": dict(Counter(f["kind"] for f in log)), "log": log})


async def set_faults(request: Request) -> JSONResponse:
    """Replace the fault profile: ``{"profile": "flaky"}`` or field values over ``none``."""
    body = await request.json()
    sandbox = _sandbox(request)
    try:
        name = body.get("profile")
        sandbox.profile = PROFILES[name] if name else profile_from(body)
    except (KeyError, ValueError, TypeError) as exc:
        return JSONResponse({"error": str(exc)}, status_code=400)
    return JSONResponse(asdict(sandbox.profile))


async def outage(request: Request) -> JSONResponse:
    """Start an outage window now: ``{"seconds": N}`` (0 ends one)."""
    seconds = float((await request.json()).get("seconds", 0))
    _sandbox(request).start_outage(seconds)
    return JSONResponse({"outage_seconds": seconds})


async def script_answers(request: Request) -> JSONResponse:
    """Queue answers for the next API calls: ``{"status": 400, "type": ..., "times": 1}``."""
    sandbox = _sandbox(request)
    try:
        sandbox.scripted += scripted_answers(await request.json())
    except (ValueError, TypeError, AttributeError) as exc:
        return JSONResponse({"error": str(exc)}, status_code=400)
    return JSONResponse({"queued": len(sandbox.scripted)})


async def _json_object(request: Request) -> dict[str, object] | None:
    try:
        body = await request.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


async def clock(request: Request) -> JSONResponse:
    """Move the sandbox's clock forward: ``{"advance_s": N}`` (0 <= N <= a year)."""
    sandbox = _sandbox(request)
    if request.method == "POST":
        body = await _json_object(request)
        advance = body.get("advance_s") if body is not None else None
        if (
            not isinstance(advance, int | float)
            or isinstance(advance, bool)
            or not 0 <= advance <= MAX_ADVANCE_S
        ):
            return JSONResponse(
                {"error": f"advance_s must be a number from 0 to {MAX_ADVANCE_S:.0f}"},
                status_code=400,
            )
        sandbox.clock_offset += float(advance)
    return JSONResponse({"now": sandbox.now(), "offset_s": sandbox.clock_offset})


async def writes(request: Request) -> JSONResponse:
    """Hold writes mid-flight (``{"paused": true}``) or let them go; GET shows keys in use."""
    sandbox = _sandbox(request)
    if request.method == "POST":
        body = await _json_object(request)
        paused = body.get("paused") if body is not None else None
        if not isinstance(paused, bool):
            return JSONResponse({"error": "paused must be true or false"}, status_code=400)
        if paused:
            sandbox.writes_open.clear()
        else:
            sandbox.writes_open.set()
    return JSONResponse(
        {"paused": not sandbox.writes_open.is_set(), "keys_in_use": len(sandbox.keys_in_use)}
    )


async def settle_refund(request: Request) -> JSONResponse:
    """``{"status": "succeeded"|"failed", "failure_reason": ...}`` for a refund, with events."""
    sandbox = _sandbox(request)
    body = await _json_object(request)
    if body is None:
        return JSONResponse({"error": "a JSON object is expected"}, status_code=400)
    refund_id = request.path_params["refund"]
    outcome, _ = await sandbox.write(
        None, request.url.path, body, lambda p: sandbox.engine.settle_refund(refund_id, p)
    )
    return JSONResponse(outcome.body, status_code=outcome.status)


#: Admin routes, outside the authenticated ``/v1`` API.
ROUTES = [
    Route("/ledger", ledger, methods=["GET"]),
    Route("/_sandbox/faults", faults, methods=["GET"]),
    Route("/_sandbox/faults", set_faults, methods=["POST"]),
    Route("/_sandbox/outage", outage, methods=["POST"]),
    Route("/_sandbox/answers", script_answers, methods=["POST"]),
    Route("/_sandbox/clock", clock, methods=["GET", "POST"]),
    Route("/_sandbox/writes", writes, methods=["GET", "POST"]),
    Route("/_sandbox/refunds/{refund}", settle_refund, methods=["POST"]),
]

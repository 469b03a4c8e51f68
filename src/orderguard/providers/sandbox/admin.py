"""Test and demo endpoints: the ledger oracle, fault counts, runtime fault and outage switches."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from orderguard.providers.sandbox.faults import PROFILES, profile_from
from orderguard.providers.sandbox.scripted import scripted_answers
from orderguard.providers.sandbox.service import Sandbox


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


#: Admin routes, outside the authenticated ``/v1`` API.
ROUTES = [
    Route("/ledger", ledger, methods=["GET"]),
    Route("/_sandbox/faults", faults, methods=["GET"]),
    Route("/_sandbox/faults", set_faults, methods=["POST"]),
    Route("/_sandbox/outage", outage, methods=["POST"]),
    Route("/_sandbox/answers", script_answers, methods=["POST"]),
]

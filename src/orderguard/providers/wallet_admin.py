"""The wallet sandboxes' fault switch, the Stripe sandbox's shape: ``GET /_sandbox/faults``
(what was injected: counts by kind, the log in order, the profile in force) and
``POST /_sandbox/faults`` (``{"profile": "flaky"}``, or settings over ``none`` or over
``"base"``) to change the profile at run time."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from orderguard.providers.wallet_faults import PROFILES, FaultInjector, profile_from

#: The injector of the sandbox serving a request.
Injector = Callable[[Request], FaultInjector]


def fault_routes(injector_of: Injector) -> list[Route]:
    """The two routes, for a sandbox whose injector ``injector_of`` finds."""

    async def show(request: Request) -> JSONResponse:
        injector = injector_of(request)
        return JSONResponse(
            {
                "counts": injector.counts(),
                "log": injector.log,
                "profile": asdict(injector.profile),
            }
        )

    async def switch(request: Request) -> JSONResponse:
        injector = injector_of(request)
        try:
            body = await request.json()
            if not isinstance(body, dict):
                raise ValueError("a JSON object is expected")
            name = body.get("profile")
            if name is not None and name not in PROFILES:
                raise ValueError(f"no fault profile named {name!r} ({', '.join(PROFILES)})")
            injector.profile = PROFILES[name] if name is not None else profile_from(body)
        except (ValueError, TypeError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse(asdict(injector.profile))

    return [
        Route("/_sandbox/faults", show, methods=["GET"]),
        Route("/_sandbox/faults", switch, methods=["POST"]),
    ]

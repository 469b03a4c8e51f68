"""The hosted 3-D Secure page a shopper is redirected to, and its test shortcuts."""

from __future__ import annotations

import html
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from orderguard.providers.stripe.sandbox.ledger import Obj
from orderguard.providers.stripe.sandbox.service import Sandbox

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sandbox 3-D Secure</title></head>
<body><h1>Confirm your payment</h1>
<p>{amount} {currency} &mdash; payment {intent}</p>
<form method="post" action="/3ds/{intent}/approve"><button>Approve</button></form>
<form method="post" action="/3ds/{intent}/refuse"><button>Refuse</button></form>
</body></html>"""

_CANCELLED = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sandbox 3-D Secure</title></head>
<body><h1>Payment cancelled</h1>
<p>{amount} {currency} &mdash; payment {intent}</p>
<p>This payment was cancelled by the merchant and can no longer be approved.
Nothing was charged.</p>
</body></html>"""


def _sandbox(request: Request) -> Sandbox:
    sandbox: Sandbox = request.app.state.sandbox
    return sandbox


async def challenge(request: Request) -> Response:
    """The page with Approve and Refuse buttons."""
    outcome = _sandbox(request).engine.retrieve(request.path_params["intent"])
    if outcome.status != 200:
        return JSONResponse(outcome.body, status_code=outcome.status)
    intent = outcome.body
    if intent["status"] == "canceled":
        return _cancelled(intent, status_code=200)
    return HTMLResponse(_render(_PAGE, intent))


def _render(page: str, intent: Obj) -> str:
    return page.format(
        intent=html.escape(intent["id"]),
        amount=intent["amount"],
        currency=html.escape(intent["currency"].upper()),
    )


def _cancelled(intent: Obj, *, status_code: int) -> HTMLResponse:
    """The page of a cancelled payment: nothing to approve or refuse any more."""
    return HTMLResponse(_render(_CANCELLED, intent), status_code=status_code)


async def _complete(request: Request, *, approved: bool) -> Response:
    sandbox = _sandbox(request)
    intent_id = request.path_params["intent"]
    outcome, _ = await sandbox.write(
        None,
        request.url.path,
        {},
        lambda _: sandbox.engine.authenticate(intent_id, approved=approved),
    )
    if outcome.status != 200:
        return JSONResponse(outcome.body, status_code=outcome.status)
    if outcome.body["status"] == "canceled":
        # Too late: the merchant cancelled the payment; the challenge changed nothing.
        return _cancelled(outcome.body, status_code=409)
    target = outcome.body.get("return_url") or "/"
    separator = "&" if "?" in target else "?"
    query = urlencode({"payment_intent": intent_id})
    return RedirectResponse(f"{target}{separator}{query}", status_code=303)


async def approve(request: Request) -> Response:
    """The shopper passed the challenge; redirect to the shop's return URL."""
    return await _complete(request, approved=True)


async def refuse(request: Request) -> Response:
    """The shopper failed the challenge; redirect to the shop's return URL."""
    return await _complete(request, approved=False)


#: Hosted page routes (no API key: the shopper's browser calls them).
ROUTES = [
    Route("/3ds/{intent}", challenge, methods=["GET"]),
    Route("/3ds/{intent}/approve", approve, methods=["POST"]),
    Route("/3ds/{intent}/refuse", refuse, methods=["POST"]),
]

"""The Stripe-compatible endpoints: the subset of ``/v1`` the Stripe adapter uses."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from orderguard.providers.stripe.sandbox import objects
from orderguard.providers.stripe.sandbox.engine import Outcome
from orderguard.providers.stripe.sandbox.forms import parse_form
from orderguard.providers.stripe.sandbox.ledger import Obj, json_bytes
from orderguard.providers.stripe.sandbox.service import Sandbox, error_response

Operation = Callable[[Request, Obj], Outcome]
#: The message of a 500 Stripe saved under the Idempotency-Key (fault ``error_saved``).
SAVED_500 = "An unknown error occurred (sandbox fault, saved under the Idempotency-Key)."


def _authorized(request: Request) -> bool:
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and key.startswith("sk_test_")


async def _params(request: Request, *, mutating: bool) -> Obj | None:
    """The call's parameters; ``None`` when the client hung up before sending them all."""
    if not mutating:
        return parse_form(request.url.query)
    try:
        return parse_form((await request.body()).decode())
    except ClientDisconnect:
        return None


async def handle(request: Request, op: Operation, *, mutating: bool) -> Response:
    """Authenticate, inject faults, run ``op`` (idempotently for writes), answer."""
    sandbox: Sandbox = request.app.state.sandbox
    if not _authorized(request):
        return error_response(401, "invalid_request_error", "Invalid API Key provided.")
    faults = sandbox.call_faults(mutating=mutating)
    early = await sandbox.before(faults, request.url.path)
    if early is not None:
        return early
    scripted = sandbox.next_scripted(request.url.path)
    saves = scripted is not None and scripted.saved and mutating
    if scripted is not None and not scripted.after and not saves:
        return scripted.response()
    params = await _params(request, mutating=mutating)
    if params is None:  # nobody is listening for an answer, and nothing was done
        return Response(status_code=499)
    replayed = False
    if mutating:
        key = request.headers.get("idempotency-key")
        saved_error = None
        if saves and scripted is not None:
            saved_error = scripted.outcome()
        elif faults.error_saved:
            saved_error = Outcome(500, objects.error("api_error", SAVED_500))
        outcome, replayed = await sandbox.write(
            key,
            request.url.path,
            params,
            lambda p: op(request, p),
            saved_error=saved_error,
            effect=scripted.after if saves and scripted is not None else True,
        )
    else:
        outcome = op(request, params)
    if scripted is not None and not (saves and (replayed or outcome.status != scripted.status)):
        return scripted.response()
    if faults.error_after:
        sandbox.fault("error_after", request.url.path)
        return error_response(500, "api_error", "Internal error (sandbox fault, after effect).")
    if faults.timeout_after:
        sandbox.fault("timeout_after", request.url.path)
        await sandbox.hold(request)
    headers = {"Request-Id": objects.new_id("req")}
    if replayed:
        headers.update(sandbox.replay_headers(outcome))
    return _Answer(outcome.body, status_code=outcome.status, headers=headers)


class _Answer(JSONResponse):
    """An API answer: the JSON starlette writes (compact, UTF-8), by :func:`json_bytes`."""

    def render(self, content: Any) -> bytes:
        return json_bytes(content)


def _sandbox(request: Request) -> Sandbox:
    sandbox: Sandbox = request.app.state.sandbox
    return sandbox


def _create_intent(request: Request, params: Obj) -> Outcome:
    base = str(request.base_url).rstrip("/")
    return _sandbox(request).engine.create_payment_intent(params, hosted_base=base)


def _retrieve(request: Request, params: Obj) -> Outcome:
    return _sandbox(request).engine.retrieve(request.path_params["intent"])


def _cancel(request: Request, params: Obj) -> Outcome:
    return _sandbox(request).engine.cancel(request.path_params["intent"], params)


def _search(request: Request, params: Obj) -> Outcome:
    return _sandbox(request).engine.search(params)


def _charges(request: Request, params: Obj) -> Outcome:
    return _sandbox(request).engine.list_charges(params)


def _refund(request: Request, params: Obj) -> Outcome:
    sandbox = _sandbox(request)
    return sandbox.engine.create_refund(params, pending=sandbox.refund_starts_pending())


def _refunds(request: Request, params: Obj) -> Outcome:
    return _sandbox(request).engine.list_refunds(params)


def _find_refund(request: Request, params: Obj) -> Outcome:
    return _sandbox(request).engine.retrieve_refund(request.path_params["refund"])


def _endpoint(op: Operation, *, mutating: bool) -> Callable[[Request], object]:
    async def endpoint(request: Request) -> Response:
        return await handle(request, op, mutating=mutating)

    return endpoint


async def _unrecognized(request: Request) -> Response:
    body = objects.unrecognized_url(request.method, request.url.path)
    return JSONResponse(body, status_code=404)


#: The ``/v1`` routes (search before the ``{intent}`` route that would swallow it).
ROUTES = [
    Route("/v1/payment_intents", _endpoint(_create_intent, mutating=True), methods=["POST"]),
    Route("/v1/payment_intents/search", _endpoint(_search, mutating=False), methods=["GET"]),
    Route("/v1/payment_intents/{intent}", _endpoint(_retrieve, mutating=False), methods=["GET"]),
    Route(
        "/v1/payment_intents/{intent}/cancel", _endpoint(_cancel, mutating=True), methods=["POST"]
    ),
    Route("/v1/refunds", _endpoint(_refund, mutating=True), methods=["POST"]),
    Route("/v1/refunds", _endpoint(_refunds, mutating=False), methods=["GET"]),
    Route("/v1/refunds/{refund}", _endpoint(_find_refund, mutating=False), methods=["GET"]),
    Route("/v1/charges", _endpoint(_charges, mutating=False), methods=["GET"]),
    # Last: any other /v1 URL (or method) is answered with Stripe's JSON 404, not a text one.
    Route("/v1/{rest:path}", _unrecognized),
]

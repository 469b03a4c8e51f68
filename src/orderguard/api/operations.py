"""Operator actions over HTTP: refund and cancel one order (actor ``api`` on its timeline)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from orderguard.api.orders import JSON, Scope, Wiring, get_order
from orderguard.api.problems import problem_responses
from orderguard.api.requests import json_body, validated
from orderguard.api.schemas import OrderDetailOut, RefundIn
from orderguard.domain.events import Cause

router = APIRouter(prefix="/v1", tags=["operations"])
#: The actor recorded on the timeline for changes requested through the API.
API_ACTOR = "api"


@router.post(
    "/orders/{order_id}/refund",
    response_model=OrderDetailOut,
    responses=problem_responses(400, 401, 404, 409, 413, 415, 422, 503),
    openapi_extra={
        "requestBody": {
            "required": False,
            "content": {JSON: {"schema": {"$ref": "#/components/schemas/RefundIn"}}},
        }
    },
)
async def refund(order_id: str, request: Request, wiring: Wiring, scope: Scope) -> Response:
    """Refund a paid order at its provider, in full or (with ``amount``) in part."""
    amount = await _amount(request)
    await wiring.operations.refund_order(order_id, amount=amount, actor=API_ACTOR, cause=Cause.API)
    return await get_order(order_id, wiring, scope)


@router.post(
    "/orders/{order_id}/cancel",
    response_model=OrderDetailOut,
    responses=problem_responses(401, 404, 409, 503),
)
async def cancel(order_id: str, wiring: Wiring, scope: Scope) -> Response:
    """Cancel an order that is not paid and has no payment whose outcome is unknown."""
    await wiring.operations.cancel_order(order_id, actor=API_ACTOR, cause=Cause.API)
    return await get_order(order_id, wiring, scope)


async def _amount(request: Request) -> int | None:
    """The amount of an optional JSON body; no body means a full refund."""
    if "transfer-encoding" not in request.headers and request.headers.get(
        "content-length", "0"
    ) in {"", "0"}:
        return None
    body = validated(RefundIn, await json_body(request), {})
    return body.amount

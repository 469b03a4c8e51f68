"""Operator actions over HTTP: refund and cancel one order (the API key's id is the actor
on its timeline; a key without ``orders:read`` gets only the outcome)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from orderguard.api.auth import Caller, allowed
from orderguard.api.orders import (
    JSON,
    NO_FIELDS,
    WRITE_CHECKS,
    Wiring,
    Writer,
    detail_response,
    no_fields,
)
from orderguard.api.problems import problem_responses
from orderguard.api.requests import json_body, validated
from orderguard.api.schemas import OrderDetailOut, OrderOutcomeOut, RefundIn
from orderguard.domain.events import Cause
from orderguard.services.api_keys import KeyScope

router = APIRouter(prefix="/v1", tags=["operations"])
Refunder = Annotated[Caller, Depends(allowed(KeyScope.PAYMENTS_REFUND))]


@router.post(
    "/orders/{order_id}/refund",
    response_model=OrderDetailOut | OrderOutcomeOut,
    responses=problem_responses(400, 401, 403, 404, 409, 413, 415, 422, 503),
    dependencies=WRITE_CHECKS,
    openapi_extra={
        "requestBody": {
            "required": False,
            "content": {JSON: {"schema": {"$ref": "#/components/schemas/RefundIn"}}},
        }
    },
)
async def refund(order_id: str, request: Request, wiring: Wiring, who: Refunder) -> Response:
    """Refund a paid order at its provider, in full or (with ``amount``) in part."""
    body = validated(RefundIn, await json_body(request, optional=True), {})
    await wiring.operations.refund_order(
        order_id, amount=body.amount, actor=who.actor, cause=Cause.API
    )
    return await detail_response(order_id, wiring, who)


@router.post(
    "/orders/{order_id}/cancel",
    response_model=OrderDetailOut | OrderOutcomeOut,
    responses=problem_responses(400, 401, 403, 404, 409, 413, 415, 422, 503),
    dependencies=WRITE_CHECKS,
    openapi_extra={"requestBody": NO_FIELDS},
)
async def cancel(order_id: str, request: Request, wiring: Wiring, who: Writer) -> Response:
    """Cancel an order that is not paid and has no payment whose outcome is unknown."""
    await no_fields(request)
    await wiring.operations.cancel_order(order_id, actor=who.actor, cause=Cause.API)
    return await detail_response(order_id, wiring, who)

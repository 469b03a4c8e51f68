"""Operator actions over HTTP: refund and cancel one order (the API key's id is the actor
on its timeline; a key without ``orders:read`` gets only the outcome)."""

from __future__ import annotations

from typing import Annotated, Any, Protocol

import orjson
from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from orderguard.api.auth import Caller, allowed
from orderguard.api.orders import (
    JSON,
    NO_FIELDS,
    WRITE_CHECKS,
    Writer,
    detail_response,
    no_fields,
)
from orderguard.api.problems import problem_responses
from orderguard.api.render import Documents, detail_json
from orderguard.api.requests import idempotency_key, json_body, validated
from orderguard.api.schemas import (
    OrderDetailOut,
    OrderOutcomeOut,
    RefundedOrderOut,
    RefundIn,
    RefundOutcomeOut,
)
from orderguard.domain.events import Cause
from orderguard.services import queries
from orderguard.services.api_keys import KeyScope, grants
from orderguard.services.operations import Operations

#: What a refund answers a key without ``orders:read`` (the refund is added to it).
REFUND_OUTCOME_FIELDS = tuple(name for name in RefundOutcomeOut.model_fields if name != "refund")

router = APIRouter(prefix="/v1", tags=["operations"])
Refunder = Annotated[Caller, Depends(allowed(KeyScope.PAYMENTS_REFUND))]


class OperationsDesk(Documents, Protocol):
    """What the operator actions call: refund and cancel (answering with the order's
    detail, read as the orders routes read it)."""

    @property
    def operations(self) -> Operations: ...


def operations_desk(request: Request) -> OperationsDesk:
    """What the operator actions call, from the application's wiring."""
    found: OperationsDesk = request.app.state.container
    return found


Desk = Annotated[OperationsDesk, Depends(operations_desk)]


_REFUND_DOC: dict[str, Any] = {
    "response_model": RefundedOrderOut | RefundOutcomeOut,
    "responses": problem_responses(400, 401, 403, 404, 409, 413, 415, 422, 503),
    "dependencies": WRITE_CHECKS,
    "openapi_extra": {
        "parameters": [
            {
                "in": "header",
                "name": "Idempotency-Key",
                "required": False,
                "schema": {"type": "string", "minLength": 1, "maxLength": 255},
                "description": "One key is one refund: a repeated request answers the same "
                "refund, a new key makes a new one",
            }
        ],
        "requestBody": {
            "required": False,
            "content": {JSON: {"schema": {"$ref": "#/components/schemas/RefundIn"}}},
        },
    },
}


@router.post(
    "/orders/{order_id}/refunds",
    status_code=201,
    **{
        **_REFUND_DOC,
        "responses": {
            200: {
                "model": RefundedOrderOut | RefundOutcomeOut,
                "description": "A repeated request (same Idempotency-Key): the same refund",
            },
            **_REFUND_DOC["responses"],
        },
    },
)
async def create_refund(order_id: str, request: Request, desk: Desk, who: Refunder) -> Response:
    """Refund all or (with ``amount``) part of what is left of a paid order, once per
    ``Idempotency-Key``: 201 for a new refund, 200 for a repeated request."""
    return await _refund(order_id, request, desk, who, created=201)


@router.post("/orders/{order_id}/refund", **_REFUND_DOC)
async def refund(order_id: str, request: Request, desk: Desk, who: Refunder) -> Response:
    """Refund a paid order at its provider, in full or (with ``amount``) in part (the
    first refund route; answers 200 where ``/refunds`` answers 201)."""
    return await _refund(order_id, request, desk, who, created=200)


async def _refund(
    order_id: str, request: Request, desk: OperationsDesk, who: Caller, *, created: int
) -> Response:
    body = validated(RefundIn, await json_body(request, optional=True), {})
    header = request.headers.get("idempotency-key")
    key = None if header is None else f"api:{who.idempotency_scope}:{idempotency_key(header)}"
    answer = await desk.operations.request_refund(
        order_id,
        amount=body.amount,
        reason=body.reason or "",
        actor=who.actor,
        cause=Cause.API,
        request_key=key,
    )
    detail = await queries.order_detail(desk.storage, order_id)
    document = orjson.loads(
        detail_json(
            detail.order,
            detail.timeline,
            desk.settings.public_url,
            desk.payments.shopper_action,
        )
    )
    if not grants(who.scopes, KeyScope.ORDERS_READ):
        document = {name: document[name] for name in REFUND_OUTCOME_FIELDS}
    document["refund"] = answer.refund.fields()
    headers = {"Idempotent-Replayed": "true"} if answer.replayed else {}
    status = 200 if answer.replayed else created
    return Response(orjson.dumps(document), status, headers=headers, media_type=JSON)


@router.post(
    "/orders/{order_id}/cancel",
    response_model=OrderDetailOut | OrderOutcomeOut,
    responses=problem_responses(400, 401, 403, 404, 409, 413, 415, 422, 503),
    dependencies=WRITE_CHECKS,
    openapi_extra={"requestBody": NO_FIELDS},
)
async def cancel(order_id: str, request: Request, desk: Desk, who: Writer) -> Response:
    """Cancel an order that is not paid and has no payment whose outcome is unknown."""
    await no_fields(request)
    await desk.operations.cancel_order(order_id, actor=who.actor, cause=Cause.API)
    return await detail_response(order_id, desk, who)

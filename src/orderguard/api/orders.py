"""The orders API: place, read and list orders."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Annotated, Any, Protocol

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.routing import APIRoute
from pydantic import BeforeValidator
from starlette.responses import Response

from orderguard.api.auth import Caller, allowed
from orderguard.api.doors import check_write
from orderguard.api.problems import amount_problem, method_problem, problem_responses
from orderguard.api.render import Documents, detail_json, order_document, summary_json
from orderguard.api.requests import (
    idempotency_key,
    json_body,
    validated,
    validation_problem,
)
from orderguard.api.schemas import (
    OrderDetailOut,
    OrderOut,
    OrderOutcomeOut,
    OrderPageOut,
    OrderReceiptOut,
    PayAgainIn,
    PlaceOrderIn,
)
from orderguard.catalog import locale
from orderguard.domain.customer import Address, Customer
from orderguard.domain.events import Cause
from orderguard.domain.money import AmountNotChargeable
from orderguard.domain.order import OrderLine
from orderguard.domain.states import OrderState
from orderguard.observability.context import remember_customer
from orderguard.services import queries
from orderguard.services.api_keys import KeyScope, grants
from orderguard.services.idempotency import Answer, KeyedRequest, fingerprint
from orderguard.services.intake import Intake, PlaceOrder
from orderguard.services.pay_again import PayAgain
from orderguard.services.providers import PaymentMethodNotTaken
from orderguard.services.recheck import Recheck
from orderguard.storage.ports import OrderQuery


def _rfc3339(value: object) -> object:
    if not isinstance(value, str) or not _RFC3339.match(value):
        raise ValueError("must be an RFC 3339 date-time, e.g. 2026-11-24T12:00:00Z")
    return value


_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})?$")
#: A date-time query parameter: RFC 3339 text only (no Unix numbers).
Rfc3339 = Annotated[datetime, BeforeValidator(_rfc3339)]


router = APIRouter(prefix="/v1", tags=["orders"])
JSON = "application/json"
#: The body of an action that takes no fields: nothing, or ``{}`` (as ``application/json``).
NO_FIELDS = {
    "required": False,
    "content": {JSON: {"schema": {"type": "object", "additionalProperties": False}}},
}
_KEY_HEADER = Header(
    alias="Idempotency-Key",
    description="1-255 visible ASCII characters; a retry with the same key and body "
    "returns the same order",
)


class OrderDesk(Documents, Protocol):
    """What the orders routes call: place, pay again, recheck (and read, through
    :class:`~orderguard.api.render.Documents`)."""

    @property
    def intake(self) -> Intake: ...

    @property
    def pay_again(self) -> PayAgain: ...

    @property
    def recheck(self) -> Recheck: ...


def order_desk(request: Request) -> OrderDesk:
    """What the orders routes call, from the application's wiring."""
    found: OrderDesk = request.app.state.container
    return found


Orders = Annotated[OrderDesk, Depends(order_desk)]
#: The caller, holding the scope each kind of route needs (403 otherwise).
Reader = Annotated[Caller, Depends(allowed(KeyScope.ORDERS_READ))]
Writer = Annotated[Caller, Depends(allowed(KeyScope.ORDERS_WRITE))]
_writes_orders = allowed(KeyScope.ORDERS_WRITE)
#: What a key without ``orders:read`` learns of an order it placed or paid again.
RECEIPT_FIELDS = tuple(OrderReceiptOut.model_fields)
#: ... and of one it rechecked, cancelled or refunded.
OUTCOME_FIELDS = tuple(OrderOutcomeOut.model_fields)
#: Routes that change orders check Origin and content type before anything else.
WRITE_CHECKS = [Depends(check_write)]


class _OwnRequestRoute(APIRoute):
    """A route whose endpoint reads the request itself and returns its response: FastAPI's
    per-request parameter resolution (``solve_dependencies``, the query string parsed for
    nothing) is skipped. What the route declares is for the OpenAPI document only."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        endpoint: Callable[[Request], Coroutine[Any, Any, Response]] = self.endpoint
        return endpoint


async def place_order(request: Request) -> Response:
    """Place an order exactly once per ``Idempotency-Key`` (G1, G2).

    A key without ``orders:read`` gets the order's receipt, not its personal data."""
    desk = order_desk(request)
    await check_write(request)
    who = await _writes_orders(request)
    checked_key = idempotency_key(request.headers.get("idempotency-key"))
    accept_language = request.headers.get("accept-language")
    data = await json_body(request)
    context = {"default_country": desk.settings.default_country}
    body = validated(PlaceOrderIn, data, context)
    language = locale(body.locale, accept_language)
    command = PlaceOrder(
        request=KeyedRequest(
            who.idempotency_scope, checked_key, fingerprint("POST", "/v1/orders", data)
        ),
        currency=body.currency,
        lines=[OrderLine(i.sku, i.name, i.quantity, i.unit_amount) for i in body.items],
        customer=remember_customer(_customer(body)),
        merchant_reference=body.merchant_reference,
        locale=language,
        payment_method=body.payment.method if body.payment else None,
        request_id=request.state.request_id,
        actor=who.actor,
    )
    try:
        answer = await desk.intake.place(command)
    except AmountNotChargeable as exc:  # nothing was stored; answered in the order's language
        raise amount_problem(exc, language) from None
    except PaymentMethodNotTaken as exc:  # nothing was stored either
        raise method_problem(exc, language) from None
    return _answer(answer, who)


router.add_api_route(
    "/orders",
    place_order,
    methods=["POST"],
    route_class_override=_OwnRequestRoute,
    status_code=201,
    response_model=OrderOut | OrderReceiptOut,
    responses={
        200: {"model": OrderOut | OrderReceiptOut, "description": "A replay of an earlier 200"},
        **problem_responses(400, 401, 403, 409, 413, 415, 422, 503),
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {JSON: {"schema": {"$ref": "#/components/schemas/PlaceOrderIn"}}},
        },
        # read by hand in place_order: this route is the hot path, and FastAPI's
        # per-request dependency resolution costs more than the whole of the order's
        # validation (_OwnRequestRoute skips it)
        "parameters": [
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "description": _KEY_HEADER.description,
                "schema": {"type": "string"},
            },
            {
                "name": "Accept-Language",
                "in": "header",
                "required": False,
                "schema": {"type": "string"},
            },
        ],
    },
)


@router.post(
    "/orders/{order_id}/payments",
    status_code=201,
    response_model=OrderOut | OrderReceiptOut,
    responses=problem_responses(400, 401, 403, 404, 409, 413, 415, 422, 503),
    dependencies=WRITE_CHECKS,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {JSON: {"schema": {"$ref": "#/components/schemas/PayAgainIn"}}},
        }
    },
)
async def pay_again(
    order_id: str,
    request: Request,
    desk: Orders,
    who: Writer,
    key: Annotated[str | None, _KEY_HEADER] = None,
) -> Response:
    """Pay a declined order again with another method (a new payment attempt)."""
    checked_key = idempotency_key(key)
    data = await json_body(request)
    body = validated(PayAgainIn, data, {})
    path = f"/v1/orders/{order_id}/payments"
    keyed = KeyedRequest(who.idempotency_scope, checked_key, fingerprint("POST", path, data))
    try:
        answer = await desk.pay_again.pay(order_id, body.payment.method, keyed, actor=who.actor)
    except AmountNotChargeable as exc:  # nothing was stored
        raise amount_problem(exc, locale(None, request.headers.get("accept-language"))) from None
    except PaymentMethodNotTaken as exc:  # nothing was stored
        raise method_problem(exc, locale(None, request.headers.get("accept-language"))) from None
    return _answer(answer, who)


@router.post(
    "/orders/{order_id}/recheck",
    response_model=OrderDetailOut | OrderOutcomeOut,
    responses=problem_responses(400, 401, 403, 404, 413, 415, 422, 503),
    dependencies=WRITE_CHECKS,
    openapi_extra={"requestBody": NO_FIELDS},
)
async def recheck(order_id: str, request: Request, desk: Orders, who: Writer) -> Response:
    """Ask the provider now what happened to the order's open payment attempts."""
    await no_fields(request)
    await desk.recheck.order(order_id, cause=Cause.API, actor=who.actor)
    return await detail_response(order_id, desk, who)


async def no_fields(request: Request) -> None:
    """An action's body: empty or ``{}``; 422 for anything else."""
    if await json_body(request, optional=True) != {}:
        raise validation_problem([(("body",), "this action takes no fields: send {} or nothing")])


def _answer(answer: Answer, who: Caller) -> Response:
    """The order placed or paid again (a replay answers what the first request got: the
    same key has the same scopes), as a receipt to a caller that may not read orders."""
    headers = {"Location": f"/v1/orders/{answer.order_id}"}
    if answer.replayed:
        headers["Idempotent-Replayed"] = "true"
    body = answer.body
    if 200 <= answer.status < 300 and not grants(who.scopes, KeyScope.ORDERS_READ):
        body = summary_json(body, RECEIPT_FIELDS)
    return Response(body, answer.status, headers=headers, media_type=JSON)


@router.get(
    "/orders/{order_id}",
    response_model=OrderDetailOut,
    responses=problem_responses(401, 403, 404, 503),
)
async def get_order(order_id: str, desk: Orders, who: Reader) -> Response:
    """The order with its lines, payment attempts and timeline."""
    return await detail_response(order_id, desk, who)


async def detail_response(order_id: str, wired: Documents, who: Caller) -> Response:
    """The order's detail document (what ``GET /v1/orders/{id}`` answers), or only its
    outcome to a caller without ``orders:read``."""
    detail = await queries.order_detail(wired.storage, order_id)
    body = detail_json(
        detail.order, detail.timeline, wired.settings.public_url, wired.payments.shopper_action
    )
    if not grants(who.scopes, KeyScope.ORDERS_READ):
        body = summary_json(body, OUTCOME_FIELDS)
    return Response(body, media_type=JSON)


@router.get("/orders", response_model=OrderPageOut, responses=problem_responses(401, 403, 422, 503))
async def list_orders(
    desk: Orders,
    who: Reader,
    state: OrderState | None = None,
    created_after: Rfc3339 | None = None,
    created_before: Rfc3339 | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> OrderPageOut:
    """Orders newest first, one page at a time (keyset pagination)."""
    query = OrderQuery(
        limit=limit + 1,
        state=state,
        created_after=_aware(created_after, "created_after"),
        created_before=_aware(created_before, "created_before"),
        cursor=_decode_cursor(cursor) if cursor else None,
    )
    orders = await queries.list_orders(desk.storage, query)
    page, more = orders[:limit], len(orders) > limit
    actions = desk.payments.shopper_action
    documents = [order_document(o, desk.settings.public_url, actions) for o in page]
    next_cursor = _encode_cursor(page[-1].created_at, page[-1].id) if more else None
    return OrderPageOut.model_validate({"data": documents, "next_cursor": next_cursor})


def _customer(body: PlaceOrderIn) -> Customer:
    c, a = body.customer, body.customer.shipping_address
    address = Address(a.line1, a.city, a.postal_code, a.country or "", a.line2)
    return Customer(email=c.email, name=c.name, shipping_address=address, phone=c.phone)


def _aware(value: datetime | None, name: str = "") -> datetime | None:
    """``value`` in UTC (naive means UTC); 422 when it cannot be expressed in UTC."""
    if value is None:
        return None
    try:
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)
    except OverflowError:
        raise validation_problem([(("query", name), "out of the range of dates")]) from None


def _encode_cursor(created_at: datetime, order_id: str) -> str:
    raw = f"{created_at.isoformat()}|{order_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        at, order_id = raw.split("|", 1)
        moment = _aware(datetime.fromisoformat(at), "cursor")
        if moment is None:
            raise ValueError(cursor)
        return moment, order_id
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise validation_problem(
            [(("query", "cursor"), "not a cursor returned by this API")]
        ) from None

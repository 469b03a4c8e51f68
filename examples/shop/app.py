"""The example shop's back end: the checkout page, and the two calls its script makes,
passed on to orderguard with the Python client.

The browser is a stranger: it sends SKUs, quantities, the shopper's details and a test
card, nothing else. Names and prices come from the shop's catalogue, so a forged amount
cannot be charged. The browser's ``Idempotency-Key`` goes to orderguard unchanged (it is
what makes a double click, a refresh or a lost answer the same order); the API key stays
here. orderguard's answer goes back as it came: its status, and the order or the problem.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from orderguard.client import (
    Address,
    ApiError,
    AsyncOrderguardClient,
    Customer,
    Item,
    NewOrder,
    NoAnswerError,
    OrderSummary,
    RetryPolicy,
)

HERE = Path(__file__).resolve().parent
PAGE = HERE / "static" / "index.html"
#: The built browser library (``make js-test`` builds it).
MODULE = HERE.parents[1] / "clients" / "js" / "dist" / "checkout.js"
CURRENCY = "EUR"
#: The shop's catalogue: SKU -> (name, unit price in cents). The only source of amounts.
CATALOGUE: dict[str, tuple[str, int]] = {
    "TEE-M": ("T-shirt", 1999),
    "MUG": ("Mug", 850),
}
#: The test cards the chooser offers (the Stripe sandbox's test payment methods).
CARDS = frozenset({"pm_card_visa", "pm_card_authenticationRequired", "pm_card_chargeDeclined"})
#: An Idempotency-Key as the checkout script makes them (and nothing else is passed on).
KEY = re.compile(r"^[A-Za-z0-9_.:-]{8,128}$")
#: The browser retries lost answers itself; the back end tries a little, then says 504.
RETRY = RetryPolicy(attempts=3, initial_s=0.1, max_wait_s=1.0, deadline_s=12.0)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CartLine(_Strict):
    sku: Literal["TEE-M", "MUG"]
    quantity: Annotated[int, Field(ge=1, le=10)]


class ShippingTo(_Strict):
    line1: Annotated[str, Field(min_length=1, max_length=200)]
    city: Annotated[str, Field(min_length=1, max_length=100)]
    postal_code: Annotated[str, Field(min_length=1, max_length=20)]
    country: Annotated[str, Field(pattern=r"^[A-Z]{2}$")]


class Shopper(_Strict):
    email: Annotated[str, Field(pattern=r"^[^@\s]{1,64}@[^@\s]{1,255}$")]
    name: Annotated[str, Field(min_length=1, max_length=200)]
    address: ShippingTo


class Cart(_Strict):
    """What the checkout page may send: SKUs and quantities, never prices."""

    items: Annotated[list[CartLine], Field(min_length=1, max_length=len(CATALOGUE))]
    customer: Shopper
    card: str
    locale: Literal["en", "zh-CN"] = "en"


class PayAgain(_Strict):
    payment: dict[Literal["method"], str]


def new_order(cart: Cart) -> NewOrder:
    """orderguard's order for a cart, named and priced from the catalogue."""
    items = [
        Item(
            sku=line.sku,
            name=CATALOGUE[line.sku][0],
            quantity=line.quantity,
            unit_amount=CATALOGUE[line.sku][1],
        )
        for line in cart.items
    ]
    to = cart.customer.address
    return NewOrder(
        currency=CURRENCY,
        items=items,
        customer=Customer(
            email=cart.customer.email,
            name=cart.customer.name,
            shipping_address=Address(
                line1=to.line1, city=to.city, postal_code=to.postal_code, country=to.country
            ),
        ),
        payment_method=cart.card,
        locale=cart.locale,
    )


def problem(status: int, detail: str) -> JSONResponse:
    """The shop's own refusal, as a problem document the checkout script understands."""
    return JSONResponse(
        {"type": "about:blank", "title": "Bad request", "status": status, "detail": detail},
        status_code=status,
        media_type="application/problem+json",
    )


def answered(placed: OrderSummary) -> JSONResponse:
    """orderguard's order, as orderguard answered it."""
    body = placed.model_dump(mode="json", exclude={"replayed"})
    return JSONResponse(body, status_code=201 if not placed.replayed else 200)


def failed(error: ApiError | NoAnswerError) -> JSONResponse:
    """An error passed on: orderguard's problem and status; no answer is a 504 (the
    browser sends the same key again, which finds the order if it was made)."""
    if isinstance(error, NoAnswerError):
        return problem(504, "orderguard did not answer; send the same request again")
    body = {
        "type": error.type,
        "title": error.title,
        "status": error.status,
        "detail": error.detail,
        **error.extensions,
    }
    headers = {"Retry-After": str(int(error.retry_after))} if error.retry_after else {}
    return JSONResponse(
        body, status_code=error.status, headers=headers, media_type="application/problem+json"
    )


async def _json(request: Request) -> Any:
    try:
        return await request.json()
    except ValueError:
        return None


def _key(request: Request) -> str | None:
    key = request.headers.get("idempotency-key", "")
    return key if KEY.fullmatch(key) else None


async def place_order(request: Request) -> Response:
    """``POST /checkout/orders``: the cart checked, priced here, placed with the browser's key."""
    key = _key(request)
    if key is None:
        return problem(400, "an Idempotency-Key header is required")
    try:
        cart = Cart.model_validate(await _json(request))
    except ValidationError as exc:
        return problem(422, f"the cart is not valid: {exc.error_count()} error(s)")
    if cart.card not in CARDS:
        return problem(422, "unknown test card")
    client: AsyncOrderguardClient = request.app.state.orderguard
    try:
        return answered(await client.create_order(new_order(cart), idempotency_key=key))
    except (ApiError, NoAnswerError) as exc:
        return failed(exc)


async def pay_again(request: Request) -> Response:
    """``POST /checkout/orders/{id}/payments``: another test card for a declined order."""
    key = _key(request)
    order_id = request.path_params["order_id"]
    if key is None or not re.fullmatch(r"ord_[A-Za-z0-9]{1,64}", order_id):
        return problem(400, "an Idempotency-Key and an order id are required")
    try:
        method = PayAgain.model_validate(await _json(request)).payment.get("method", "")
    except ValidationError:
        return problem(422, "the payment is not valid")
    if method not in CARDS:
        return problem(422, "unknown test card")
    client: AsyncOrderguardClient = request.app.state.orderguard
    try:
        return answered(await client.pay_again(order_id, method, idempotency_key=key))
    except (ApiError, NoAnswerError) as exc:
        return failed(exc)


async def order_status(request: Request) -> Response:
    """``GET /checkout/status/{id}?token=``: orderguard's shopper status, passed on (the
    token, not the API key, is what lets the shopper read it)."""
    order_id = request.path_params["order_id"]
    token = request.query_params.get("token", "")
    status: httpx.AsyncClient = request.app.state.status
    try:
        answer = await status.get(f"/orders/{order_id}/status", params={"token": token})
    except httpx.HTTPError:
        return problem(504, "orderguard did not answer")
    return Response(answer.content, status_code=answer.status_code, media_type="application/json")


async def page(request: Request) -> Response:
    return FileResponse(PAGE, media_type="text/html", headers={"Cache-Control": "no-store"})


async def module(request: Request) -> Response:
    return FileResponse(MODULE, media_type="text/javascript")


def create_app(orderguard_url: str, api_key: str | None) -> Starlette:
    """The shop, talking to orderguard at ``orderguard_url`` with ``api_key``."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with (
            AsyncOrderguardClient(orderguard_url, api_key, retry=RETRY) as client,
            httpx.AsyncClient(base_url=orderguard_url, timeout=10) as status,
        ):
            app.state.orderguard, app.state.status = client, status
            yield

    return Starlette(
        routes=[
            Route("/", page),
            Route("/static/checkout.js", module),
            Route("/checkout/orders", place_order, methods=["POST"]),
            Route("/checkout/orders/{order_id}/payments", pay_again, methods=["POST"]),
            Route("/checkout/status/{order_id}", order_status),
        ],
        lifespan=lifespan,
    )

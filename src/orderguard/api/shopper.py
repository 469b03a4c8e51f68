"""Pages the shopper reaches: back from authentication (3-D Secure)."""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Query, Request
from starlette.responses import RedirectResponse

from orderguard.api.problems import ProblemError
from orderguard.api.render import status_url
from orderguard.bootstrap import Container
from orderguard.domain.order import Order

router = APIRouter(tags=["shopper"], include_in_schema=False)


async def order_for_shopper(wiring: Container, order_id: str, token: str) -> Order:
    """The order when ``token`` is its status token; 404 otherwise, hinting nothing."""
    async with wiring.storage() as uow:
        order = await uow.orders.get(order_id)
    if order is None or not hmac.compare_digest(order.status_token.encode(), token.encode()):
        raise ProblemError(404, "order-not-found", "Order not found", "No such order.")
    return order


@router.get("/orders/{order_id}/return")
async def returned(
    order_id: str, request: Request, token: str = Query(default="", max_length=200)
) -> RedirectResponse:
    """The shopper is back from authenticating: ask the provider (at most once per attempt
    every few seconds, however often this is hit), then show the order."""
    wiring: Container = request.app.state.container
    order = await order_for_shopper(wiring, order_id, token)
    order = await wiring.shopper_return.order(order)
    return RedirectResponse(status_url(wiring.settings.public_url, order), status_code=303)

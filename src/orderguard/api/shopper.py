"""Pages the shopper reaches: back from authentication (3-D Secure)."""

from __future__ import annotations

from typing import Protocol

from fastapi import APIRouter, Query, Request
from starlette.responses import RedirectResponse

from orderguard.api.ports import Wired
from orderguard.api.problems import ProblemError
from orderguard.domain.links import status_url
from orderguard.domain.order import Order
from orderguard.services.queries import shopper_order
from orderguard.services.shopper_return import ShopperReturn

router = APIRouter(tags=["shopper"], include_in_schema=False)


class ShopperDesk(Wired, Protocol):
    """What the shopper's return calls: ask the provider how authentication went."""

    @property
    def shopper_return(self) -> ShopperReturn: ...


async def order_for_shopper(wired: Wired, order_id: str, token: str) -> Order:
    """The order when ``token`` is its status token; 404 otherwise, hinting nothing."""
    order = await shopper_order(wired.storage, order_id, token)
    if order is None:
        raise ProblemError(404, "order-not-found", "Order not found", "No such order.")
    return order


@router.get("/orders/{order_id}/return")
async def returned(
    order_id: str, request: Request, token: str = Query(default="", max_length=200)
) -> RedirectResponse:
    """The shopper is back from authenticating: ask the provider (at most once per attempt
    every few seconds, however often this is hit), then show the order."""
    desk: ShopperDesk = request.app.state.container
    order = await order_for_shopper(desk, order_id, token)
    order = await desk.shopper_return.order(order)
    return RedirectResponse(status_url(desk.settings.public_url, order), status_code=303)

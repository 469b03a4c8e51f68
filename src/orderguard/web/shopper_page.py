"""The shopper's order page ``GET /orders/{id}?token=…`` and its two forms.

The order's status token is compared in constant time; a wrong or missing one gives the
same 404 as an order that does not exist. Paying again goes through the same service as
``POST /v1/orders/{id}/payments``, scoped to the order so that a double click (the same
form key) can never start two payments, and at most once per order every few seconds
however many form keys a script makes up (each payment calls the provider).
"""

from __future__ import annotations

from typing import Annotated, Any, Protocol

from fastapi import APIRouter, Query, Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from orderguard.domain.errors import PaymentNotAllowed, ProviderUnreachable
from orderguard.domain.order import Order
from orderguard.domain.states import OrderState
from orderguard.services import queries
from orderguard.services.idempotency import KeyedRequest, fingerprint
from orderguard.services.pace import Pace
from orderguard.services.pay_again import PayAgain
from orderguard.services.queries import shopper_order
from orderguard.services.review import Review
from orderguard.web import forms
from orderguard.web.guidance import guidance, shopper_history, why_failed
from orderguard.web.ports import Wired, offered
from orderguard.web.qr import qr_svg
from orderguard.web.templating import PAGE_HEADERS, language, page


class ShopperPageDesk(Wired, Protocol):
    """What the shopper's page calls: pay again (paced per order); the report goes
    through the storage."""

    @property
    def pay_again(self) -> PayAgain: ...

    @property
    def shopper_pay_pace(self) -> Pace: ...


router = APIRouter(tags=["shopper"], include_in_schema=False)
Token = Annotated[str, Query(max_length=200)]
Lang = Annotated[str | None, Query(max_length=10)]


@router.get("/orders/{order_id}")
async def order_page(
    order_id: str, request: Request, token: Token = "", lang: Lang = None
) -> Response:
    """The order in plain words, with what to do next."""
    language_ = language(lang, request.headers.get("accept-language"))
    order = await _order_or_none(request, order_id, token)
    if order is None:
        return _not_found(language_)
    return await _render(request, order, language_)


@router.get("/orders/{order_id}/status")
async def order_status(order_id: str, request: Request, token: Token = "") -> Response:
    """What the page (and the shop's checkout script) polls while the order is not final:
    its state, last change, and for a declined payment the catalog key of why, in the
    shopper's words (the same words the page shows; never the provider's raw code)."""
    order = await _order_or_none(request, order_id, token)
    if order is None:
        return JSONResponse({"detail": "No such order."}, 404, headers=PAGE_HEADERS)
    failed = order.state is OrderState.PAYMENT_FAILED
    body = {
        "state": str(order.state),
        "updated_at": order.updated_at.isoformat(),
        "reason": why_failed(order) if failed else None,
    }
    return JSONResponse(body, headers=PAGE_HEADERS)


@router.post("/orders/{order_id}/pay")
async def pay_again(order_id: str, request: Request) -> Response:
    """Pay a declined order with another method, once per form."""
    wiring = _wiring(request)
    form, order, language_ = await _checked_form(request, order_id)
    if isinstance(form, Response):
        return form
    assert order is not None
    method, key = forms.field(form, "method", limit=100), forms.field(form, "key", limit=100)
    if method not in _methods(request) or not key:
        return await _render(request, order, language_, status=400, error=("page.refused", {}))
    if not wiring.shopper_pay_pace.go(order.id):
        return _back_to_page(order, language_)  # paid a moment ago: the page shows how it went
    path = f"/orders/{order_id}/pay"
    keyed = KeyedRequest(f"shopper:{order_id}", key, fingerprint("POST", path, {"method": method}))
    try:
        await wiring.pay_again.pay(order.id, method, keyed)
    except PaymentNotAllowed as exc:
        why: tuple[str, dict[str, str]] = ("page.pay_refused", {"why": str(exc.state)})
        return await _render(request, order, language_, status=409, error=why)
    except ProviderUnreachable:
        busy: tuple[str, dict[str, str]] = ("page.pay_unavailable", {})
        return await _render(request, order, language_, status=503, error=busy)
    return _back_to_page(order, language_)


@router.post("/orders/{order_id}/report")
async def report_problem(order_id: str, request: Request) -> Response:
    """Flag the order for support with the shopper's message (once an hour at most)."""
    form, order, language_ = await _checked_form(request, order_id)
    if isinstance(form, Response):
        return form
    assert order is not None
    message = forms.field(form, "message").strip()
    if not message:
        return await _render(request, order, language_, status=400, error=("page.report_empty", {}))
    if not await Review(_wiring(request).storage).report_problem(order.id, message):
        later: tuple[str, dict[str, str]] = ("page.report_later", {})
        return await _render(request, order, language_, status=429, error=later)
    return _back_to_page(order, language_, reported=True)


async def _checked_form(request: Request, order_id: str) -> tuple[Any, Order | None, str]:
    """The form when it is small, its token is the order's and its CSRF token is right."""
    accept = request.headers.get("accept-language")
    try:
        form = await forms.read_form(request)
    except forms.FormRefused:
        return _refused(language(None, accept)), None, "en"
    language_ = language(forms.field(form, "lang", limit=10), accept)
    order = await _order_or_none(request, order_id, forms.field(form, "token", limit=200))
    if order is None:
        return _not_found(language_), None, language_
    try:
        forms.check_shopper_csrf(request, form)
    except forms.FormRefused:
        return _refused(language_), None, language_
    return form, order, language_


async def _render(
    request: Request,
    order: Order,
    language_: str,
    *,
    status: int = 200,
    error: tuple[str, dict[str, str]] | None = None,
) -> Response:
    wiring = _wiring(request)
    timeline = (await queries.order_detail(wiring.storage, order.id)).timeline
    csrf = forms.shopper_csrf(request)
    guide = guidance(order, wiring.payments.shopper_action(order))
    response = page(
        "order.html",
        language_,
        status=status,
        order=order,
        guide=guide,
        qr=qr_svg(guide.code) if guide.code else None,
        history=shopper_history(timeline),
        methods=_methods(request),
        form_key=forms.new_token(),
        csrf=csrf,
        support_contact=wiring.settings.support_contact,
        reported=request.query_params.get("reported") == "1",
        error=error,
        test_mode=not order.livemode,
    )
    forms.keep_csrf(response, csrf, secure=_secure(wiring))
    return response


def _methods(request: Request) -> list[str]:
    """Methods the page offers: the registered providers' test methods (given at wiring)
    that a configured account takes, in development while the main account moves no real
    money, never in production (even a staging one with ``ORDERGUARD_ALLOW_TEST_PROVIDER``).

    Otherwise the shopper chooses another method at the shop's checkout, which pays
    through ``POST /v1/orders/{id}/payments``.
    """
    wired = _wiring(request)
    providers = wired.payments.providers
    if wired.settings.production or providers.livemode:
        return []
    # only what a configured account takes (a registered wallet without its app is not)
    return [m for m in offered(request).test_methods if providers.taking(m)]


async def _order_or_none(request: Request, order_id: str, token: str) -> Order | None:
    """The order when ``token`` is its status token (the same lookup as the API's)."""
    return await shopper_order(_wiring(request).storage, order_id[:100], token)


def _back_to_page(order: Order, language_: str, *, reported: bool = False) -> Response:
    url = f"/orders/{order.id}?token={order.status_token}&lang={language_}"
    return RedirectResponse(url + ("&reported=1" if reported else ""), status_code=303)


def _not_found(language_: str) -> Response:
    return page("not_found.html", language_, status=404)


def _refused(language_: str) -> Response:
    return page("refused.html", language_, status=403)


def _secure(wiring: ShopperPageDesk) -> bool:
    return forms.secure_cookies(wiring.settings.public_url, wiring.settings.cookie_secure)


def _wiring(request: Request) -> ShopperPageDesk:
    found: ShopperPageDesk = request.app.state.container
    return found

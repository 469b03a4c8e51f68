"""The console's pages and actions. Every action is a POST with the session's CSRF token,
checked with the user's role on the server, and lands on the order's timeline with the
user's name (as the actor, cause ``support``)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import timedelta
from typing import Annotated, Any, Protocol
from urllib.parse import quote

from fastapi import APIRouter, FastAPI, Query, Request
from starlette.responses import RedirectResponse, Response

from orderguard.catalog import LANGUAGES
from orderguard.domain.errors import DomainError, OrderNotFound
from orderguard.domain.events import Cause
from orderguard.domain.flags import FlagReason
from orderguard.domain.money import exponent
from orderguard.domain.refund_record import MAX_REASON
from orderguard.domain.stuck import STUCK_AFTER, stuck_horizon
from orderguard.services import queries
from orderguard.services.console_users import HashingBusy, LoginRefused, Role
from orderguard.services.operations import Operations
from orderguard.services.recheck import Recheck
from orderguard.services.review import Review
from orderguard.storage.ports import OrderQuery
from orderguard.web import forms
from orderguard.web.console import auth, guide, ports
from orderguard.web.console.auth import BadForm, Forbidden, NotLoggedIn, Visitor
from orderguard.web.ports import offered, wired
from orderguard.web.templating import language, page


class ConsoleDesk(ports.ConsoleViews, Protocol):
    """What the console's pages read and its actions call: recheck, refund, cancel."""

    @property
    def recheck(self) -> Recheck: ...

    @property
    def operations(self) -> Operations: ...


router = APIRouter(prefix="/console", include_in_schema=False)
LANG_COOKIE = "og_lang"
#: Orders shown on one queue page.
QUEUE_LIMIT = 200
#: Longest password read from the log-in form (Argon2 hashes any length; this bounds work).
MAX_PASSWORD = 1024
#: Seconds a client is asked to wait when every password-hashing slot is taken.
BUSY_RETRY_S = 2
#: How long a log-in refused for a full hashing queue waits before it is answered: a client
#: that keeps the queue full then waits too, instead of spending the event loop (which
#: intake shares) on refusals as fast as it can send them. A waiting answer costs no CPU.
BUSY_ANSWER_DELAY_S = 1.0
Minutes = Annotated[int, Query(ge=0, le=60 * 24 * 30)]
#: The stuck queue's default look: the definition's own (``domain.stuck.STUCK_AFTER``).
STUCK_MINUTES = int(STUCK_AFTER.total_seconds() // 60)


def install_handlers(app: FastAPI) -> None:
    """Send the logged-out to the log-in page; refuse forbidden requests with 403."""

    async def logged_out(request: Request, exc: Exception) -> Response:
        return RedirectResponse("/console/login", status_code=303)

    async def forbidden(request: Request, exc: Exception) -> Response:
        return _refused(request, exc, status=403)

    async def malformed(request: Request, exc: Exception) -> Response:
        return page(
            "console/forbidden.html",
            _lang(request),
            status=400,
            why=str(exc),
            me=None,
            heading="console.bad_request",
        )

    app.add_exception_handler(NotLoggedIn, logged_out)
    app.add_exception_handler(Forbidden, forbidden)
    app.add_exception_handler(BadForm, malformed)


def _refused(request: Request, exc: Exception, *, status: int) -> Response:
    return page(
        "console/forbidden.html",
        _lang(request),
        status=status,
        why=str(exc),
        me=None,
        test_mode=_test_mode(request),
    )


# --- log-in ------------------------------------------------------------------------------


@router.get("/login")
async def login_page(request: Request) -> Response:
    """The log-in form."""
    return _login_form(request, error=None, status=200)


@router.post("/login")
async def login(request: Request) -> Response:
    """Check the password (with lock-out) and open a session. Every refusal, whatever its
    reason, is the same page with the same status; a full hashing pool answers 503."""
    form = await auth.form_of(request)
    try:
        forms.check_shopper_csrf(request, form)
    except forms.FormRefused as exc:
        raise Forbidden(str(exc)) from None
    users = auth.console_users(request)
    try:
        opened = await users.log_in(
            forms.field(form, "name", limit=64),
            forms.field(form, "password", limit=MAX_PASSWORD),
            address=request.client.host if request.client else "",
        )
    except LoginRefused:
        return _login_form(request, error="console.bad_login", status=401)
    except HashingBusy:
        await asyncio.sleep(BUSY_ANSWER_DELAY_S)
        busy = _login_form(request, error="console.busy", status=503)
        busy.headers["Retry-After"] = str(BUSY_RETRY_S)
        return busy
    response = RedirectResponse("/console", status_code=303)
    lifetime = opened.session.expires_at - opened.session.created_at
    auth.set_session(response, request, opened.cookie, int(lifetime.total_seconds()))
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    """End the session."""
    me = await auth.visitor(request)
    form = await auth.form_of(request)
    if not forms.same_token(me.session.csrf_token, forms.field(form, "csrf")):
        raise Forbidden("CSRF token missing or wrong")
    await auth.console_users(request).log_out(request.cookies.get(auth.SESSION_COOKIE, ""))
    response = RedirectResponse("/console/login", status_code=303)
    auth.clear_session(response, request)
    return response


@router.get("/language")
async def switch_language(to: str = "en", next: str = "/console") -> Response:
    """Remember the chosen language and go back."""
    target = next if next.startswith("/console") and "//" not in next else "/console"
    response = RedirectResponse(target, status_code=303)
    if to in LANGUAGES:
        response.set_cookie(LANG_COOKIE, to, httponly=True, samesite="strict", path="/console")
    return response


# --- pages -------------------------------------------------------------------------------


@router.get("")
async def dashboard(request: Request) -> Response:
    """Orders by state, stuck and flagged counts, provider health, backlogs."""
    me, wiring = await auth.visitor(request), _wiring(request)
    stats = wiring.storage.stats
    counts = await stats.counts(stuck_since=stuck_horizon(now=wiring.clock()))
    outbox_view = ports.notifications(request)
    outbox = await outbox_view.backlog() if outbox_view else None
    providers = [
        {"name": s.name, "state": str(s.breaker.state), "failures": s.breaker.consecutive_failures}
        for s in wiring.payments.providers.slots
    ]
    return _page(
        request,
        me,
        "console/dashboard.html",
        by_state=await stats.orders_by_state(),
        counts=counts,
        outbox_backlog=outbox,
        providers=providers,
    )


@router.get("/stuck")
async def stuck(request: Request, minutes: Minutes = STUCK_MINUTES) -> Response:
    """Stuck orders (``domain.stuck``), here unchanged for ``minutes`` (a shorter or longer
    look than the definition's, when support chooses one)."""
    me, wiring = await auth.visitor(request), _wiring(request)
    since = stuck_horizon(now=wiring.clock(), after=timedelta(minutes=minutes))
    orders = await queries.list_orders(
        wiring.storage, OrderQuery(limit=QUEUE_LIMIT, stuck_since=since)
    )
    return _page(request, me, "console/queue.html", queue="stuck", orders=orders, minutes=minutes)


@router.get("/flagged")
async def flagged(request: Request) -> Response:
    """Orders in the review queue."""
    me, wiring = await auth.visitor(request), _wiring(request)
    orders = await queries.list_orders(wiring.storage, OrderQuery(limit=QUEUE_LIMIT, flagged=True))
    return _page(request, me, "console/queue.html", queue="flagged", orders=orders, minutes=None)


@router.get("/webhooks")
async def failed_webhooks(request: Request) -> Response:
    """Provider webhooks whose processing failed (retried by the worker)."""
    me, wiring = await auth.visitor(request), _wiring(request)
    async with wiring.storage() as uow:
        found = await uow.webhooks.recent(limit=QUEUE_LIMIT, failed_only=True)
    role, shown = me.user.role, offered(request).credentials.shown
    records = [replace(r, last_error=shown(role, r.last_error)) for r in found]
    return _page(request, me, "console/webhooks.html", records=records)


@router.get("/notifications")
async def dead_letters(request: Request) -> Response:
    """Notifications the outbox gave up delivering (only when the outbox is plugged in)."""
    me, notifications = await auth.visitor(request), ports.notifications(request)
    if notifications is None:
        return _not_here(request, me)
    found = await notifications.dead_letters(limit=QUEUE_LIMIT)
    shown = offered(request).credentials.shown
    letters = [replace(x, last_error=shown(me.user.role, x.last_error)) for x in found]
    return _page(request, me, "console/dead_letters.html", letters=letters)


@router.get("/reconciliation")
async def reconciliation(request: Request) -> Response:
    """Unresolved reconciliation exceptions (only when reconciliation is plugged in)."""
    me, source = await auth.visitor(request), ports.reconciliation(request)
    if source is None:
        return _not_here(request, me)
    found = await source.exceptions(limit=QUEUE_LIMIT)
    return _page(request, me, "console/reconciliation.html", exceptions=found)


@router.get("/search")
async def search(request: Request, q: Annotated[str, Query(max_length=300)] = "") -> Response:
    """Orders by id, merchant reference, email or provider reference."""
    me, wiring = await auth.visitor(request), _wiring(request)
    text = q.strip()
    orders = []
    if text:
        ids = await wiring.storage.console.search(text, limit=QUEUE_LIMIT)
        if len(ids) == 1:
            return RedirectResponse(f"/console/orders/{quote(ids[0])}", status_code=303)
        async with wiring.storage() as uow:
            orders = [o for o in [await uow.orders.get(i) for i in ids] if o is not None]
    return _page(request, me, "console/search.html", q=text, orders=orders)


@router.get("/guide")
async def support_guide(request: Request) -> Response:
    """The troubleshooting guide (docs/support-guide.md)."""
    me = await auth.visitor(request)
    return _page(request, me, "console/guide.html", guide_html=guide.html())


@router.get("/orders/{order_id}")
async def order(request: Request, order_id: str) -> Response:
    """One order: timeline, attempts, raw webhook events, notifications, actions."""
    me = await auth.visitor(request)
    return await _order_page(request, me, order_id)


@router.get("/orders/{order_id}/refund")
async def confirm_refund(request: Request, order_id: str) -> Response:
    """Ask before refunding: how much, to whom, cannot be undone."""
    me, wiring = await auth.visitor(request), _wiring(request)
    detail = await _detail(wiring, order_id)
    if detail is None:
        return _not_here(request, me)
    return _page(request, me, "console/refund.html", order=detail.order)


# --- actions -----------------------------------------------------------------------------


@router.post("/orders/{order_id}/recheck")
async def recheck(request: Request, order_id: str) -> Response:
    """Ask the provider now; the request itself is noted with the user's name."""
    me, _ = await auth.acting(request)
    wiring = _wiring(request)

    async def act() -> None:
        await Review(wiring.storage).note(order_id, "recheck requested", actor=me.name)
        await wiring.recheck.order(order_id, cause=Cause.SUPPORT, actor=me.name)

    return await _act(request, me, order_id, "console.recheck", act)


@router.post("/orders/{order_id}/refund")
async def refund(request: Request, order_id: str) -> Response:
    """Refund all or part of what is left, with a reason, in two steps: the form's values
    are shown back for confirmation, then the confirmed form makes one refund (its key
    makes a double submit the same refund)."""
    me, form = await auth.acting(request)
    amount_text = forms.field(form, "amount", limit=40).strip()
    reason = forms.field(form, "reason", limit=4 * MAX_REASON).strip()
    confirmed = forms.field(form, "confirm") == "yes"
    if not confirmed and not amount_text and not reason:
        return RedirectResponse(f"/console/orders/{quote(order_id)}/refund", status_code=303)
    wiring = _wiring(request)
    detail = await _detail(wiring, order_id)
    if detail is None:
        return _not_here(request, me)
    amount, problem = refund_amount(amount_text, detail.order.currency)
    if problem is None and not _good_reason(reason):
        problem = ("console.refund_reason_needed", {"most": MAX_REASON})
    values: dict[str, Any] = {"amount_text": amount_text, "reason": reason[:MAX_REASON]}
    if problem is not None:
        page_ = "console/refund.html"
        return _page(request, me, page_, status=400, order=detail.order, problem=problem, **values)
    if not confirmed:
        return _page(
            request,
            me,
            "console/refund.html",
            order=detail.order,
            confirming=amount if amount is not None else detail.order.amount_refundable,
            key=forms.new_token(),
            **values,
        )
    key = forms.field(form, "key", limit=100) or forms.new_token()

    async def act() -> None:
        await wiring.operations.request_refund(
            order_id,
            amount=amount,
            reason=reason,
            actor=me.name,
            cause=Cause.SUPPORT,
            request_key=f"console:{key}",
        )

    return await _act(request, me, order_id, "console.refund", act)


def refund_amount(text: str, currency: str) -> tuple[int | None, tuple[str, dict[str, Any]] | None]:
    """A refund amount typed in major units (``12.50``) as minor units; ``None`` for all
    that is left (empty), or a translatable problem."""
    if not text:
        return None, None
    digits = exponent(currency)
    match = _AMOUNT.match(text)
    if match is None or len(match[2] or "") > digits:
        return None, ("console.refund_amount_invalid", {"digits": digits, "currency": currency})
    minor = int(match[1]) * 10**digits + int((match[2] or "").ljust(digits, "0") or 0)
    if minor < 1:
        return None, ("console.refund_amount_invalid", {"digits": digits, "currency": currency})
    return minor, None


#: An amount in major units: up to 13 digits, optionally a point and decimals.
_AMOUNT = re.compile(r"^(\d{1,13})(?:\.(\d{1,4}))?$")


def _good_reason(reason: str) -> bool:
    return 1 <= len(reason) <= MAX_REASON and not any(ord(c) < 32 or ord(c) == 127 for c in reason)


@router.post("/orders/{order_id}/cancel")
async def cancel(request: Request, order_id: str) -> Response:
    """Cancel an unpaid order with no payment in flight."""
    me, _ = await auth.acting(request)
    wiring = _wiring(request)

    async def act() -> None:
        await wiring.operations.cancel_order(order_id, actor=me.name, cause=Cause.SUPPORT)

    return await _act(request, me, order_id, "console.cancel", act)


@router.post("/orders/{order_id}/clear-flag")
async def clear_flag(request: Request, order_id: str) -> Response:
    """Clear one review reason (``reason``; every open one without it), with a comment."""
    me, form = await auth.acting(request)
    comment = forms.field(form, "comment").strip()
    if not comment:
        return await _order_page(request, me, order_id, error="console.comment", status=400)
    named = forms.field(form, "reason", limit=64)
    if named and named not in set(FlagReason):
        return await _order_page(request, me, order_id, error="console.unknown_flag", status=400)
    reason = FlagReason(named) if named else None
    wiring = _wiring(request)

    async def act() -> None:
        await Review(wiring.storage).clear_flag(order_id, comment, actor=me.name, reason=reason)

    return await _act(request, me, order_id, "console.clear_flag", act)


@router.post("/notifications/{letter_id}/resend")
async def resend(request: Request, letter_id: str) -> Response:
    """Deliver a dead-lettered notification again; noted on its order's timeline."""
    me, _ = await auth.acting(request)
    notifications = ports.notifications(request)
    if notifications is None:
        return _not_here(request, me)
    try:
        letter = await notifications.resend(letter_id)
    except LookupError:
        return _not_here(request, me)
    note = f"notification {letter.event_type} to {letter.sink} resent ({letter.id})"
    await Review(_wiring(request).storage).note(letter.order_id, note, actor=me.name)
    return RedirectResponse(f"/console/orders/{quote(letter.order_id)}", status_code=303)


# --- helpers -----------------------------------------------------------------------------


async def _act(
    request: Request, me: Visitor, order_id: str, what: str, act: Callable[[], Awaitable[None]]
) -> Response:
    try:
        await act()
    except OrderNotFound:
        return _not_here(request, me)
    except DomainError as exc:
        return await _order_page(request, me, order_id, error=str(exc), status=409)
    target = f"/console/orders/{quote(order_id)}?done={quote(what.removeprefix('console.'))}"
    return RedirectResponse(target, status_code=303)


async def _order_page(
    request: Request, me: Visitor, order_id: str, *, error: str | None = None, status: int = 200
) -> Response:
    wiring = _wiring(request)
    detail = await _detail(wiring, order_id)
    if detail is None:
        return _not_here(request, me)
    async with wiring.storage() as uow:
        events = await uow.orders.events(order_id)
    role, shown = me.user.role, offered(request).credentials.shown
    webhooks = [
        {
            "received_at": w.received_at,
            "provider": w.provider,
            "type": w.type,
            "body": shown(role, w.body.decode(errors="replace")),
            "pruned_at": w.pruned_at,
            "last_error": shown(role, w.last_error),
        }
        for w in await wiring.storage.console.webhooks_for(order_id)
    ]
    notifications = ports.notifications(request)
    deliveries = (
        [
            replace(d, last_error=shown(role, d.last_error) or None)
            for d in await notifications.deliveries_of(order_id)
        ]
        if notifications is not None
        else None
    )
    status_url = f"/orders/{detail.order.id}?token={detail.order.status_token}"
    done = request.query_params.get("done", "")
    return _page(
        request,
        me,
        "console/order.html",
        status=status,
        order=detail.order,
        timeline=[replace(e, note=shown(role, e.note)) for e in reversed(detail.timeline)],
        events=events,
        webhooks=webhooks,
        deliveries=deliveries,
        error=error,
        done=f"console.{done}" if done in {"recheck", "refund", "cancel", "clear_flag"} else None,
        status_url=status_url if role == Role.ADMIN else None,
    )


async def _detail(wired: ConsoleDesk, order_id: str) -> queries.OrderDetail | None:
    try:
        return await queries.order_detail(wired.storage, order_id[:100])
    except OrderNotFound:
        return None


def _page(
    request: Request, me: Visitor, template: str, *, status: int = 200, **context: Any
) -> Response:
    return page(
        template,
        _lang(request),
        status=status,
        me=me,
        csrf=me.session.csrf_token,
        here=request.url.path + (f"?{request.url.query}" if request.url.query else ""),
        has_notifications=ports.notifications(request) is not None,
        has_reconciliation=ports.reconciliation(request) is not None,
        test_mode=_test_mode(request),
        **context,
    )


def _not_here(request: Request, me: Visitor) -> Response:
    return _page(request, me, "console/missing.html", status=404)


def _login_form(request: Request, *, error: str | None, status: int) -> Response:
    token = forms.shopper_csrf(request)
    response = page(
        "console/login.html",
        _lang(request),
        status=status,
        error=error,
        csrf=token,
        me=None,
        test_mode=_test_mode(request),
    )
    forms.keep_csrf(response, token, secure=auth.secure(request))
    return response


def _lang(request: Request) -> str:
    return language(request.cookies.get(LANG_COOKIE), request.headers.get("accept-language"))


def _test_mode(request: Request) -> bool:
    """Whether the deployment takes orders in test mode (no live provider account): then
    every console page says so."""
    if getattr(request.app.state, "container", None) is None:
        return True
    return not wired(request).payments.providers.livemode


def _wiring(request: Request) -> ConsoleDesk:
    found: ConsoleDesk = request.app.state.container
    return found

"""The sandbox as a Starlette app: WeChat Pay's v3 paths, the simulated shopper, admin
routes and ``/ledger``."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import parse_qs, urlsplit

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from orderguard.providers.faults import hold
from orderguard.providers.wallet_admin import fault_routes
from orderguard.providers.wechatpay.sandbox import bills
from orderguard.providers.wechatpay.sandbox.service import MODES, Sandbox, SandboxConfig
from orderguard.providers.wechatpay.sandbox.trades import ApiError, Trade, lagging_view

Json = dict[str, Any]
Handler = Callable[[Sandbox, Request, Json], Awaitable[tuple[int, Json | None]]]


def _sandbox(request: Request) -> Sandbox:
    found: Sandbox = request.app.state.sandbox
    return found


def _signed(sandbox: Sandbox, status: int, payload: Json | None) -> Response:
    body = b"" if payload is None else json.dumps(payload, ensure_ascii=False).encode()
    media = None if payload is None else "application/json"
    return Response(body, status, headers=sandbox.sign(body), media_type=media)


#: WeChat Pay's own answers (status, code, message) for the profile's call faults.
SYSTEM_ERROR = (500, "SYSTEM_ERROR", "系统异常, 请稍后重试")
REFUSALS = {
    "error_before": SYSTEM_ERROR,
    "outage": SYSTEM_ERROR,
    "error_after": SYSTEM_ERROR,
    "rate_limit": (429, "FREQUENCY_LIMITED", "频率超限"),
}


def api(handler: Handler, *, writes: bool = False) -> Callable[[Request], Awaitable[Response]]:
    """A v3 endpoint: faults, the merchant's signature, the handler, a signed answer
    (``writes``: the handler changes something, so the "after" faults may strike)."""

    async def endpoint(request: Request) -> Response:
        sandbox = _sandbox(request)
        raw = (await request.body()).decode()
        decided = sandbox.injector.call(mutating=writes)
        try:
            if sandbox.faults.fail_next > 0:
                sandbox.faults.fail_next -= 1
                raise ApiError(sandbox.faults.status, *SYSTEM_ERROR[1:])
            struck = await sandbox.injector.before(decided, request.url.path)
            if struck is not None:
                raise ApiError(*REFUSALS[struck])
            url = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            header = request.headers.get("authorization", "")
            sandbox.authenticate(header, request.method, url, raw)
            status, payload = await handler(sandbox, request, json.loads(raw) if raw else {})
            lost = sandbox.injector.after(decided, request.url.path)
            if lost == "timeout_after":
                await hold(request, sandbox.injector.profile.hold_s)
            if lost is not None:
                raise ApiError(*REFUSALS["error_after"])
        except ApiError as exc:
            status, payload = exc.status, {"code": exc.code, "message": exc.message}
        except ValueError:
            status, payload = 400, {"code": "PARAM_ERROR", "message": "请求体不是 JSON"}
        if sandbox.faults.delay_s:
            await asyncio.sleep(sandbox.faults.delay_s)
        return _signed(sandbox, status, payload)

    return endpoint


def _place(kind: str) -> Handler:
    async def handler(sandbox: Sandbox, request: Request, body: Json) -> tuple[int, Json | None]:
        trade = sandbox.book.place(body, "NATIVE" if kind == "native" else "MWEB")
        if kind == "native":
            return 200, {"code_url": trade.code_url}
        base = str(request.base_url).rstrip("/")
        return 200, {"h5_url": f"{base}/sandbox/h5?prepay_id={trade.token}"}

    return handler


async def query(sandbox: Sandbox, request: Request, body: Json) -> tuple[int, Json | None]:
    """The trade; or, under the profile's faults, 500 ``SYSTEM_ERROR``, or ``NOTPAY`` while
    the query lags a payment already notified."""
    no = request.path_params["out_trade_no"]
    if sandbox.injector.query_system_error(no):
        raise ApiError(*SYSTEM_ERROR)
    found = sandbox.book.query(no, request.query_params.get("mchid", ""))
    if sandbox.injector.lagging(no):
        return 200, lagging_view(sandbox.book.trades[no])
    return 200, found


async def close(sandbox: Sandbox, request: Request, body: Json) -> tuple[int, Json | None]:
    """Close an unpaid trade; under the profile's ``close_race`` the shopper's payment lands
    first, and the close is refused ``ORDERPAID`` as for any paid trade."""
    no, mchid = request.path_params["out_trade_no"], str(body.get("mchid") or "")
    trade = sandbox.book.trades.get(no)
    if sandbox.injector.close_race() and trade is not None and mchid == sandbox.book.mchid:
        try:
            _act(sandbox, trade, "pay")
            sandbox.injector.record("close_race", no)
        except ApiError:
            pass  # not scanned, closed, expired or paid: no payment could land
    sandbox.book.close(no, mchid)
    return 204, None


async def refund(sandbox: Sandbox, request: Request, body: Json) -> tuple[int, Json | None]:
    answer = sandbox.book.refund(body)
    if sandbox.config.settle_refunds and answer["status"] == "PROCESSING":
        _settle(sandbox, answer["out_refund_no"], "SUCCESS")
    return 200, answer


async def find_refund(sandbox: Sandbox, request: Request, body: Json) -> tuple[int, Json | None]:
    """One refund by ``out_refund_no`` (404 ``RESOURCE_NOT_EXISTS`` for one never made);
    under the profile's faults, 500 ``SYSTEM_ERROR``."""
    no = request.path_params["out_refund_no"]
    if sandbox.injector.query_system_error(no):
        raise ApiError(*SYSTEM_ERROR)
    return 200, sandbox.book.find_refund(no)


def _settle(sandbox: Sandbox, out_refund_no: str, status: str) -> None:
    found = sandbox.book.settle_refund(out_refund_no, status)
    plain = {
        "mchid": sandbox.identity.mchid,
        "out_trade_no": found["out_trade_no"],
        "transaction_id": found["transaction_id"],
        "out_refund_no": out_refund_no,
        "refund_id": found["refund_id"],
        "refund_status": status,
        "success_time": found.get("success_time"),
        "user_received_account": found["user_received_account"],
        "amount": {k: v for k, v in found["amount"].items() if k != "currency"},
    }
    sandbox.notifier.notify(found["notify_url"], f"REFUND.{status}", plain)


async def shopper(request: Request) -> Response:
    """``POST /sandbox/shopper/{out_trade_no}/{action}``: scan, open, pay, fail, abandon."""
    sandbox = _sandbox(request)
    try:
        trade = sandbox.book.trades.get(request.path_params["out_trade_no"])
        if trade is None:
            raise ApiError(404, "ORDER_NOT_EXIST", "no such order")
        _act(sandbox, trade, request.path_params["action"])
    except ApiError as exc:
        return JSONResponse({"code": exc.code, "message": exc.message}, exc.status)
    return JSONResponse({"out_trade_no": trade.out_trade_no, "trade_state": trade.state})


def _act(sandbox: Sandbox, trade: Trade, action: str) -> None:
    sandbox.book.shopper(trade, action)
    if action == "pay":
        sandbox.injector.paid(trade.out_trade_no)
        sandbox.notifier.notify(trade.order["notify_url"], "TRANSACTION.SUCCESS", trade.view())


async def scan(request: Request) -> Response:
    """``POST /sandbox/scan`` ``{"code_url": ...}``: the shopper scans a QR code."""
    sandbox = _sandbox(request)
    code_url = str((await request.json()).get("code_url") or "")
    token = (parse_qs(urlsplit(code_url).query).get("pr") or [""])[0]
    try:
        trade = sandbox.book.by_token(token)
        _act(sandbox, trade, "scan")
    except ApiError as exc:
        return JSONResponse({"code": exc.code, "message": exc.message}, exc.status)
    return JSONResponse({"out_trade_no": trade.out_trade_no, "trade_state": trade.state})


async def h5_page(request: Request) -> Response:
    """``GET /sandbox/h5?prepay_id=...``: the shopper opens the H5 page."""
    sandbox = _sandbox(request)
    try:
        trade = sandbox.book.by_token(request.query_params.get("prepay_id", ""))
        _act(sandbox, trade, "open")
    except ApiError as exc:
        return HTMLResponse(f"<p>{exc.message}</p>", exc.status)
    no = trade.out_trade_no
    return HTMLResponse(
        f"<h1>WeChat Pay sandbox</h1><p>{trade.order['description']}: "
        f"{trade.total} fen</p><form method=post action=/sandbox/shopper/{no}/pay>"
        "<button>Pay</button></form>"
    )


async def admin(request: Request) -> Response:
    """``POST /sandbox/admin``: ``mode`` (signing), ``fail_next``/``status``/``delay_s``
    (faults), ``visible_before_scan`` (the query shows unscanned orders),
    ``payment_beats_close`` (a close leaves the trade payable: a payment lands after it),
    ``settle_refunds``
    (whether new refunds end at once), ``settle_refund`` + ``refund_status`` (end a
    PROCESSING refund)."""
    sandbox = _sandbox(request)
    body = await request.json()
    if body.get("mode") in MODES:
        sandbox.mode = body["mode"]
    for name in ("fail_next", "status", "delay_s"):
        if name in body:
            setattr(sandbox.faults, name, body[name])
    if "visible_before_scan" in body:
        sandbox.book.visible_before_scan = bool(body["visible_before_scan"])
    if "payment_beats_close" in body:
        sandbox.book.payment_beats_close = bool(body["payment_beats_close"])
    if "settle_refunds" in body:
        sandbox.config.settle_refunds = bool(body["settle_refunds"])
    if body.get("settle_refund"):
        _settle(sandbox, body["settle_refund"], body.get("refund_status", "SUCCESS"))
    return JSONResponse({"mode": sandbox.mode, "faults": vars(sandbox.faults)})


async def ledger(request: Request) -> Response:
    """``GET /ledger``: every trade (prepays included, a Native one with the ``code_url``
    it answered), refund and notification."""
    sandbox = _sandbox(request)
    trades = [
        {**t.view(), "abandoned": t.abandoned, "refunded": t.refunded, "code_url": t.code_url}
        for t in sandbox.book.trades.values()
    ]
    return JSONResponse(
        {
            "trades": trades,
            "refunds": list(sandbox.book.refunds.values()),
            "notifications": sandbox.notifier.sent,
        }
    )


TRADES = "/v3/pay/transactions/out-trade-no/{out_trade_no}"
ROUTES = [
    Route("/v3/pay/transactions/native", api(_place("native"), writes=True), methods=["POST"]),
    Route("/v3/pay/transactions/h5", api(_place("h5"), writes=True), methods=["POST"]),
    Route(TRADES, api(query), methods=["GET"]),
    Route(f"{TRADES}/close", api(close, writes=True), methods=["POST"]),
    Route("/v3/refund/domestic/refunds", api(refund, writes=True), methods=["POST"]),
    Route("/v3/refund/domestic/refunds/{out_refund_no}", api(find_refund), methods=["GET"]),
    Route("/sandbox/scan", scan, methods=["POST"]),
    Route("/sandbox/h5", h5_page, methods=["GET"]),
    Route("/sandbox/shopper/{out_trade_no}/{action}", shopper, methods=["POST"]),
    Route("/sandbox/admin", admin, methods=["POST"]),
    Route("/ledger", ledger, methods=["GET"]),
    *fault_routes(lambda request: _sandbox(request).injector),
]


def create_app(config: SandboxConfig) -> Starlette:
    """A sandbox app; ``app.state.sandbox`` holds its state once it has started."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        app.state.sandbox = Sandbox(config)
        try:
            yield
        finally:
            await app.state.sandbox.notifier.stop()

    return Starlette(routes=[*ROUTES, *bills.ROUTES], lifespan=lifespan)

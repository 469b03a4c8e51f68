"""The sandbox as a Starlette app: ``gateway.do``, the cashier, admin routes, ``/ledger``."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import timedelta

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from orderguard.providers.alipay import errors, signing
from orderguard.providers.alipay.sandbox import api, bills, cashier
from orderguard.providers.alipay.sandbox.config import SandboxConfig
from orderguard.providers.alipay.sandbox.state import Sandbox
from orderguard.providers.alipay.sandbox.trades import BusinessError
from orderguard.providers.faults import hold
from orderguard.providers.wallet_admin import fault_routes

JSON_UTF8 = "application/json;charset=utf-8"
#: The API methods the gateway answers: :mod:`.api`'s and the bill's (:mod:`.bills`).
METHODS = {**api.METHODS, bills.METHOD: bills.download_url_query}


def _answer(
    sandbox: Sandbox, method: str, body: Mapping[str, object], *, bad: bool = False
) -> Response:
    """The signed gateway answer; ``json.dumps``' default spacing, so a client that
    re-serialised instead of taking the raw text would not verify it."""
    raw = json.dumps(dict(body), ensure_ascii=False)
    text = signing.response_text(signing.response_key(method), raw, sandbox.keys.alipay)
    if bad:
        text = text.replace('"sign":"', '"sign":"AAAA', 1)
    return Response(text, media_type=JSON_UTF8)


def _failure(code: str, msg: str, sub_code: str, sub_msg: str) -> dict[str, object]:
    return {"code": code, "msg": msg, "sub_code": sub_code, "sub_msg": sub_msg}


#: The gateway's own answers for the profile's call faults: its "system busy" (code 20000,
#: before the call, in an outage, or once a write ran and its answer is lost) and its
#: rate limit (the sub_code the adapter's ``errors.RATE_LIMITED`` names).
BUSY = _failure(errors.UNAVAILABLE, "Service Currently Unavailable", "isp.unknow-error", "系统繁忙")
REFUSALS = {
    "error_before": BUSY,
    "outage": BUSY,
    "error_after": BUSY,
    "rate_limit": _failure(
        errors.BUSINESS_FAILED, "Business Failed", "ACQ.REQUEST_LIMIT", "请求频率超限"
    ),
}


async def _params(request: Request) -> dict[str, str]:
    params = dict(request.query_params)
    if request.method == "POST":
        form = await request.form()
        params.update({k: str(v) for k, v in form.items()})
    return params


def _refusal(sandbox: Sandbox, params: Mapping[str, str]) -> dict[str, object] | None:
    """Why the gateway refuses the request itself (app id, sign type, signature), if it does."""
    if params.get("app_id") != sandbox.config.app_id:
        return _failure("40002", "Invalid Arguments", "isv.invalid-app-id", "无效的AppID参数")
    if params.get("sign_type") != signing.SIGN_TYPE:
        return _failure("40002", "Invalid Arguments", "isv.invalid-signature-type", "RSA2 only")
    content = signing.content(params)
    if not signing.verify(content, params.get("sign") or "", sandbox.keys.app_public):
        return _failure("40002", "Invalid Arguments", "isv.invalid-signature", "验签出错")
    return None


async def gateway(request: Request) -> Response:
    """``gateway.do``: the cashier methods (GET from a browser) and the API methods."""
    sandbox: Sandbox = request.app.state.sandbox
    params = await _params(request)
    bills.desk(sandbox).base_url = str(request.base_url)
    method = params.get("method", "")
    if method not in METHODS and method not in cashier.PRODUCT_CODES:
        unknown = _failure(
            "40004", "Business Failed", "isv.invalid-method", f"不存在的方法名 {method}"
        )
        return Response(json.dumps({"error_response": unknown}), media_type=JSON_UTF8)
    refusal = _refusal(sandbox, params)
    if method in cashier.PRODUCT_CODES:
        if refusal is not None:
            return cashier.refused(str(refusal["sub_code"]), str(refusal["sub_msg"]))
        return cashier.open_cashier(sandbox, params)
    if refusal is not None:
        return _answer(sandbox, method, refusal)
    faults = sandbox.faults
    if faults.take("http_500"):
        return Response("Internal Server Error", status_code=500)
    if faults.take("system_error"):
        return _answer(
            sandbox, method, _failure("40004", "Business Failed", "ACQ.SYSTEM_ERROR", "系统异常")
        )
    decided = sandbox.injector.call(mutating=method in api.WRITES)
    struck = await sandbox.injector.before(decided, method)
    if struck is not None:
        return _answer(sandbox, method, REFUSALS[struck])
    body = _run(sandbox, method, params)
    lost = sandbox.injector.after(decided, method)
    if lost == "timeout_after":
        await hold(request, sandbox.injector.profile.hold_s)
    if lost is not None:
        return _answer(sandbox, method, REFUSALS["error_after"])
    if faults.take("lose_answer"):
        return Response("Internal Server Error", status_code=500)
    return _answer(sandbox, method, body, bad=faults.take("bad_sign"))


def _run(sandbox: Sandbox, method: str, params: Mapping[str, str]) -> dict[str, object]:
    """The API method's answer: success with its fields, or the business failure."""
    try:
        biz = json.loads(params.get("biz_content") or "{}")
        return {"code": "10000", "msg": "Success", **METHODS[method](sandbox, biz)}
    except BusinessError as exc:
        return _failure("40004", "Business Failed", exc.sub_code, exc.sub_msg)
    except ValueError:
        return _failure("40002", "Invalid Arguments", "isv.invalid-biz-content", "biz_content")


def _shopper(action: str) -> Route:
    """An admin route playing the shopper (or time) on one trade."""

    async def act(request: Request) -> Response:
        sandbox: Sandbox = request.app.state.sandbox
        no = request.path_params["out_trade_no"]
        try:
            if action == "pay":
                trade = sandbox.pay(no)
            else:
                trade = getattr(sandbox.book, action)(no)
        except BusinessError as exc:
            return JSONResponse({"sub_code": exc.sub_code, "sub_msg": exc.sub_msg}, 409)
        if action == "close":
            sandbox.notify(trade)
        return JSONResponse({"out_trade_no": no, "trade_status": trade.status})

    path = "abandon" if action == "close" else action
    return Route(f"/admin/trades/{{out_trade_no}}/{path}", act, methods=["POST"])


async def set_faults(request: Request) -> Response:
    """``{"system_error": 2, ...}``: the next calls fail so (:class:`.state.Faults`)."""
    sandbox: Sandbox = request.app.state.sandbox
    for name, count in (await request.json()).items():
        if name not in ("http_500", "system_error", "lose_answer", "bad_sign"):
            return JSONResponse({"error": f"unknown fault {name}"}, 400)
        setattr(sandbox.faults, name, int(count))
    return JSONResponse({"ok": True})


async def move_clock(request: Request) -> Response:
    """``{"advance_s": 3600}``: the sandbox's clock moves on (expiry tests)."""
    sandbox: Sandbox = request.app.state.sandbox
    sandbox.offset += timedelta(seconds=float((await request.json())["advance_s"]))
    return JSONResponse({"now": sandbox.now().isoformat()})


async def ledger(request: Request) -> Response:
    """Everything the sandbox holds, in fen: the tests' oracle."""
    sandbox: Sandbox = request.app.state.sandbox
    book = sandbox.book.ledger()
    return JSONResponse(
        {**book, "notifications": sandbox.notifier.ledger(), "faults": sandbox.faults.counts}
    )


def create_app(config: SandboxConfig) -> Starlette:
    """A sandbox app; ``app.state.sandbox`` holds its state (keys made at first start)."""
    sandbox = Sandbox(config)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await sandbox.notifier.aclose()

    app = Starlette(
        routes=[
            Route("/gateway.do", gateway, methods=["GET", "POST"]),
            Route("/cashier/{out_trade_no}/login", cashier.login, methods=["POST"]),
            Route("/cashier/{out_trade_no}/pay", cashier.pay, methods=["POST"]),
            _shopper("login"),
            _shopper("pay"),
            _shopper("close"),
            _shopper("finish"),
            Route("/admin/faults", set_faults, methods=["POST"]),
            Route("/admin/clock", move_clock, methods=["POST"]),
            Route(bills.DOWNLOAD_PATH, bills.download, methods=["GET"]),
            Route("/admin/bills", bills.set_trouble, methods=["POST"]),
            Route("/ledger", ledger),
            *fault_routes(lambda request: request.app.state.sandbox.injector),
        ],
        lifespan=lifespan,
    )
    app.state.sandbox = sandbox
    return app

"""Closed-loop wallet shoppers: each places an order with a wallet method, pays at the wallet's
sandbox as the shopper would, and waits until orderguard shows the order ``paid``.

``python bench/_wallet_shoppers.py --wallet alipay --port P --sandbox-port S --shoppers 16
--warmup 3 --duration 12 --watch server=PID --watch sandbox=PID`` prints one JSON object.

One paid order is, in this order:

1. ``POST /v1/orders`` (``alipay_page`` or ``wechatpay_native``, CNY) answered ``201`` with
   the order ``action_required`` and its ``next_action``;
2. the shopper at the sandbox: Alipay — open the signed cashier URL (the trade is prepared),
   log in and pay (``/admin/trades/{out_trade_no}/login`` then ``/pay``); WeChat Pay — scan
   the code (``/sandbox/scan``) and pay (``/sandbox/shopper/{out_trade_no}/pay``);
3. the sandbox notifies serve, which settles the order ``paid``; the shopper polls
   ``GET /v1/orders/{id}`` (after 10 ms, then twice as long each time, at most 200 ms apart)
   until it reads ``paid``.

Each shopper keeps one keep-alive connection to serve and one to the sandbox, spoken by the
minimal HTTP/1.1 client below (asyncio streams, uvloop) so that the shoppers cost far less CPU
than the processes they load (httpx cost about as much as serve itself).

Only orders *seen* ``paid`` count, at the instant they were seen; the latency is from the
order's POST to that GET. Anything else (an unexpected status, a state other than
``action_required`` or ``paid``, no ``paid`` within 30 s) is an error.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import sys
import time
from typing import Any
from urllib.parse import urlsplit

import orjson

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import CpuSnapshot, cpu_usage, order_body, percentile, write_result

METHOD = {"alipay": "alipay_page", "wechatpay": "wechatpay_native"}
#: How long a shopper waits for ``paid`` after paying before calling it an error.
PAID_WITHIN_S = 30.0
FIRST_POLL_S, LAST_POLL_S = 0.010, 0.200


class HttpError(Exception):
    """The connection broke or the answer could not be read."""


class Connection:
    """One keep-alive HTTP/1.1 connection to 127.0.0.1:``port`` (answers must carry a
    Content-Length, as uvicorn's do for every non-streaming answer)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.host = f"127.0.0.1:{port}".encode()
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(
        self, method: str, target: str, body: bytes = b"", headers: bytes = b""
    ) -> tuple[int, bytes]:
        """Send one request, read its whole answer: (status, body)."""
        try:
            if self.writer is None:
                self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
            assert self.reader is not None
            self.writer.write(
                b"%s %s HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n%s\r\n%s"
                % (method.encode(), target.encode(), self.host, len(body), headers, body)
            )
            head = await self.reader.readuntil(b"\r\n\r\n")
            lines = head.split(b"\r\n")
            status = int(lines[0].split(b" ", 2)[1])
            fields = {}
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                fields[name.strip().lower()] = value.strip()
            if b"content-length" not in fields:
                raise HttpError(f"{method} {target[:40]}: no Content-Length")
            answer = await self.reader.readexactly(int(fields[b"content-length"]))
            if fields.get(b"connection", b"").lower() == b"close":
                self.close()
            return status, answer
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
            self.close()
            raise HttpError(f"{method} {target[:40]}: {type(exc).__name__}") from exc

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


JSON = b"Content-Type: application/json\r\n"


class Shoppers:
    """The shared state of every shopper."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.wallet = args.wallet
        self.tag = secrets.token_hex(4)
        self.sending = True
        self.measuring = False
        self.latencies: list[float] = []
        self.polls: list[int] = []
        self.errors: dict[str, int] = {}
        self.paid_ids: list[str] = []
        self.in_flight = 0
        body = order_body("@")
        body["currency"] = "CNY"
        body["payment"] = {"method": METHOD[args.wallet]}
        self.body = body

    def error(self, what: str) -> None:
        self.errors[what] = self.errors.get(what, 0) + 1


async def _pay_alipay(sandbox: Connection, url: str, out_trade_no: str) -> str | None:
    """The Alipay shopper: open the cashier, log in, pay; ``None`` or what went wrong."""
    parts = urlsplit(url)
    status, _ = await sandbox.request("GET", f"{parts.path}?{parts.query}")
    if status != 200:
        return f"cashier {status}"
    for step in ("login", "pay"):
        status, body = await sandbox.request("POST", f"/admin/trades/{out_trade_no}/{step}")
        if status != 200:
            return f"{step} {status}"
    return None if orjson.loads(body).get("trade_status") == "TRADE_SUCCESS" else "not paid"


async def _pay_wechatpay(sandbox: Connection, code_url: str, out_trade_no: str) -> str | None:
    """The WeChat Pay shopper: scan the code, pay; ``None`` or what went wrong."""
    code = orjson.dumps({"code_url": code_url})
    status, body = await sandbox.request("POST", "/sandbox/scan", code, JSON)
    if status != 200 or orjson.loads(body).get("out_trade_no") != out_trade_no:
        return f"scan {status}"
    status, body = await sandbox.request("POST", f"/sandbox/shopper/{out_trade_no}/pay")
    if status != 200 or orjson.loads(body).get("trade_state") != "SUCCESS":
        return f"pay {status}"
    return None


async def shopper(load: Shoppers, index: int, api_port: int, sandbox_port: int) -> None:
    """One shopper, order after order, until told to stop."""
    n = 0
    pay = _pay_alipay if load.wallet == "alipay" else _pay_wechatpay
    api, sandbox = Connection(api_port), Connection(sandbox_port)
    try:
        while load.sending:
            n += 1
            load.in_flight += 1
            try:
                await _one(load, api, sandbox, pay, f"wb-{load.tag}-{index}-{n}")
            except HttpError as exc:
                load.error(str(exc))
            finally:
                load.in_flight -= 1
    finally:
        api.close()
        sandbox.close()


async def _one(load: Shoppers, api: Connection, sandbox: Connection, pay: Any, ref: str) -> None:
    body = {**load.body, "merchant_reference": ref}
    t0 = time.perf_counter()
    headers = b"Idempotency-Key: %s\r\n%s" % (ref.encode(), JSON)
    status, answer = await api.request("POST", "/v1/orders", orjson.dumps(body), headers)
    if status != 201:
        load.error(f"POST {status}")
        return
    doc = orjson.loads(answer)
    if doc["state"] != "action_required" or not doc.get("next_action"):
        load.error(f"placed {doc['state']}")
        return
    out_trade_no = doc["payment_attempts"][-1]["provider_ref"]
    action = doc["next_action"]  # a page to open (Alipay) or a code to scan (WeChat Native)
    wrong = await pay(sandbox, action.get("redirect_url") or action["code_url"], out_trade_no)
    if wrong is not None:
        load.error(wrong)
        return
    wait, polls, deadline = FIRST_POLL_S, 0, time.perf_counter() + PAID_WITHIN_S
    while time.perf_counter() < deadline:
        await asyncio.sleep(wait)
        wait = min(2 * wait, LAST_POLL_S)
        polls += 1
        status, answer = await api.request("GET", f"/v1/orders/{doc['id']}")
        state = orjson.loads(answer).get("state") if status == 200 else f"GET {status}"
        if state == "paid":
            if load.measuring:
                load.latencies.append(1000 * (time.perf_counter() - t0))
                load.polls.append(polls)
                load.paid_ids.append(doc["id"])
            return
        if state != "action_required":
            load.error(f"seen {state}")
            return
    load.error("not paid within 30 s")


async def run(args: argparse.Namespace) -> dict[str, Any]:
    load = Shoppers(args)
    watch = {"loadgen": os.getpid()}
    for item in args.watch:
        name, _, pid = item.partition("=")
        watch[name] = int(pid)
    tasks = [
        asyncio.create_task(shopper(load, i, args.port, args.sandbox_port))
        for i in range(args.shoppers)
    ]
    await asyncio.sleep(args.warmup)
    before = CpuSnapshot.take(watch)
    errors_before = sum(load.errors.values())
    load.measuring = True
    t0 = time.perf_counter()
    await asyncio.sleep(args.duration)
    load.measuring = False
    elapsed = time.perf_counter() - t0
    after = CpuSnapshot.take(watch)
    errors_in_window = sum(load.errors.values()) - errors_before
    load.sending = False
    await asyncio.wait(tasks, timeout=PAID_WITHIN_S + 30)
    latencies = sorted(load.latencies)
    paid = len(latencies)
    return {
        "shoppers": args.shoppers,
        "seconds": elapsed,
        "paid": paid,
        "rps": paid / elapsed,
        "errors": errors_in_window,
        "error_kinds": load.errors,
        "p50": percentile(latencies, 50),
        "p95": percentile(latencies, 95),
        "p99": percentile(latencies, 99),
        "max": latencies[-1] if latencies else float("nan"),
        "polls_per_order": sum(load.polls) / paid if paid else float("nan"),
        "cpu": cpu_usage(before, after),
        "left_in_flight": load.in_flight,
        "paid_ids": load.paid_ids,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--wallet", choices=sorted(METHOD), required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--sandbox-port", type=int, required=True)
    parser.add_argument("--shoppers", type=int, default=16)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--duration", type=float, default=12.0)
    parser.add_argument("--watch", action="append", default=[], help="NAME=PID to account CPU")
    args = parser.parse_args()
    try:
        import uvloop

        result = uvloop.run(run(args))
    except ImportError:  # pragma: no cover
        result = asyncio.run(run(args))
    write_result(result)


if __name__ == "__main__":
    main()

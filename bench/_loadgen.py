"""A closed-loop HTTP/1.1 load generator: N keep-alive connections, each sending
``POST /v1/orders`` with a unique Idempotency-Key and merchant reference as soon as the
previous answer arrived. Raw asyncio protocols on uvloop, so that it costs far less CPU than
the server it loads.

``python bench/_loadgen.py --port P --connections 64 --warmup 3 --duration 12
--watch server=PID`` prints one JSON object: counts, latencies and CPU usage over the
measured window (requests completed within it).

For paid orders: ``--payment pm_card_visa`` adds ``"payment": {"method": ...}`` to every
body; ``--expect-state paid`` parses every measured answer and counts a 2xx whose order is
in another state as an error; ``--sample N`` keeps N answers' order id, amount and last
payment attempt (reservoir sample over the measured window) for an oracle cross-check;
``--watch-threads server=PID`` also splits that process's CPU into its main thread and the
rest of its threads; ``--watch-tree server=PID`` accounts as ``server`` that process with
every process descended from it (``serve --processes N``: the supervisor and its children),
and reports how the tree's CPU and the measured connections divide among its processes.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import secrets
import sys
import time
from typing import Any

import orjson

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import (
    BODY,
    CpuSnapshot,
    connections_by_process,
    cpu_usage,
    percentile,
    process_tree,
    thread_ids,
    tree_split,
    write_result,
)

MARK = "@@REF@@"


class Load:
    """The shared state of all connections."""

    def __init__(
        self,
        host: str,
        port: int,
        path: str,
        *,
        payment: str | None = None,
        expect_state: str | None = None,
        sample: int = 0,
    ) -> None:
        self.host, self.port = host, port
        self.tag = secrets.token_hex(4)
        document: dict[str, Any] = {**BODY, "merchant_reference": MARK}
        if payment is not None:
            document["payment"] = {"method": payment}
        body = orjson.dumps(document).decode()
        before, after = body.split(MARK)
        self.body_before, self.body_after = before.encode(), after.encode()
        # Reference and key have a fixed width, so Content-Length is constant.
        length = len(self.body_before) + len(self.reference(0, 0)) + len(self.body_after)
        self.head = (
            f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {length}\r\n"
            "Idempotency-Key: "
        ).encode()
        self.sending = True
        self.measuring = False
        self.latencies: list[int] = []
        self.statuses: dict[int, int] = {}
        self.conn_errors = 0
        self.in_flight = 0
        self.sent = 0
        self.idle = asyncio.Event()
        self.expect_state = expect_state
        self.states: dict[str, int] = {}
        self.bad_state = 0
        self.sample_size = sample
        self.sample: list[dict[str, Any]] = []
        self.seen = 0
        self.random = random.Random(0)

    def inspect(self, status: int, body: bytes) -> bool:
        """Whether a measured 2xx answer is in the expected state; samples it."""
        try:
            order = orjson.loads(body)
            state = str(order.get("state"))
        except (orjson.JSONDecodeError, AttributeError):
            order, state = {}, "unparsable"
        self.states[state] = self.states.get(state, 0) + 1
        if self.sample_size and 200 <= status < 300:
            self.seen += 1
            attempts = order.get("payment_attempts") or order.get("attempts") or []
            kept = {
                "id": order.get("id"),
                "state": state,
                "amount": (order.get("total") or {}).get("amount")
                if isinstance(order.get("total"), dict)
                else order.get("amount_total"),
                "attempts": len(attempts),
                "attempt": attempts[-1] if attempts else None,
            }
            if len(self.sample) < self.sample_size:
                self.sample.append(kept)
            else:
                slot = self.random.randrange(self.seen)
                if slot < self.sample_size:
                    self.sample[slot] = kept
        return state == self.expect_state

    @property
    def checking(self) -> bool:
        return self.measuring and (self.expect_state is not None or self.sample_size > 0)

    def reference(self, conn: int, n: int) -> str:
        return f"B{self.tag}{conn:03d}{n:09d}"

    def request(self, conn: int, n: int) -> bytes:
        ref = self.reference(conn, n).encode()
        return b"".join((self.head, ref, b"\r\n\r\n", self.body_before, ref, self.body_after))


class Client(asyncio.Protocol):
    """One keep-alive connection sending one request at a time."""

    def __init__(self, load: Load, index: int) -> None:
        self.load, self.index = load, index
        self.n = 0
        self.buf = bytearray()
        self.need: int | None = None
        self.body_at = 0
        self.status = 0
        self.started = 0
        self.pending = False
        self.transport: asyncio.Transport | None = None
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass

    def send(self) -> None:
        load = self.load
        if not load.sending or self.transport is None or self.transport.is_closing():
            return
        self.n += 1
        self.pending = True
        load.in_flight += 1
        load.sent += 1
        self.started = time.perf_counter_ns()
        self.transport.write(load.request(self.index, self.n))

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        while True:
            if self.need is None:
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    return
                head = bytes(buf[:end]).lower()
                self.status = int(head[9:12])
                at = head.find(b"\r\ncontent-length:")
                length = int(head[at + 17 : head.find(b"\r\n", at + 2)]) if at >= 0 else 0
                self.need = end + 4 + length
                self.body_at = end + 4
            if len(buf) < self.need:
                return
            body = bytes(buf[self.body_at : self.need]) if self.load.checking else b""
            del buf[: self.need]
            self.need = None
            self.done(body)

    def done(self, body: bytes) -> None:
        load = self.load
        self.pending = False
        load.in_flight -= 1
        if load.measuring:
            load.latencies.append(time.perf_counter_ns() - self.started)
            load.statuses[self.status] = load.statuses.get(self.status, 0) + 1
            if load.checking and not load.inspect(self.status, body) and 200 <= self.status < 300:
                load.bad_state += 1
        if load.sending:
            self.send()
        elif load.in_flight == 0:
            load.idle.set()

    def connection_lost(self, exc: Exception | None) -> None:
        load = self.load
        if self.pending:  # lost mid-request: an error, and no longer in flight
            self.pending = False
            load.in_flight -= 1
            if load.measuring:
                load.conn_errors += 1
            if not load.sending and load.in_flight == 0:
                load.idle.set()
        if not self.closed.done():
            self.closed.set_result(None)


async def connect(load: Load, index: int) -> Client:
    loop = asyncio.get_running_loop()
    _, client = await loop.create_connection(lambda: Client(load, index), load.host, load.port)
    return client


async def keep(load: Load, index: int) -> None:
    """Keep connection ``index`` busy until the load stops, reconnecting when it drops."""
    while load.sending:
        try:
            client = await connect(load, index)
        except OSError:
            if load.measuring:
                load.conn_errors += 1
            await asyncio.sleep(0.1)
            continue
        client.send()
        await client.closed
        if load.sending:
            await asyncio.sleep(0.01)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    load = Load(
        args.host,
        args.port,
        args.path,
        payment=args.payment,
        expect_state=args.expect_state,
        sample=args.sample,
    )
    watch = {"loadgen": os.getpid()}
    for item in args.watch:
        name, _, pid = item.partition("=")
        watch[name] = int(pid)
    tasks = [asyncio.create_task(keep(load, i)) for i in range(args.connections)]
    await asyncio.sleep(args.warmup)
    threads: dict[str, tuple[int, int]] = {}
    for item in args.watch_threads:
        name, _, pid = item.partition("=")
        for tid in thread_ids(int(pid)):
            label = "main" if tid == int(pid) else f"thread{tid}"
            threads[f"{name}.{label}"] = (int(pid), tid)
    trees: dict[str, int] = {}
    for item in args.watch_tree:
        name, _, pid = item.partition("=")
        trees[name] = int(pid)
    # Which process of each tree holds the connections (after the warm-up: all are open).
    accepted = {
        name: {str(k): n for k, n in connections_by_process(process_tree(pid), args.port).items()}
        for name, pid in trees.items()
    }
    before = CpuSnapshot.take(watch, threads, trees)
    load.measuring = True
    t0 = time.perf_counter()
    await asyncio.sleep(args.duration)
    load.measuring = False
    elapsed = time.perf_counter() - t0
    after = CpuSnapshot.take(watch, threads, trees)
    load.sending = False
    if load.in_flight > 0:
        try:
            await asyncio.wait_for(load.idle.wait(), 15)
        except TimeoutError:
            pass
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    latencies = sorted(ns / 1e6 for ns in load.latencies)
    done = len(latencies)
    ok = sum(n for status, n in load.statuses.items() if 200 <= status < 300) - load.bad_state
    extra: dict[str, Any] = {}
    if load.expect_state is not None:
        extra["states"] = dict(sorted(load.states.items()))
        extra["bad_state"] = load.bad_state
    if load.sample_size:
        extra["sample"] = load.sample
    if trees:
        extra["processes"] = tree_split(before, after)
        extra["accepted"] = accepted
    return {
        "connections": args.connections,
        "seconds": elapsed,
        "requests": done,
        "ok": ok,
        "errors": done - ok + load.conn_errors,
        "statuses": {str(k): v for k, v in sorted(load.statuses.items())},
        "conn_errors": load.conn_errors,
        "rps": ok / elapsed,
        "p50": percentile(latencies, 50),
        "p95": percentile(latencies, 95),
        "p99": percentile(latencies, 99),
        "max": latencies[-1] if latencies else float("nan"),
        "mean": sum(latencies) / done if done else float("nan"),
        "cpu": cpu_usage(before, after),
        "left_in_flight": load.in_flight,
        **extra,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", default="/v1/orders")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--duration", type=float, default=12.0)
    parser.add_argument("--watch", action="append", default=[], help="NAME=PID to account CPU")
    parser.add_argument(
        "--watch-threads", action="append", default=[], help="NAME=PID: CPU per thread too"
    )
    parser.add_argument(
        "--watch-tree",
        action="append",
        default=[],
        help="NAME=PID to account CPU of, with every process descended from it",
    )
    parser.add_argument("--payment", default=None, help="payment method to add to every body")
    parser.add_argument("--expect-state", default=None, help="order state every 2xx must have")
    parser.add_argument("--sample", type=int, default=0, help="answers to keep for checking")
    args = parser.parse_args()
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:  # pragma: no cover
        runner = asyncio.run
    result = runner(run(args))
    write_result(result)


if __name__ == "__main__":
    main()

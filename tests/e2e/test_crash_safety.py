"""G1 and G2 across a crash: SIGKILL ``orderguard serve`` while orders stream in.

A stream of concurrent ``POST /v1/orders`` runs against a real server process; at a
random moment, while requests are in flight, the process is killed (no shutdown code
runs). After a restart on the same database:

- every order whose request was answered 2xx is still there, unchanged (G1);
- replaying any acknowledged request returns the same order, marked as a replay (G2);
- retrying a request that died with the server creates at most one order: either the
  one committed before the crash (a replay) or a new one, never a second order (G2);
- the database holds exactly those orders, each merchant reference once.

The random seed is printed (shown on failure); rerun one with ``ORDERGUARD_CRASH_SEED``.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.procs import Server, clean_env, run_cli
from tests.factories import order_body

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]

#: Requests queued per run; the kill comes long before they are all sent.
REQUESTS = 600
CONCURRENCY = 16
#: The server is killed after this many answers (a random number in the range)...
KILL_AFTER = (40, 160)
#: ...plus a random delay, so it falls at any point of a request's life.
KILL_JITTER_S = 0.03
#: What must survive unchanged (the stored order as the client was told about it).
KEPT = (
    "id",
    "state",
    "amount_total",
    "currency",
    "items",
    "customer",
    "merchant_reference",
    "status_url",
    "created_at",
)


@dataclass
class Attempt:
    """One order request and what became of it."""

    key: str
    body: dict[str, Any]
    sent: bool = False
    status: int | None = None
    answer: dict[str, Any] | None = None
    error: str | None = None


@dataclass
class Stream:
    """The outcome of one stream of requests cut short by a kill."""

    attempts: list[Attempt]
    kill_after: int
    in_flight_at_kill: int
    exit_status: int | None

    def acknowledged(self) -> list[Attempt]:
        return [a for a in self.attempts if a.status is not None and 200 <= a.status < 300]

    def lost_in_transit(self) -> list[Attempt]:
        return [a for a in self.attempts if a.error is not None]


def _seed() -> int:
    chosen = os.environ.get("ORDERGUARD_CRASH_SEED")
    return int(chosen) if chosen else random.SystemRandom().randrange(2**32)


def _bodies(rng: random.Random) -> list[Attempt]:
    attempts = []
    for n in range(REQUESTS):
        currency = rng.choice(["EUR", "USD", "JPY", "GBP"])
        items = [
            {
                "sku": f"SKU-{rng.randrange(1000)}",
                "name": rng.choice(["T-shirt", "Mug", "Poster", "Sticker pack"]),
                "quantity": rng.randint(1, 5),
                # at least 100 minor units: every total is one the provider can charge
                # (above Stripe's minimum in each of these currencies), so every answer is 201
                "unit_amount": rng.randint(100, 50_000),
            }
            for _ in range(rng.randint(1, 3))
        ]
        body = order_body(currency=currency, items=items)
        body["merchant_reference"] = f"CRASH-{n:04d}-{uuid.uuid4().hex[:8]}"
        attempts.append(Attempt(key=f"crash-{uuid.uuid4()}", body=body))
    return attempts


async def _stream_and_kill(server: Server, attempts: list[Attempt], rng: random.Random) -> Stream:
    """Send ``attempts`` 16 at a time; SIGKILL the server mid-stream."""
    kill_after = rng.randint(*KILL_AFTER)
    queue: asyncio.Queue[Attempt] = asyncio.Queue()
    for attempt in attempts:
        queue.put_nowait(attempt)
    reached, killed = asyncio.Event(), asyncio.Event()
    counters = {"answered": 0, "in_flight": 0}

    async def worker(client: httpx.AsyncClient) -> None:
        while not killed.is_set() and not queue.empty():
            attempt = queue.get_nowait()
            attempt.sent = True
            counters["in_flight"] += 1
            try:
                response = await client.post(
                    "/v1/orders", json=attempt.body, headers={"Idempotency-Key": attempt.key}
                )
            except httpx.TransportError as exc:
                attempt.error = f"{type(exc).__name__}: {exc}"
                continue
            finally:
                counters["in_flight"] -= 1
            attempt.status = response.status_code
            attempt.answer = response.json()
            counters["answered"] += 1
            if counters["answered"] >= kill_after:
                reached.set()

    in_flight_at_kill = -1
    exit_status: int | None = None

    async def killer() -> None:
        nonlocal in_flight_at_kill, exit_status
        await reached.wait()
        await asyncio.sleep(rng.uniform(0, KILL_JITTER_S))
        in_flight_at_kill = counters["in_flight"]
        exit_status = server.kill()
        killed.set()

    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    async with httpx.AsyncClient(base_url=server.url, timeout=15.0, limits=limits) as client:
        kill_task = asyncio.create_task(killer())
        await asyncio.gather(*(worker(client) for _ in range(CONCURRENCY)))
        await asyncio.wait_for(kill_task, timeout=1.0)
    return Stream(attempts, kill_after, in_flight_at_kill, exit_status)


async def _all_orders(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    orders: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": 200}
    while True:
        response = await client.get("/v1/orders", params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        orders += page["data"]
        if not page["next_cursor"]:
            return orders
        params["cursor"] = page["next_cursor"]


async def _bounded(calls: list[Any]) -> list[Any]:
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(call: Any) -> Any:
        async with gate:
            return await call

    return await asyncio.gather(*(one(c) for c in calls))


async def test_acknowledged_orders_survive_sigkill(database_url: str, tmp_path: Path) -> None:
    seed = _seed()
    print(f"crash-safety seed={seed} (rerun with ORDERGUARD_CRASH_SEED={seed})")
    rng = random.Random(seed)
    # the restart binds another port: the public URL keeps status links the same across it
    env = clean_env(database_url, ORDERGUARD_PUBLIC_URL="https://shop.example")
    if database_url.startswith("postgresql"):
        migrated = run_cli("migrate", env=env, cwd=tmp_path)
        assert migrated.returncode == 0, migrated.stderr

    first = Server(env=env, cwd=tmp_path).start()
    try:
        stream = await _stream_and_kill(first, _bodies(rng), rng)
    finally:
        first.kill()
    context = (
        f"seed={seed} kill_after={stream.kill_after} in_flight={stream.in_flight_at_kill}\n"
        f"server log:\n{first.log()[-3000:]}"
    )
    acknowledged, lost = stream.acknowledged(), stream.lost_in_transit()
    print(
        f"killed after {stream.kill_after} answers with {stream.in_flight_at_kill} in flight: "
        f"{len(acknowledged)} acknowledged, {len(lost)} lost in transit, "
        f"{sum(not a.sent for a in stream.attempts)} never sent"
    )
    # The crash really happened mid-stream, with requests in flight.
    assert stream.exit_status == -signal.SIGKILL, context
    assert stream.in_flight_at_kill > 0, context
    assert len(acknowledged) >= stream.kill_after, context
    assert any(not a.sent for a in stream.attempts), "the kill came after the whole stream"
    # Before the crash every answer was a new order (no 409, no 5xx).
    answered = [a for a in stream.attempts if a.status is not None]
    assert {a.status for a in answered} == {201}, [(a.status, a.answer) for a in answered][:5]

    second = Server(env=env, cwd=tmp_path).start()
    try:
        async with httpx.AsyncClient(base_url=second.url, timeout=15.0) as client:
            await _check_acknowledged(client, acknowledged, context)
            retried = await _check_retries(client, lost, context)
            await _check_exactly_these_orders(client, acknowledged, retried, context)
    finally:
        second.stop()


async def _check_acknowledged(
    client: httpx.AsyncClient, acknowledged: list[Attempt], context: str
) -> None:
    """G1: each acknowledged order is stored as acknowledged; G2: its replay is the same."""
    reads = await _bounded([client.get(f"/v1/orders/{a.answer['id']}") for a in acknowledged])  # type: ignore[index]
    for attempt, read in zip(acknowledged, reads, strict=True):
        assert attempt.answer is not None
        assert read.status_code == 200, (
            f"acknowledged order lost: {attempt.answer['id']}\n{context}"
        )
        stored = read.json()
        for name in KEPT:
            assert stored[name] == attempt.answer[name], (name, attempt.answer["id"], context)

    replays = await _bounded(
        [
            client.post("/v1/orders", json=a.body, headers={"Idempotency-Key": a.key})
            for a in acknowledged
        ]
    )
    for attempt, replay in zip(acknowledged, replays, strict=True):
        assert replay.status_code == attempt.status, (replay.status_code, replay.text, context)
        assert replay.headers.get("Idempotent-Replayed") == "true", (replay.headers, context)
        assert replay.json() == attempt.answer, context


async def _check_retries(
    client: httpx.AsyncClient, lost: list[Attempt], context: str
) -> dict[str, str]:
    """A retry of a request that died with the server yields one order; ref -> order id."""
    retries = await _bounded(
        [client.post("/v1/orders", json=a.body, headers={"Idempotency-Key": a.key}) for a in lost]
    )
    placed: dict[str, str] = {}
    committed_before_crash = 0
    for attempt, retry in zip(lost, retries, strict=True):
        assert retry.status_code == 201, (attempt.error, retry.status_code, retry.text, context)
        order = retry.json()
        assert order["merchant_reference"] == attempt.body["merchant_reference"], context
        committed_before_crash += retry.headers.get("Idempotent-Replayed") == "true"
        placed[order["merchant_reference"]] = order["id"]
        again = await client.post(
            "/v1/orders", json=attempt.body, headers={"Idempotency-Key": attempt.key}
        )
        assert again.status_code == 201, context
        assert again.headers.get("Idempotent-Replayed") == "true", context
        assert again.json()["id"] == order["id"], context
    print(f"{committed_before_crash} of {len(lost)} lost answers had been committed")
    return placed


async def _check_exactly_these_orders(
    client: httpx.AsyncClient,
    acknowledged: list[Attempt],
    retried: dict[str, str],
    context: str,
) -> None:
    """Nothing extra was stored: one order per acknowledged or retried request."""
    expected = {a.body["merchant_reference"]: a.answer["id"] for a in acknowledged}  # type: ignore[index]
    assert not set(expected) & set(retried), context
    expected.update(retried)
    stored = await _all_orders(client)
    references = [o["merchant_reference"] for o in stored]
    assert len(references) == len(set(references)), "a merchant reference is on two orders"
    assert {o["merchant_reference"]: o["id"] for o in stored} == expected, context

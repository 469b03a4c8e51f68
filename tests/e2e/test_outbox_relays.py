"""Two ``orderguard outbox relay`` processes against one PostgreSQL, delivering to a real
HTTP receiver: in the normal path no event is delivered twice; when one relay is killed
(SIGKILL) mid-delivery, nothing is lost, and the only repeats are the deliveries the dead
relay never got to record."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import orjson
import pytest

from orderguard.domain.delivery import Outcome
from orderguard.services.outbox import OutboxSupport
from orderguard.storage.unit_of_work import SqlStorage
from tests.conftest import open_storage
from tests.e2e.procs import ORDERGUARD, clean_env
from tests.outbox_kit import Receiver, add_endpoint, live, receiver

pytestmark = [pytest.mark.postgres, pytest.mark.slow]
ORDERS = 30


@contextmanager
def relays(env: dict[str, str], cwd: Path, count: int) -> Iterator[list[subprocess.Popen[bytes]]]:
    """``count`` relay processes, each logging to its own file; stopped afterwards."""
    procs = []
    for n in range(count):
        with (cwd / f"relay-{n}.log").open("wb") as log:
            procs.append(
                subprocess.Popen(
                    [ORDERGUARD, "outbox", "relay", "--every", "0.2"],
                    env=env,
                    cwd=cwd,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
    try:
        yield procs
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()


def logs(cwd: Path) -> str:
    return "\n".join(p.read_text(errors="replace") for p in sorted(cwd.glob("relay-*.log")))


async def wait_running(cwd: Path, count: int) -> None:
    deadline = time.monotonic() + 20
    while logs(cwd).count("outbox relay ") < count:
        assert time.monotonic() < deadline, logs(cwd)
        await asyncio.sleep(0.05)


async def wait_for(hook: Receiver, ids: set[str], cwd: Path, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while not ids <= {orjson.loads(b)["id"] for _, b in hook.accepted}:
        assert time.monotonic() < deadline, f"not every event arrived:\n{logs(cwd)}"
        await asyncio.sleep(0.1)


async def committed(sql: SqlStorage, order_ids: list[str]) -> dict[str, list[str]]:
    async with sql.reader() as uow:
        return {o: [e.id for e in await uow.orders.events(o)] for o in order_ids}


def arrivals(hook: Receiver) -> tuple[Counter[str], dict[str, list[str]]]:
    """How often each event arrived, and each order's events in first-arrival order."""
    counts: Counter[str] = Counter()
    first: dict[str, list[str]] = {}
    for _, body in hook.accepted:
        document = orjson.loads(body)
        if counts[document["id"]] == 0:
            first.setdefault(document["data"]["order_id"], []).append(document["id"])
        counts[document["id"]] += 1
    return counts, first


async def test_two_relays_share_the_work_and_deliver_each_event_once(
    pg_url: str, tmp_path: Path
) -> None:
    sql = await open_storage(pg_url)
    env = clean_env(pg_url, ORDERGUARD_OUTBOX_LEASE_S="30")
    try:
        async with receiver(delay_s=0.05) as hook:
            await add_endpoint(sql, hook.url)
            with relays(env, tmp_path, 2) as procs:
                await wait_running(tmp_path, 2)
                orders = [(await live(sql)).id for _ in range(ORDERS)]
                expected = await committed(sql, orders)
                await wait_for(hook, {e for ids in expected.values() for e in ids}, tmp_path)
                await asyncio.sleep(1.0)  # a late repeat would show up now
            counts, first = arrivals(hook)
            attempts = [
                a
                for ids in expected.values()
                for e in ids
                for a in (await OutboxSupport(sql).event(e)).attempts
            ]
    finally:
        await sql.close()
    assert max(counts.values()) == 1, [e for e, n in counts.items() if n > 1]
    assert first == expected  # in commit order per order
    by_relay = Counter(a.relay for a in attempts if a.outcome is Outcome.DELIVERED)
    pids = [str(p.pid) for p in procs]
    assert {next(p for p in pids if f"-{p}-" in r) for r in by_relay} == set(pids), by_relay


async def test_a_killed_relay_loses_nothing_and_repeats_only_what_it_never_recorded(
    pg_url: str, tmp_path: Path
) -> None:
    sql = await open_storage(pg_url)
    env = clean_env(pg_url, ORDERGUARD_OUTBOX_LEASE_S="3")
    try:
        async with receiver(delay_s=0.2) as hook:
            await add_endpoint(sql, hook.url)
            orders = [(await live(sql)).id for _ in range(ORDERS)]
            expected = await committed(sql, orders)
            with relays(env, tmp_path, 2) as procs:
                await wait_running(tmp_path, 2)
                while len(hook.accepted) < 20:
                    await asyncio.sleep(0.02)
                os.kill(procs[0].pid, signal.SIGKILL)
                assert procs[0].wait(timeout=10) == -signal.SIGKILL
                await wait_for(hook, {e for ids in expected.values() for e in ids}, tmp_path)
            counts, first = arrivals(hook)
            support = OutboxSupport(sql)
            repeated = {e: (await support.event(e)).attempts for e, n in counts.items() if n > 1}
            states = {d.state for o in orders for d in await support.deliveries_of_order(o)}
    finally:
        await sql.close()
    assert set(counts) == {e for ids in expected.values() for e in ids}  # nothing lost
    assert first == expected  # still in commit order per order
    assert states == {"delivered"}
    killed = f"-{procs[0].pid}-"
    for event_id, attempts in repeated.items():  # the dead relay sent it, never recorded it
        recorded = [a for a in attempts if a.outcome is Outcome.DELIVERED]
        assert len(recorded) == 1 and killed not in recorded[0].relay, (event_id, attempts)

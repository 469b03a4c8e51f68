"""What an order costs PostgreSQL in round trips and statements, counted on the wire.

Every pooled connection of a real PostgreSQL storage is traced with libpq's protocol trace:
a round trip is a ``ReadyForQuery`` the server sent (the client waited for it), a statement
is a ``Query`` or ``Execute`` the client sent. The figures are the design (issue 20: the
transaction's ``BEGIN`` goes with its first statement, reads of an order go together, what
nobody reads back goes with the ``COMMIT``); a change that adds a round trip fails here.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import pq

from orderguard.domain import ids
from orderguard.domain.errors import DuplicateMerchantReference
from orderguard.domain.events import Cause
from orderguard.domain.order import Order, PaymentAttempt
from orderguard.domain.settle import Outcome
from orderguard.domain.states import AttemptState, OrderState
from orderguard.providers.base import PaymentOutcome, PaymentResult
from orderguard.providers.memory.provider import InMemoryProvider
from orderguard.services.idempotency import KeyedRequest
from orderguard.services.inbound_webhooks import WebhookInbox
from orderguard.services.intake import Intake, PlaceOrder
from orderguard.services.payments import Payments, PaymentSettings
from orderguard.services.recheck import Recheck
from orderguard.services.settling import Answered, Reply, Settled, settle
from orderguard.services.webhook_events import WebhookEvents
from orderguard.storage.ports import OrderQuery
from orderguard.storage.unit_of_work import SqlStorage
from tests.conftest import open_storage
from tests.factories import customer, new_order
from tests.integration.conftest import memory_providers

pytestmark = pytest.mark.postgres

AT = datetime(2026, 12, 4, 12, tzinfo=UTC)
_connect = psycopg.AsyncConnection.connect.__func__  # type: ignore[attr-defined]


class Wire:
    """The libpq trace of every connection opened while it is installed."""

    def __init__(self) -> None:
        self.files: list[Any] = []  # kept open: libpq writes to them, one per connection
        self.conns: list[psycopg.AsyncConnection[Any]] = []
        #: Statements psycopg prepared (after a few uses) on each connection, by name.
        self.prepared: list[dict[str, str]] = []

    async def connect(self, cls: Any, *args: Any, **kwargs: Any) -> Any:
        conn = await _connect(cls, *args, **kwargs)
        self.conns.append(conn)
        self.prepared.append({})
        self.files.append(self._trace(conn))
        return conn

    def _trace(self, conn: psycopg.AsyncConnection[Any]) -> Any:
        out = tempfile.NamedTemporaryFile("w", prefix="og-wire-", suffix=".txt", delete=False)
        conn.pgconn.trace(out.fileno())
        conn.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS)
        return out

    def take(self) -> tuple[int, list[str]]:
        """Round trips and statements (first words) since the last call."""
        trips, sent = 0, []
        for i, conn in enumerate(self.conns):
            out = self.files[i]
            if not conn.closed:
                conn.pgconn.untrace()
            out.close()
            lines = Path(out.name).read_text(errors="replace").splitlines()
            os.unlink(out.name)
            trips += round_trips(lines)
            sent += statements(lines, self.prepared[i])
            self.files[i] = self._trace(conn) if not conn.closed else out
        return trips, sent


def round_trips(lines: list[str]) -> int:
    return sum(1 for ln in lines if ln.startswith("B\t") and "\tReadyForQuery" in ln)


def statements(lines: list[str], prepared: dict[str, str]) -> list[str]:
    """The first words of each statement sent on one connection (``INSERT INTO orders``,
    ``BEGIN``, ...); ``prepared`` learns the statements prepared there."""
    sent: list[str] = []
    for message in _messages(lines):
        if m := _PARSE.match(message):
            if m.group(1):  # a named statement: its Bind follows
                prepared[m.group(1)] = m.group(2)
                continue
            sent.append(_words(m.group(2)))
        elif m := _QUERY.match(message):
            sent.append(_words(m.group(1)))
        elif m := _BIND.match(message):
            if m.group(1) in prepared:
                sent.append(_words(prepared[m.group(1)]))
    return sent


_PARSE = re.compile(r'F\t\d+\tParse\t "([^"]*)" "(.*)" \d+(?: \d+)*$', re.S)
_QUERY = re.compile(r'F\t\d+\tQuery\t "(.*)"$', re.S)
_BIND = re.compile(r'F\t\d+\tBind\t "[^"]*" "([^"]+)" ')


def _messages(lines: list[str]) -> list[str]:
    """Trace lines, with statements that span several lines joined back together."""
    joined: list[str] = []
    for ln in lines:
        if ln.startswith(("F\t", "B\t")) or not joined:
            joined.append(ln)
        else:
            joined[-1] += " " + ln
    return joined


def _words(sql: str) -> str:
    words = sql.split()
    if words[:1] == ["WITH"]:  # what a data-modifying WITH writes, table by table, in order
        writes = re.findall(r"(INSERT INTO|(?<!DO )UPDATE) (\w+)", sql)  # not an upsert's
        return "WITH " + ", ".join(f"{verb} {table}" for verb, table in writes)
    if words[:2] == ["INSERT", "INTO"] or words[:1] == ["UPDATE"]:
        return " ".join(words[:3] if words[0] == "INSERT" else words[:2])
    if words[:3] == ["SELECT", "*", "FROM"]:
        return " ".join(words[:4])
    return " ".join(words[:1])


@pytest.fixture
def wire(monkeypatch: pytest.MonkeyPatch) -> Iterator[Wire]:
    traced = Wire()

    async def connect(cls: Any, *args: Any, **kwargs: Any) -> Any:
        return await traced.connect(cls, *args, **kwargs)

    monkeypatch.setattr(psycopg.AsyncConnection, "connect", classmethod(connect))
    yield traced
    for conn in traced.conns:
        if not conn.closed:
            conn.pgconn.untrace()
    for out in traced.files:
        out.close()
        Path(out.name).unlink(missing_ok=True)


@pytest.fixture
async def pg(pg_url: str, wire: Wire) -> AsyncIterator[SqlStorage]:
    # one connection: a pool that grows while a request is counted (on a busy machine a
    # returned connection may not be back in time) would add the new connection's own
    # set-up statements to the count
    storage = await open_storage(pg_url, pool_size=1)
    try:
        yield storage
    finally:
        await storage.close()


def _render(order: Order) -> bytes:
    return f'{{"id": "{order.id}", "state": "{order.state}"}}'.encode()


def _place(reference: str, key: str) -> PlaceOrder:
    order = new_order()
    return PlaceOrder(
        request=KeyedRequest("test", key, f"fp-{key}"),
        currency="EUR",
        lines=list(order.lines),
        customer=customer(),
        merchant_reference=reference,
    )


async def test_an_order_without_payment_is_stored_in_one_statement(
    pg: SqlStorage, wire: Wire
) -> None:
    intake = Intake(pg, _render, clock=lambda: AT)
    await intake.place(_place("RT-0", "warm-up"))  # the pool's first connection is checked
    wire.take()
    answer = await intake.place(_place("RT-1", "key-1"))
    trips, sent = wire.take()
    # the claim of the key and every row of the order, committed by the server as it runs
    # (no BEGIN, no COMMIT)
    assert trips == 1
    assert sent == [
        "WITH INSERT INTO idempotency_keys, INSERT INTO orders, INSERT INTO order_lines, "
        "INSERT INTO payment_attempts, INSERT INTO timeline, INSERT INTO outbox",
    ]
    async with pg() as uow:  # and it is all there
        stored = await uow.orders.get(answer.order_id)
        assert stored is not None and stored.merchant_reference == "RT-1"
        assert [line.sku for line in stored.lines] == ["TEE-M", "MUG"]
        assert stored.customer == customer() and stored.created_at == AT
        assert len(await uow.orders.timeline(answer.order_id)) == 1
        assert [e.type for e in await uow.orders.events(answer.order_id)] == ["order.received"]
        record = await uow.idempotency.claim(
            KeyedRequest("test", "key-1", "").record(AT, "other", body=None)
        )
    assert record is not None and record.order_id == answer.order_id
    assert record.response_status == 201 and record.response_body == answer.body


async def test_a_replayed_order_stores_nothing_and_reads_the_first_answer(
    pg: SqlStorage, wire: Wire
) -> None:
    intake = Intake(pg, _render, clock=lambda: AT)
    first = await intake.place(_place("RT-2", "key-2"))
    wire.take()
    again = await intake.place(_place("RT-2", "key-2"))
    trips, sent = wire.take()
    assert trips == 2  # the statement claiming nothing, then the record it met
    assert sent == [
        "WITH INSERT INTO idempotency_keys, INSERT INTO orders, INSERT INTO order_lines, "
        "INSERT INTO payment_attempts, INSERT INTO timeline, INSERT INTO outbox",
        "SELECT * FROM idempotency_keys",
    ]
    assert again.replayed is True and again.order_id == first.order_id
    assert again.body == first.body
    async with pg() as uow:
        assert len(await uow.orders.timeline(first.order_id)) == 1
        assert len(await uow.orders.search(OrderQuery(limit=10))) == 1


async def test_a_taken_reference_found_at_commit_stores_nothing_and_frees_the_key(
    pg: SqlStorage, wire: Wire
) -> None:
    """The inserts wait for the COMMIT: the reference's unique violation comes from it, is
    still a DuplicateMerchantReference naming the holder, and the key is not used up."""
    intake = Intake(pg, _render, clock=lambda: AT)
    first = await intake.place(_place("RT-TAKEN", "key-a"))
    with pytest.raises(DuplicateMerchantReference) as caught:
        await intake.place(_place("RT-TAKEN", "key-b"))
    assert caught.value.existing_order_id == first.order_id
    again = await intake.place(_place("RT-FREE", "key-b"))  # same key, other reference
    assert again.replayed is False and again.order_id != first.order_id


def _paying(pg: SqlStorage) -> tuple[Intake, InMemoryProvider, Any]:
    """Intake charging the in-memory provider, its breaker, and the provider."""
    providers = memory_providers()
    provider = providers.primary.provider
    assert isinstance(provider, InMemoryProvider)
    payments = Payments(providers, PaymentSettings(return_url="https://shop.test/{order_id}"))
    return Intake(pg, _render, payments, clock=lambda: AT), provider, providers.primary.breaker


def _paid(reference: str, key: str) -> PlaceOrder:
    return replace(_place(reference, key), payment_method="pm_card_visa")


#: A paid order's two statements: the key, the order and its attempt, then its settling.
_PLACED_WITH_ATTEMPT = (
    "WITH INSERT INTO idempotency_keys, INSERT INTO orders, INSERT INTO order_lines, "
    "INSERT INTO payment_attempts, INSERT INTO timeline, INSERT INTO outbox"
)
_SETTLED_ANSWERING = (
    "WITH UPDATE orders, INSERT INTO payment_attempts, INSERT INTO timeline, "
    "INSERT INTO outbox, UPDATE idempotency_keys"
)


async def test_a_paid_order_is_two_statements_around_the_charge(pg: SqlStorage, wire: Wire) -> None:
    """The key, the order and its attempt in one statement; the charge; the order settled
    with the request's answer in another: two round trips in all, no transaction kept open
    across the provider's call."""
    intake, provider, _ = _paying(pg)
    await intake.place(_paid("RT-P0", "warm-up-paid"))
    wire.take()
    answer = await intake.place(_paid("RT-P1", "key-paid-1"))
    trips, sent = wire.take()
    assert trips == 2
    assert sent == [_PLACED_WITH_ATTEMPT, _SETTLED_ANSWERING]
    async with pg() as uow:
        stored = await uow.orders.get(answer.order_id)
        entries = await uow.orders.timeline(answer.order_id)
        record = await uow.idempotency.claim(
            KeyedRequest("test", "key-paid-1", "").record(AT, "other", body=None)
        )
    assert stored is not None and stored.state is OrderState.PAID
    assert [a.state for a in stored.attempts] == [AttemptState.SUCCEEDED]
    assert stored.attempts[0].provider_ref in provider.payments
    assert [e.to_state for e in entries] == [
        OrderState.RECEIVED, OrderState.PAYMENT_PENDING, OrderState.PAID
    ]  # fmt: skip
    assert record is not None and record.response_body == answer.body == _render(stored)
    assert record.locked_until is None


async def test_a_replayed_paid_order_charges_nothing_and_stores_nothing(
    pg: SqlStorage, wire: Wire
) -> None:
    """The attempt prepared before the claim is dropped unsent when the key was used."""
    intake, provider, _ = _paying(pg)
    first = await intake.place(_paid("RT-P2", "key-paid-2"))
    wire.take()
    again = await intake.place(_paid("RT-P2", "key-paid-2"))
    trips, sent = wire.take()
    assert trips == 2
    assert sent == [_PLACED_WITH_ATTEMPT, "SELECT * FROM idempotency_keys"]
    assert again.replayed is True and again.body == first.body
    assert len(provider.payments) == 1, "charged once"
    async with pg() as uow:
        stored = await uow.orders.get(first.order_id)
        assert len(await uow.orders.search(OrderQuery(limit=10))) == 1
    assert stored is not None and len(stored.attempts) == 1


async def test_with_the_breaker_not_closed_the_attempt_waits_for_the_claim(
    pg: SqlStorage, wire: Wire
) -> None:
    """A half-open breaker lets one probe through to whoever asks: intake asks only once
    the key is claimed (a replay must not take the probe), so the key goes first, alone."""
    intake, provider, breaker = _paying(pg)
    breaker.cool_down_s = 0.0
    for _ in range(breaker.failure_threshold):
        breaker.record_failure()
    assert not breaker.closed
    wire.take()
    answer = await intake.place(_paid("RT-P3", "key-paid-3"))
    _, sent = wire.take()
    assert sent[:3] == ["BEGIN", "INSERT INTO idempotency_keys", "INSERT INTO orders"]
    assert answer.replayed is False and breaker.closed, "the probe went out and succeeded"
    assert len(provider.payments) == 1
    async with pg() as uow:
        stored = await uow.orders.get(answer.order_id)
    assert stored is not None and stored.state is OrderState.PAID


async def _order_in_flight(
    pg: SqlStorage, request: KeyedRequest, provider: str = "stripe"
) -> tuple[Order, str]:
    """An order with one payment attempt sent, its idempotent request in flight."""
    order = new_order(at=AT)
    attempt_id = ids.new_id("pay")
    attempt = PaymentAttempt(
        id=attempt_id,
        order_id=order.id,
        seq=1,
        provider=provider,
        method="pm_card_visa",
        amount=order.total.amount,
        currency=order.currency,
        idempotency_key=f"orderguard-{attempt_id}",
        created_at=AT,
        updated_at=AT,
    )
    order.start_attempt(attempt, cause=Cause.API, at=AT, note=f"attempt 1 sent to {provider}")
    async with pg() as uow:
        assert await uow.idempotency.claim(request.record(AT, order.id, body=None)) is None
        await uow.orders.add(order)
        await uow.commit()
    return order, attempt_id


async def _settle_paid(
    pg: SqlStorage, wire: Wire, key: str, *, known: bool = False
) -> tuple[KeyedRequest, Order, Settled]:
    """An order in flight settled paid by the charge's answer, the wire counted from just
    before the settling; ``known``: intake hands it the order it committed."""
    request = KeyedRequest("test", key, "fp")
    order, attempt_id = await _order_in_flight(pg, request)
    outcome = Outcome(
        AttemptState.SUCCEEDED, provider_ref="pi_1", amount=order.total.amount, currency="EUR"
    )
    wire.take()
    settled = await settle(
        pg,
        order.id,
        [Answered(attempt_id, outcome)],
        cause=Cause.API,
        clock=lambda: AT,
        reply=Reply(request, _render),
        known=order if known else None,
    )
    return request, order, settled


async def test_settling_a_paid_order_takes_two_round_trips(pg: SqlStorage, wire: Wire) -> None:
    request, order, settled = await _settle_paid(pg, wire, "key-paid")
    trips, sent = wire.take()
    # BEGIN + the order locked with everything it holds; the order's row, its attempt, its
    # timeline and outbox, the request's answer + COMMIT (the lock makes the version check
    # certain, so nothing waits for an answer before the commit)
    assert trips == 2
    assert sent == [
        "BEGIN",
        "SELECT * FROM orders",  # FOR UPDATE: first, so the rest cannot change meanwhile
        "SELECT * FROM order_lines",
        "SELECT * FROM payment_attempts",
        "SELECT * FROM order_flags",
        "SELECT * FROM refunds",
        "UPDATE orders",
        "INSERT INTO payment_attempts",  # an upsert
        "INSERT INTO timeline",
        "INSERT INTO outbox",
        "UPDATE idempotency_keys",
        "COMMIT",
    ]
    assert settled.order.state is OrderState.PAID
    async with pg() as uow:
        stored = await uow.orders.get(order.id)
        assert stored is not None and stored.state is OrderState.PAID
        assert stored.attempts[0].state is AttemptState.SUCCEEDED
        assert stored.attempts[0].provider_ref == "pi_1"
        record = await uow.idempotency.claim(request.record(AT, "other", body=None))
    assert record is not None and record.response_body == _render(settled.order)
    assert record.locked_until is None and record.response_status == 201


async def test_settling_the_order_the_request_committed_is_one_statement(
    pg: SqlStorage, wire: Wire
) -> None:
    """Intake hands the order it committed with the attempt to the settling: still at its
    version, it is saved with the request's answer in one statement, committed by the
    server as it runs (no BEGIN, no lock taken apart, nothing read back)."""
    request, order, settled = await _settle_paid(pg, wire, "key-known", known=True)
    trips, sent = wire.take()
    assert trips == 1
    assert sent == [
        "WITH UPDATE orders, INSERT INTO payment_attempts, INSERT INTO timeline, "
        "INSERT INTO outbox, UPDATE idempotency_keys",
    ]
    assert settled.order is order and order.state is OrderState.PAID
    async with pg() as uow:
        stored = await uow.orders.get(order.id)
        entries = await uow.orders.timeline(order.id)
        events = await uow.orders.events(order.id)
        record = await uow.idempotency.claim(request.record(AT, "other", body=None))
    assert stored is not None and stored.state is OrderState.PAID
    assert stored.version == order.version
    assert stored.attempts[0].state is AttemptState.SUCCEEDED
    assert stored.attempts[0].provider_ref == "pi_1"
    assert [e.to_state for e in entries][-1] is OrderState.PAID
    assert [str(e.type) for e in events][-1] == "order.paid"
    assert record is not None and record.response_body == _render(settled.order)
    assert record.locked_until is None and record.response_status == 201


async def test_an_order_changed_since_the_request_committed_it_is_read_back(
    pg: SqlStorage, wire: Wire
) -> None:
    """A webhook settled the order first: the request's copy is stale, so the order is
    read, locked, and the answer applied to it as it is now (here: already paid)."""
    request = KeyedRequest("test", "key-raced", "fp")
    order, attempt_id = await _order_in_flight(pg, request)
    outcome = Outcome(
        AttemptState.SUCCEEDED, provider_ref="pi_1", amount=order.total.amount, currency="EUR"
    )
    by_webhook = await settle(
        pg, order.id, [Answered(attempt_id, outcome)], cause=Cause.WEBHOOK, clock=lambda: AT
    )
    assert by_webhook.order.state is OrderState.PAID
    wire.take()
    settled = await settle(
        pg,
        order.id,
        [Answered(attempt_id, outcome)],
        cause=Cause.API,
        clock=lambda: AT,
        reply=Reply(request, _render),
        known=order,
    )
    trips, sent = wire.take()
    # the statement saving the request's copy finds it stale and writes nothing; then the
    # order is read, locked, and settled as it is now
    assert trips == 3
    assert sent[:3] == [
        "WITH UPDATE orders, INSERT INTO payment_attempts, INSERT INTO timeline, "
        "INSERT INTO outbox, UPDATE idempotency_keys",
        "BEGIN",
        "SELECT * FROM orders",
    ]
    assert settled.order is not order and settled.order.version == by_webhook.order.version + 1
    async with pg() as uow:
        entries = await uow.orders.timeline(order.id)
    assert [e.cause for e in entries if e.to_state is OrderState.PAID] == [Cause.WEBHOOK]


async def test_a_stale_order_is_refused_though_its_update_goes_in_a_batch(
    pg: SqlStorage,
) -> None:
    """save() learns the version check's answer only when the batch ends: it still raises
    ConcurrentUpdate and nothing of the stale save remains."""
    from orderguard.storage.orders import ConcurrentUpdate

    order = new_order(at=AT)
    async with pg() as uow:
        await uow.orders.add(order)
        await uow.commit()
    async with pg() as uow:
        stale = await uow.orders.get(order.id)
    async with pg() as uow:
        fresh = await uow.orders.get(order.id, for_update=True)
        assert fresh is not None
        fresh.move_to(OrderState.CANCELLED, cause=Cause.SUPPORT, at=AT)
        await uow.orders.save(fresh)
        await uow.commit()
    assert stale is not None
    stale.move_to(OrderState.PAYMENT_PENDING, cause=Cause.API, at=AT, note="stale")
    with pytest.raises(ConcurrentUpdate):
        async with pg() as uow:
            await uow.orders.save(stale)
            await uow.commit()
    async with pg() as uow:
        current = await uow.orders.get(order.id)
        entries = await uow.orders.timeline(order.id)
    assert current is not None and current.state is OrderState.CANCELLED
    assert [e.note for e in entries if e.note == "stale"] == []


async def test_a_locked_orders_writes_failing_at_the_commit_leave_nothing(
    pg: SqlStorage,
) -> None:
    """A locked order's save waits for the COMMIT; when one of its statements fails there
    (here a timeline entry reusing a stored entry's id), the commit raises and the whole
    transaction is rolled back: the order's row did not move either."""
    from dataclasses import replace

    from orderguard.storage.errors import UniqueViolation

    order = new_order(at=AT)
    first_entry = order.new_entries[0]
    async with pg() as uow:
        await uow.orders.add(order)
        await uow.commit()
    with pytest.raises(UniqueViolation):
        async with pg() as uow:
            locked = await uow.orders.get(order.id, for_update=True)
            assert locked is not None
            locked.move_to(OrderState.CANCELLED, cause=Cause.SUPPORT, at=AT)
            locked.new_entries[:] = [replace(e, id=first_entry.id) for e in locked.new_entries]
            await uow.orders.save(locked)  # nothing sent yet
            await uow.commit()
    async with pg() as uow:
        current = await uow.orders.get(order.id)
        entries = await uow.orders.timeline(order.id)
    assert current is not None and current.state is OrderState.RECEIVED
    assert current.version == order.version
    assert [e.id for e in entries] == [first_entry.id]


async def _paid_order_and_inbox(
    pg: SqlStorage,
) -> tuple[Order, str, WebhookInbox, InMemoryProvider]:
    """A paid order (its attempt at the in-memory provider, ``pi_1``) and the inbox as
    ``serve`` wires it, for that provider."""
    providers = memory_providers()
    provider = providers.primary.provider
    assert isinstance(provider, InMemoryProvider)
    payments = Payments(providers, PaymentSettings(return_url="https://shop.test/{order_id}"))
    events = WebhookEvents(pg, payments, Recheck(pg, payments), clock=lambda: AT)
    inbox = WebhookInbox(
        pg, providers, events.apply, applied_already=events.applied_already, clock=lambda: AT
    )
    order, attempt_id = await _order_in_flight(
        pg, KeyedRequest("test", f"key-{ids.new_id('k')}", "fp"), provider="memory"
    )
    outcome = Outcome(
        AttemptState.SUCCEEDED, provider_ref="pi_1", amount=order.total.amount, currency="EUR"
    )
    settled = await settle(
        pg, order.id, [Answered(attempt_id, outcome)], cause=Cause.API, clock=lambda: AT
    )
    assert settled.order.state is OrderState.PAID
    return settled.order, attempt_id, inbox, provider


def _about(order: Order, attempt_id: str, outcome: PaymentOutcome) -> PaymentResult:
    return PaymentResult(
        outcome=outcome,
        provider_ref="pi_1",
        amount=order.total.amount,
        currency="EUR",
        order_id=order.id,
        attempt_id=attempt_id,
    )


async def test_a_webhook_that_changes_nothing_is_one_transaction_of_three_round_trips(
    pg: SqlStorage, wire: Wire
) -> None:
    order, attempt_id, inbox, provider = await _paid_order_and_inbox(pg)
    about = _about(order, attempt_id, PaymentOutcome.SUCCEEDED)
    body, headers = provider.signed_webhook("payment_intent.succeeded", payment=about)
    wire.take()
    received = await inbox.receive("memory", body, headers)
    trips, sent = wire.take()
    # BEGIN + the order's attempts; the insert that de-duplicates it, stored processed;
    # COMMIT. Nothing is left to apply.
    assert received.record_id is not None and received.pending is None
    assert trips == 3
    assert sent == [
        "BEGIN",
        "SELECT * FROM payment_attempts",
        "INSERT INTO webhook_events",
        "COMMIT",
    ]
    body, headers = provider.signed_webhook("charge.succeeded")  # acted on by nobody
    received = await inbox.receive("memory", body, headers)
    trips, sent = wire.take()
    assert received.record_id is not None and received.pending is None
    assert trips == 2
    assert sent == ["BEGIN", "INSERT INTO webhook_events", "COMMIT"]


async def test_a_webhook_applied_is_recorded_processed_with_its_settling(
    pg: SqlStorage, wire: Wire
) -> None:
    """A stale "pending" of a paid order writes a note (G6): settled, and the event
    recorded processed in the settling's commit, not in a transaction of its own."""
    order, attempt_id, inbox, provider = await _paid_order_and_inbox(pg)
    about = _about(order, attempt_id, PaymentOutcome.PENDING)
    body, headers = provider.signed_webhook("payment_intent.created", payment=about)
    received = await inbox.receive("memory", body, headers)
    assert received.pending is not None
    wire.take()
    await inbox.process(received.pending.id, received.pending)
    trips, sent = wire.take()
    assert trips == 2  # the handed record is not read back
    assert sent == [
        "BEGIN",
        "SELECT * FROM orders",
        "SELECT * FROM order_lines",
        "SELECT * FROM payment_attempts",
        "SELECT * FROM order_flags",
        "SELECT * FROM refunds",
        "UPDATE webhook_events",  # processed (held for the commit, like the rest)
        "UPDATE orders",
        "INSERT INTO payment_attempts",
        "INSERT INTO timeline",  # the note
        "COMMIT",
    ]
    async with pg() as uow:
        [record] = await uow.webhooks.recent(limit=5)
        entries = await uow.orders.timeline(order.id)
    assert record.processed_at == AT and record.attempts == 1
    assert entries[-1].note == "ignored pending for attempt 1: attempt is succeeded"

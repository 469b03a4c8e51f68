"""In memory, with the same behaviour as SQL: the outbox relay's bookkeeping, merchant
endpoints and reconciliation (part of :mod:`orderguard.storage.memory`'s state).

An outbox event's place in commit order (its ``seq`` in SQL) is its position in the
outbox list, counted from 1.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

from orderguard.domain.delivery import (
    Delivery,
    DeliveryAttempt,
    DeliveryState,
    WebhookEndpoint,
    WebhookSecret,
)
from orderguard.domain.events import EventType, OutboxEvent
from orderguard.domain.order import Order, PaymentAttempt
from orderguard.domain.states import AttemptState
from orderguard.storage.errors import UniqueViolation
from orderguard.storage.ports import (
    OUTBOX_SETTLE,
    EventsPruned,
    ExceptionRecord,
    ExportedAttempt,
    ExportedOrder,
    LineRefs,
    OutboxPruned,
    RunRecord,
    Undelivered,
)

#: Longest error text kept, as the SQL back ends keep it.
_ERROR_CHARS = 2000


@dataclass
class _Row:
    """One row of ``outbox_deliveries``."""

    id: int
    event: OutboxEvent
    seq: int
    sink: str
    state: DeliveryState
    attempts: int
    next_attempt_at: datetime
    last_error: str | None = None
    delivered_at: datetime | None = None
    dead_at: datetime | None = None
    lease_owner: str | None = None
    lease_until: datetime | None = None

    def delivery(self) -> Delivery:
        return Delivery(
            id=self.id,
            event=self.event,
            sink=self.sink,
            state=self.state,
            attempts=self.attempts,
            next_attempt_at=self.next_attempt_at,
            last_error=self.last_error,
            delivered_at=self.delivered_at,
            dead_at=self.dead_at,
        )

    def unlease(self) -> None:
        self.lease_owner = self.lease_until = None


@dataclass
class OutboxTables:
    """The relay's bookkeeping and the merchant endpoints."""

    #: Each sink served: (since, floor seq).
    sinks: dict[str, tuple[datetime, int]] = field(default_factory=dict)
    deliveries: dict[int, _Row] = field(default_factory=dict)
    last_delivery_id: int = 0
    attempts: list[DeliveryAttempt] = field(default_factory=list)
    endpoints: dict[str, WebhookEndpoint] = field(default_factory=dict)
    secrets: dict[str, WebhookSecret] = field(default_factory=dict)
    #: Events deleted by retention (kept in the list so the others keep their seq).
    pruned_events: set[str] = field(default_factory=set)


@dataclass
class ReconciliationTables:
    """Applied reconciliation runs and their exceptions."""

    runs: dict[str, RunRecord] = field(default_factory=dict)
    exceptions: dict[str, ExceptionRecord] = field(default_factory=dict)


def _wanted(event: OutboxEvent, types: frozenset[EventType] | None) -> bool:
    return types is None or event.type in types


class MemoryOutboxRepository:
    """Deliveries of outbox events to sinks, in memory."""

    def __init__(self, events: list[OutboxEvent], tables: OutboxTables) -> None:
        self._events, self._t = events, tables

    def _numbered(self) -> list[tuple[int, OutboxEvent]]:
        gone = self._t.pruned_events
        return [(seq, e) for seq, e in enumerate(self._events, start=1) if e.id not in gone]

    def _has(self, event_id: str, sink: str) -> _Row | None:
        return next(
            (r for r in self._t.deliveries.values() if r.event.id == event_id and r.sink == sink),
            None,
        )

    def _add(self, seq: int, event: OutboxEvent, sink: str, *, due: datetime) -> None:
        self._t.last_delivery_id += 1
        row = _Row(self._t.last_delivery_id, event, seq, sink, DeliveryState.PENDING, 0, due)
        self._t.deliveries[row.id] = row

    async def enqueue(
        self,
        sink: str,
        *,
        types: frozenset[EventType] | None,
        since: datetime,
        now: datetime,
        batch: int,
    ) -> int:
        start, floor = self._t.sinks.setdefault(sink, (since, 0))
        taken = {r.event.id for r in self._t.deliveries.values() if r.sink == sink}
        new = [
            (seq, e)
            for seq, e in self._numbered()
            if seq > floor and e.at >= start and _wanted(e, types) and e.id not in taken
        ][:batch]
        for seq, event in new:
            self._add(seq, event, sink, due=event.at)
        if len(new) < batch:
            settled = now - OUTBOX_SETTLE
            tops = [seq for seq, e in self._numbered() if seq > floor and e.at < settled]
            if tops:
                self._t.sinks[sink] = (start, max(tops))
        return len(new)

    async def claim(
        self, sink: str, *, owner: str, now: datetime, until: datetime, limit: int
    ) -> list[Delivery]:
        pending = [
            r
            for r in self._t.deliveries.values()
            if r.sink == sink and r.state is DeliveryState.PENDING
        ]
        first: dict[str, int] = {}
        for row in pending:
            order_id = row.event.order_id
            first[order_id] = min(first.get(order_id, row.seq), row.seq)
        due = sorted(
            (
                r
                for r in pending
                if r.next_attempt_at <= now
                and (r.lease_until is None or r.lease_until < now)
                and first[r.event.order_id] == r.seq
            ),
            key=lambda r: r.seq,
        )[:limit]
        for row in due:
            row.lease_owner, row.lease_until = owner, until
        return [r.delivery() for r in due]

    async def delivered(self, delivery: Delivery, *, attempt: DeliveryAttempt) -> None:
        row = self._t.deliveries[delivery.id]
        row.state, row.attempts = DeliveryState.DELIVERED, row.attempts + 1
        row.delivered_at, row.last_error = attempt.at, None
        row.unlease()
        self._record(attempt)

    async def failed(
        self, delivery: Delivery, *, attempt: DeliveryAttempt, retry_at: datetime | None
    ) -> None:
        row = self._t.deliveries[delivery.id]
        row.state = DeliveryState.PENDING if retry_at is not None else DeliveryState.DEAD
        row.attempts += 1
        row.last_error = (attempt.error or "")[:_ERROR_CHARS]
        row.next_attempt_at = retry_at or row.next_attempt_at
        row.dead_at = attempt.at if retry_at is None else None
        row.unlease()
        self._record(attempt)

    def _record(self, attempt: DeliveryAttempt) -> None:
        error = attempt.error[:_ERROR_CHARS] if attempt.error else None
        self._t.attempts.append(replace(attempt, error=error))

    async def release(self, deliveries: Sequence[Delivery], *, owner: str) -> None:
        for delivery in deliveries:
            row = self._t.deliveries.get(delivery.id)
            if row is not None and row.lease_owner == owner:
                row.unlease()

    async def deliveries(
        self,
        *,
        state: DeliveryState | None = None,
        sink: str | None = None,
        order_id: str | None = None,
        event_id: str | None = None,
        limit: int = 100,
    ) -> list[Delivery]:
        found = [
            r
            for r in self._t.deliveries.values()
            if (state is None or r.state == state)
            and (sink is None or r.sink == sink)
            and (order_id is None or r.event.order_id == order_id)
            and (event_id is None or r.event.id == event_id)
        ]
        found.sort(key=lambda r: r.sink)
        found.sort(key=lambda r: r.seq, reverse=True)
        return [r.delivery() for r in found[:limit]]

    async def delivery(self, delivery_id: int) -> Delivery | None:
        row = self._t.deliveries.get(delivery_id)
        return row.delivery() if row else None

    async def attempts(self, event_id: str) -> list[DeliveryAttempt]:
        return [a for a in self._t.attempts if a.event_id == event_id]

    async def event(self, event_id: str) -> OutboxEvent | None:
        return next((e for _, e in self._numbered() if e.id == event_id), None)

    async def replay(
        self, *, now: datetime, event_id: str | None = None, sink: str | None = None
    ) -> int:
        if event_id is not None and sink is not None and not self._has(event_id, sink):
            for seq, event in self._numbered():
                if event.id == event_id:
                    self._add(seq, event, sink, due=now)
        either = event_id is None or sink is None
        chosen = [
            r
            for r in self._t.deliveries.values()
            if (event_id is None or r.event.id == event_id)
            and (sink is None or r.sink == sink)
            and (not either or r.state is DeliveryState.DEAD)
        ]
        for row in chosen:
            row.state, row.attempts, row.next_attempt_at = DeliveryState.PENDING, 0, now
            row.dead_at = row.delivered_at = None
            row.unlease()
        return len(chosen)

    async def undelivered(
        self, sink: str, *, types: frozenset[EventType] | None, since: datetime
    ) -> Undelivered:
        start, floor = self._t.sinks.get(sink, (since, 0))

        def above(seq: int, event: OutboxEvent) -> bool:
            return seq > floor and event.at >= start and _wanted(event, types)

        settled = {
            r.event.id
            for r in self._t.deliveries.values()
            if r.sink == sink and r.state is not DeliveryState.PENDING
        }
        waiting = [e.at for seq, e in self._numbered() if above(seq, e) and e.id not in settled]
        waiting += [
            r.event.at
            for r in self._t.deliveries.values()
            if r.sink == sink and r.state is DeliveryState.PENDING and not above(r.seq, r.event)
        ]
        return Undelivered(len(waiting), min(waiting, default=None))

    async def dead_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for row in self._t.deliveries.values():
            if row.state is DeliveryState.DEAD:
                counts[row.sink] = counts.get(row.sink, 0) + 1
        return counts

    async def prune(self, delivered_before: datetime, *, limit: int) -> OutboxPruned:
        return _prune_outbox(self._events, self._t, delivered_before, limit=limit)

    async def prune_events(
        self, committed_before: datetime, *, after_seq: int, limit: int
    ) -> EventsPruned:
        return _prune_events(self._events, self._t, committed_before, after=after_seq, limit=limit)

    async def prunable(self, delivered_before: datetime) -> OutboxPruned:
        return _prunable_outbox(self._events, self._t, delivered_before)


# --- retention (``OutboxRepository.prune``, ``prune_events``): a pruned event stays in the
# list, so the others keep their seq, and its id goes to ``pruned_events``, which every
# reader skips.


def _finished_delivery(row: _Row, tables: OutboxTables, before: datetime) -> bool:
    """Delivered before ``before``, and its sink's floor is past its event."""
    return (
        row.state is DeliveryState.DELIVERED
        and row.delivered_at is not None
        and row.delivered_at < before
        and row.seq <= tables.sinks[row.sink][1]
    )


def _finished_events(
    events: list[OutboxEvent], tables: OutboxTables, before: datetime
) -> list[tuple[int, OutboxEvent]]:
    """Events (with their seq) committed before ``before`` and below every known sink's
    floor, with no delivery left, oldest first."""
    if not tables.sinks:
        return []
    floor = min(f for _, f in tables.sinks.values())
    held = {r.event.id for r in tables.deliveries.values()}
    gone = tables.pruned_events
    return [
        (seq, e)
        for seq, e in enumerate(events, start=1)
        if seq <= floor and e.at < before and e.id not in gone and e.id not in held
    ]


def _prune_outbox(
    events: list[OutboxEvent], tables: OutboxTables, before: datetime, *, limit: int
) -> OutboxPruned:
    """See ``OutboxRepository.prune``."""
    finished = [r for r in tables.deliveries.values() if _finished_delivery(r, tables, before)]
    gone = sorted(finished, key=lambda r: (r.delivered_at, r.id))[:limit]
    for row in gone:
        del tables.deliveries[row.id]
    pairs = {(r.event.id, r.sink) for r in gone}
    tables.attempts = [a for a in tables.attempts if (a.event_id, a.sink) not in pairs]
    theirs = {r.event.id for r in gone}
    done = [e.id for _, e in _finished_events(events, tables, before) if e.id in theirs]
    tables.pruned_events.update(done)
    return OutboxPruned(deliveries=len(gone), events=len(done))


def _prune_events(
    events: list[OutboxEvent], tables: OutboxTables, before: datetime, *, after: int, limit: int
) -> EventsPruned:
    """See ``OutboxRepository.prune_events``."""
    if not tables.sinks:
        return EventsPruned(deleted=0, last_seq=None)
    floor = min(f for _, f in tables.sinks.values())
    gone = tables.pruned_events
    looked = [
        (seq, e)
        for seq, e in enumerate(events, start=1)
        if after < seq <= floor and e.at < before and e.id not in gone
    ][:limit]
    if not looked:
        return EventsPruned(deleted=0, last_seq=None)
    held = {r.event.id for r in tables.deliveries.values()}
    done = [e.id for _, e in looked if e.id not in held]
    gone.update(done)
    return EventsPruned(deleted=len(done), last_seq=looked[-1][0])


def _prunable_outbox(
    events: list[OutboxEvent], tables: OutboxTables, before: datetime
) -> OutboxPruned:
    """See ``OutboxRepository.prunable``."""
    rows = list(tables.deliveries.values())
    finished = [r for r in rows if _finished_delivery(r, tables, before)]
    if not tables.sinks:
        return OutboxPruned(deliveries=len(finished), events=0)
    floor = min(f for _, f in tables.sinks.values())
    held = {r.event.id for r in rows if not _finished_delivery(r, tables, before)}
    done = [
        e
        for seq, e in enumerate(events, start=1)
        if seq <= floor and e.at < before and e.id not in tables.pruned_events and e.id not in held
    ]
    return OutboxPruned(deliveries=len(finished), events=len(done))


class MemoryEndpointRepository:
    """Merchant webhook endpoints and their secrets, in memory."""

    def __init__(self, tables: OutboxTables) -> None:
        self._t = tables

    async def add(self, endpoint: WebhookEndpoint, secret: WebhookSecret) -> None:
        if endpoint.id in self._t.endpoints:
            raise UniqueViolation("webhook_endpoints_pkey")
        self._add_secret(secret)
        self._t.endpoints[endpoint.id] = endpoint

    def _add_secret(self, secret: WebhookSecret) -> None:
        if secret.id in self._t.secrets:
            raise UniqueViolation("webhook_secrets_pkey")
        self._t.secrets[secret.id] = secret

    async def active(self) -> list[WebhookEndpoint]:
        return [e for e in await self.all() if e.removed_at is None]

    async def all(self) -> list[WebhookEndpoint]:
        return sorted(self._t.endpoints.values(), key=lambda e: (e.created_at, e.id))

    async def remove(self, endpoint_id: str, *, at: datetime) -> bool:
        endpoint = self._t.endpoints.get(endpoint_id)
        if endpoint is None or endpoint.removed_at is not None:
            return False
        self._t.endpoints[endpoint_id] = replace(endpoint, removed_at=at)
        return True

    async def rotate(self, secret: WebhookSecret, *, old_expire_at: datetime) -> bool:
        endpoint = self._t.endpoints.get(secret.endpoint_id)
        if endpoint is None or endpoint.removed_at is not None:
            return False
        for old in list(self._t.secrets.values()):
            if old.endpoint_id == secret.endpoint_id and (
                old.expires_at is None or old.expires_at > old_expire_at
            ):
                self._t.secrets[old.id] = replace(old, expires_at=old_expire_at)
        self._add_secret(secret)
        return True

    async def secrets(self, endpoint_id: str, *, at: datetime) -> list[WebhookSecret]:
        valid = sorted(
            (s for s in self._t.secrets.values() if s.endpoint_id == endpoint_id),
            key=lambda s: s.id,
        )
        valid.sort(key=lambda s: s.created_at, reverse=True)
        return [s for s in valid if s.valid_at(at)]


class MemoryReconciliationRepository:
    """Reconciliation in memory: the orders it matches, its runs and exceptions."""

    def __init__(self, orders: dict[str, Order], tables: ReconciliationTables) -> None:
        self._orders, self._t = orders, tables

    async def orders_after(self, after: str, *, limit: int) -> list[ExportedOrder]:
        found = sorted(o for o in self._orders if o > after)[:limit]
        return [_exported(self._orders[order_id]) for order_id in found]

    async def attempts_after(self, after: str, *, limit: int) -> list[ExportedAttempt]:
        found = sorted(
            (a for o in self._orders.values() for a in o.attempts if a.id > after),
            key=lambda a: a.id,
        )
        return [_exported_attempt(a) for a in found[:limit]]

    async def paid_attempts_between(
        self,
        start: datetime,
        end: datetime,
        *,
        after: tuple[datetime, str] | None,
        limit: int,
        provider: str | None = None,
    ) -> list[ExportedAttempt]:
        found = sorted(
            (
                a
                for a in self._attempts()
                if a.state in (AttemptState.SUCCEEDED, AttemptState.REFUNDED)
                and start <= a.updated_at <= end
                and (provider is None or a.provider == provider)
                and (after is None or (a.updated_at, a.id) > after)
            ),
            key=lambda a: (a.updated_at, a.id),
        )
        return [_exported_attempt(a) for a in found[:limit]]

    async def attempts_by_refs(self, refs: Sequence[str]) -> list[ExportedAttempt]:
        wanted = set(refs)
        return [_exported_attempt(a) for a in self._attempts() if a.provider_ref in wanted]

    async def copy_scope(
        self,
        orders_csv: Path,
        attempts_csv: Path,
        *,
        paid_from: datetime | None,
        paid_to: datetime | None,
        provider: str | None,
        lines: LineRefs,
        window_from: datetime | None = None,
        window_to: datetime | None = None,
    ) -> tuple[int, int] | None:
        return None  # nothing to stream: the caller reads the pages

    async def copy_candidates(
        self,
        orders_csv: Path,
        attempts_csv: Path,
        *,
        paid_from: datetime,
        paid_to: datetime,
        amounts: Sequence[int],
        window_from: datetime,
        window_to: datetime,
        provider: str | None,
    ) -> tuple[int, int] | None:
        return None  # the scope read was complete: nothing is asked apart

    async def orders_by_ids(self, ids: Sequence[str]) -> list[ExportedOrder]:
        return [_exported(self._orders[i]) for i in dict.fromkeys(ids) if i in self._orders]

    async def orders_by_references(self, refs: Sequence[str]) -> list[ExportedOrder]:
        wanted = set(refs)
        return [
            _exported(o)
            for o in self._orders.values()
            if o.id in wanted or o.merchant_reference in wanted
        ]

    def _attempts(self) -> Iterator[PaymentAttempt]:
        return (a for o in self._orders.values() for a in o.attempts)

    async def record_run(self, run: RunRecord) -> bool:
        if any(r.digest == run.digest for r in self._t.runs.values()):
            return False
        if run.id in self._t.runs:
            raise UniqueViolation("reconciliation_runs_pkey")
        self._t.runs[run.id] = run
        return True

    async def record_exception(self, record: ExceptionRecord) -> bool:
        if any(x.dedupe_key == record.dedupe_key for x in self._t.exceptions.values()):
            return False
        if record.id in self._t.exceptions:
            raise UniqueViolation("reconciliation_exceptions_pkey")
        self._t.exceptions[record.id] = record
        return True

    async def latest_exceptions(
        self, *, limit: int, category: str | None = None, open_only: bool = False
    ) -> list[ExceptionRecord]:
        found = [
            x
            for x in self._t.exceptions.values()
            if (category is None or x.category == category)
            and (not open_only or x.resolved_at is None)
        ]
        found.sort(key=lambda x: (x.recorded_at, x.id), reverse=True)
        return found[:limit]

    async def open_exceptions(self, *, provider: str, other_than: str) -> list[ExceptionRecord]:
        return sorted(
            (
                x
                for x in self._t.exceptions.values()
                if x.resolved_at is None
                and x.run_id != other_than
                and x.run_id in self._t.runs
                and self._t.runs[x.run_id].provider == provider
            ),
            key=lambda x: x.id,
        )

    async def resolve(self, ids: Sequence[str], *, run_id: str, at: datetime) -> int:
        closed = 0
        for exception_id in ids:
            found = self._t.exceptions.get(exception_id)
            if found is not None and found.resolved_at is None:
                self._t.exceptions[exception_id] = replace(
                    found, resolved_at=at, resolved_by_run=run_id
                )
                closed += 1
        return closed

    async def counts_by_category(self, *, open_only: bool = False) -> dict[str, int]:
        counts: dict[str, int] = {}
        for x in self._t.exceptions.values():
            if not open_only or x.resolved_at is None:
                counts[x.category] = counts.get(x.category, 0) + 1
        return counts

    async def providers_of(self, run_ids: set[str]) -> dict[str, str]:
        return {r: self._t.runs[r].provider for r in run_ids if r in self._t.runs}

    async def runs(self) -> int:
        return len(self._t.runs)


def _exported_attempt(a: PaymentAttempt) -> ExportedAttempt:
    return ExportedAttempt(a.id, a.order_id, a.provider, a.provider_ref, str(a.state), a.updated_at)


def _exported(order: Order) -> ExportedOrder:
    return ExportedOrder(
        order.id,
        order.merchant_reference,
        str(order.state),
        order.currency,
        order.total.amount,
        order.created_at,
    )

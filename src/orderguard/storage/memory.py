"""In-memory storage with the same behaviour as the SQL back ends, for tests and demos.

Each unit of work takes a global lock and works on a copy of the state; commit swaps the
copy in, so leaving without commit rolls back exactly as a database would.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from types import TracebackType

from orderguard.domain.errors import DuplicateMerchantReference
from orderguard.domain.events import OutboxEvent, TimelineEntry
from orderguard.domain.order import Order, PaymentAttempt
from orderguard.domain.refund_record import Refund, RefundState
from orderguard.domain.states import OrderState
from orderguard.domain.stuck import STUCK_STATES
from orderguard.request_id import current_request_id
from orderguard.storage.memory_console import (
    ConsoleState,
    MemoryConsoleStore,
    MemoryOpsStats,
    MemoryShopperRows,
)
from orderguard.storage.memory_outbox import (
    MemoryEndpointRepository,
    MemoryOutboxRepository,
    MemoryReconciliationRepository,
    OutboxTables,
    ReconciliationTables,
)
from orderguard.storage.orders import ConcurrentUpdate
from orderguard.storage.ports import (
    ApiKey,
    FinalAnswer,
    IdempotencyRecord,
    OrderQuery,
    SweepFinding,
    WebhookRecord,
)


@dataclass
class _State:
    orders: dict[str, Order] = field(default_factory=dict)
    timeline: list[TimelineEntry] = field(default_factory=list)
    outbox: list[OutboxEvent] = field(default_factory=list)
    idempotency: dict[tuple[str, str], IdempotencyRecord] = field(default_factory=dict)
    api_keys: dict[str, ApiKey] = field(default_factory=dict)
    leases: dict[str, tuple[str, datetime]] = field(default_factory=dict)
    heartbeats: dict[str, datetime] = field(default_factory=dict)
    webhooks: dict[str, WebhookRecord] = field(default_factory=dict)
    webhook_leases: dict[str, tuple[str, datetime]] = field(default_factory=dict)
    findings: list[SweepFinding] = field(default_factory=list)
    relay: OutboxTables = field(default_factory=OutboxTables)
    reconciliation: ReconciliationTables = field(default_factory=ReconciliationTables)


class MemoryOrderRepository:
    """Orders in memory."""

    def __init__(self, state: _State) -> None:
        self._s = state

    async def add(self, order: Order) -> None:
        ref = order.merchant_reference
        if ref is not None and await self.find_by_reference(ref):
            raise DuplicateMerchantReference(ref, "")  # as SQL: the holder is looked up after
        self._s.orders[order.id] = _stored(order)
        self._flush(order)

    async def get(self, order_id: str, *, for_update: bool = False) -> Order | None:
        order = self._s.orders.get(order_id)
        return copy.deepcopy(order) if order else None

    async def lock_current(self, order: Order) -> bool:
        stored = self._s.orders.get(order.id)
        return stored is not None and stored.version == order.version

    async def attempts(self, order_id: str) -> list[PaymentAttempt]:
        order = self._s.orders.get(order_id)
        return copy.deepcopy(order.attempts) if order else []

    async def lock_many(self, order_ids: Sequence[str]) -> list[Order]:
        found = (self._s.orders.get(order_id) for order_id in dict.fromkeys(order_ids))
        return [copy.deepcopy(order) for order in found if order]

    async def claim_waiting(self, limit: int) -> list[Order]:
        return await self.lock_many(await self.waiting_for_payment(limit))

    async def claim_due(
        self,
        states: frozenset[OrderState],
        *,
        now: datetime,
        first_due_before: datetime,
        owner: str,
        until: datetime,
        limit: int,
    ) -> list[Order]:
        claimed = await MemoryLeaseRepository(self._s).claim_due_orders(
            states,
            now=now,
            first_due_before=first_due_before,
            owner=owner,
            until=until,
            limit=limit,
        )
        return [copy.deepcopy(self._s.orders[order_id]) for order_id in claimed]

    async def find_by_reference(self, merchant_reference: str) -> str | None:
        for order in self._s.orders.values():
            if order.merchant_reference == merchant_reference:
                return order.id
        return None

    async def save(self, order: Order) -> None:
        stored = self._s.orders.get(order.id)
        if stored is None or stored.version != order.version:
            raise ConcurrentUpdate(f"order {order.id} changed since it was loaded")
        order.version += 1
        self._s.orders[order.id] = _stored(order)
        self._flush(order)

    def saves_alone(self, order: Order) -> bool:
        return False  # no statement commits apart here: the unit of work's commit does

    async def save_alone(self, order: Order, answer: FinalAnswer | None = None) -> bool:
        raise NotImplementedError("the in-memory storage saves in its unit of work (save)")

    async def save_many(self, orders: Sequence[Order]) -> None:
        for order in orders:
            await self.save(order)

    async def search(self, query: OrderQuery) -> list[Order]:
        matches = sorted(
            (o for o in self._s.orders.values() if _matches(o, query)),
            key=lambda o: (o.created_at, o.id),
            reverse=True,
        )
        return [_without_attempts(o) for o in matches[: query.limit]]

    async def in_state(
        self, state: OrderState, *, updated_before: datetime, limit: int
    ) -> list[str]:
        found = sorted(
            (o.updated_at, o.id)
            for o in self._s.orders.values()
            if o.state is state and o.updated_at < updated_before
        )
        return [order_id for _, order_id in found[:limit]]

    async def changed_in_state(
        self,
        state: OrderState,
        *,
        since: datetime,
        after: tuple[datetime, str] | None,
        limit: int,
    ) -> list[tuple[datetime, str]]:
        cursor = after or (since, "")
        found = sorted(
            (o.updated_at, o.id)
            for o in self._s.orders.values()
            if o.state is state and o.updated_at >= since and (o.updated_at, o.id) > cursor
        )
        return found[:limit]

    async def waiting_for_payment(self, limit: int) -> list[str]:
        waiting = sorted(
            (o.created_at, o.id)
            for o in self._s.orders.values()
            if o.state is OrderState.RECEIVED and o.payment_method
        )
        return [order_id for _, order_id in waiting[:limit]]

    async def pending_refunds(self, *, updated_before: datetime, limit: int) -> list[str]:
        since: dict[str, datetime] = {}
        for order in self._s.orders.values():
            for refund in order.refunds:
                if refund.state is RefundState.PENDING and refund.updated_at <= updated_before:
                    since[order.id] = min(since.get(order.id, refund.updated_at), refund.updated_at)
        return [order_id for _, order_id in sorted((at, oid) for oid, at in since.items())][:limit]

    async def timeline(self, order_id: str) -> list[TimelineEntry]:
        return [e for e in self._s.timeline if e.order_id == order_id]

    async def events(self, order_id: str) -> list[OutboxEvent]:
        gone = self._s.relay.pruned_events
        return [e for e in self._s.outbox if e.order_id == order_id and e.id not in gone]

    def _flush(self, order: Order) -> None:
        self._s.timeline.extend(
            replace(e, request_id=e.request_id or current_request_id()) for e in order.new_entries
        )
        self._s.outbox.extend(order.new_events)
        order.new_entries.clear()
        order.new_events.clear()


def _stored(order: Order) -> Order:
    stored = copy.deepcopy(order)
    stored.new_entries, stored.new_events = [], []
    return stored


def _without_attempts(order: Order) -> Order:
    result = copy.deepcopy(order)
    result.attempts, result.refunds = [], []
    return result


def _matches(order: Order, query: OrderQuery) -> bool:
    if query.state is not None and order.state != query.state:
        return False
    if query.created_after is not None and order.created_at < query.created_after:
        return False
    if query.created_before is not None and order.created_at >= query.created_before:
        return False
    if query.flagged and not order.open_flags:
        return False
    if query.stuck_since is not None and (
        order.state not in STUCK_STATES or order.updated_at >= query.stuck_since
    ):
        return False
    return query.cursor is None or (order.created_at, order.id) < query.cursor


class MemoryIdempotencyRepository:
    """Idempotency records in memory."""

    def __init__(self, state: _State) -> None:
        self._s = state

    async def claim(self, record: IdempotencyRecord) -> IdempotencyRecord | None:
        existing = self._s.idempotency.get((record.scope, record.key))
        if existing is None:
            self._s.idempotency[(record.scope, record.key)] = record
        return existing

    async def claim_for(self, record: IdempotencyRecord, order: Order) -> IdempotencyRecord | None:
        existing = await self.claim(record)
        if existing is None:
            await MemoryOrderRepository(self._s).add(order)
        return existing

    async def complete(
        self, scope: str, key: str, *, order_id: str, status: int, body: bytes
    ) -> None:
        record = self._s.idempotency[(scope, key)]
        self._s.idempotency[(scope, key)] = replace(
            record,
            order_id=order_id,
            response_status=status,
            response_body=body,
            locked_until=None,
        )

    async def prune(self, created_before: datetime) -> int:
        old = [k for k, r in self._s.idempotency.items() if r.created_at < created_before]
        for k in old:
            del self._s.idempotency[k]
        return len(old)

    async def prunable(self, created_before: datetime) -> int:
        return sum(1 for r in self._s.idempotency.values() if r.created_at < created_before)


class MemoryApiKeyRepository:
    """Merchant API keys in memory."""

    def __init__(self, state: _State) -> None:
        self._s = state

    async def add(self, key: ApiKey) -> None:
        self._s.api_keys[key.id] = key

    async def all(self) -> list[ApiKey]:
        return sorted(self._s.api_keys.values(), key=lambda k: (k.created_at, k.id))

    async def find_active(self, secret_hash: str) -> ApiKey | None:
        for key in self._s.api_keys.values():
            if key.secret_hash == secret_hash and key.revoked_at is None:
                return key
        return None

    async def revoke(self, key_id: str, at: datetime) -> bool:
        key = self._s.api_keys.get(key_id)
        if key is None or key.revoked_at is not None:
            return False
        self._s.api_keys[key_id] = replace(key, revoked_at=at)
        return True

    async def count_active(self) -> int:
        return sum(1 for k in self._s.api_keys.values() if k.revoked_at is None)


class MemoryLeaseRepository:
    """Leases and heartbeats in memory."""

    def __init__(self, state: _State) -> None:
        self._s = state

    async def claim_due_orders(
        self,
        states: frozenset[OrderState],
        *,
        now: datetime,
        first_due_before: datetime,
        owner: str,
        until: datetime,
        limit: int,
    ) -> list[str]:
        def due(o: Order) -> bool:
            if o.next_check_at is not None:
                return o.next_check_at <= now
            return o.last_checked_at is not None and o.last_checked_at <= first_due_before

        free = [
            o
            for o in self._s.orders.values()
            if o.state in states
            and due(o)
            and (o.id not in self._s.leases or self._s.leases[o.id][1] < now)
        ]
        free.sort(key=lambda o: o.next_check_at or o.last_checked_at or now)
        claimed = [o.id for o in free[:limit]]
        for order_id in claimed:
            self._s.leases[order_id] = (owner, until)
        return sorted(claimed)

    async def claim_refund_checks(
        self, *, now: datetime, first_due_before: datetime, owner: str, until: datetime, limit: int
    ) -> list[str]:
        def due(r: Refund) -> bool:
            if r.state is not RefundState.PENDING:
                return False
            if r.next_check_at is not None:
                return r.next_check_at <= now
            return r.created_at <= first_due_before

        overdue = {
            o.id: min(r.next_check_at or r.created_at for r in o.refunds if due(r))
            for o in self._s.orders.values()
            if any(due(r) for r in o.refunds)
            and (o.id not in self._s.leases or self._s.leases[o.id][1] < now)
        }
        claimed = sorted(overdue, key=lambda order_id: (overdue[order_id], order_id))[:limit]
        for order_id in claimed:
            self._s.leases[order_id] = (owner, until)
        return sorted(claimed)

    async def release(self, order_id: str, owner: str) -> None:
        if order_id in self._s.leases and self._s.leases[order_id][0] == owner:
            del self._s.leases[order_id]

    async def release_many(self, order_ids: Sequence[str], owner: str) -> None:
        for order_id in order_ids:
            await self.release(order_id, owner)

    async def beat(self, worker_id: str, *, started_at: datetime, now: datetime) -> None:
        self._s.heartbeats[worker_id] = now

    async def last_beat(self, *, other_than: str | None = None) -> datetime | None:
        seen = [at for worker, at in self._s.heartbeats.items() if worker != other_than]
        return max(seen, default=None)

    async def forget(self, worker_id: str) -> None:
        self._s.heartbeats.pop(worker_id, None)


class MemoryWebhookRepository:
    """The webhook inbox in memory."""

    def __init__(self, state: _State) -> None:
        self._s = state

    async def record(self, event: WebhookRecord) -> bool:
        if any(
            (w.provider, w.event_id) == (event.provider, event.event_id)
            for w in self._s.webhooks.values()
        ):
            return False
        if event.processed_at is not None:  # handled on arrival
            self._s.webhooks[event.id] = replace(event, attempts=1, next_attempt_at=None)
            return True
        due = event.next_attempt_at or event.received_at
        self._s.webhooks[event.id] = replace(event, next_attempt_at=due)
        return True

    async def get(self, record_id: str) -> WebhookRecord | None:
        return self._s.webhooks.get(record_id)

    async def claim_unprocessed(
        self, *, now: datetime, owner: str, until: datetime, limit: int
    ) -> list[WebhookRecord]:
        free = sorted(
            (
                w
                for w in self._s.webhooks.values()
                if w.processed_at is None
                and w.next_attempt_at is not None
                and w.next_attempt_at <= now
                and (w.id not in self._s.webhook_leases or self._s.webhook_leases[w.id][1] < now)
            ),
            key=lambda w: (w.received_at, w.id),
        )[:limit]
        for w in free:
            self._s.webhook_leases[w.id] = (owner, until)
        return free

    async def processed(self, record_id: str, *, at: datetime, order_id: str | None) -> None:
        w = self._s.webhooks[record_id]
        self._s.webhooks[record_id] = replace(
            w,
            processed_at=at,
            order_id=order_id or w.order_id,
            attempts=w.attempts + 1,
            last_error=None,
            next_attempt_at=None,
        )
        self._s.webhook_leases.pop(record_id, None)

    async def failed(self, record_id: str, *, error: str, retry_at: datetime) -> None:
        w = self._s.webhooks[record_id]
        self._s.webhooks[record_id] = replace(
            w, attempts=w.attempts + 1, last_error=error[:2000], next_attempt_at=retry_at
        )
        self._s.webhook_leases.pop(record_id, None)

    async def recent(self, *, limit: int, failed_only: bool = False) -> list[WebhookRecord]:
        found = [
            w
            for w in self._s.webhooks.values()
            if not failed_only or (w.processed_at is None and w.last_error)
        ]
        return sorted(found, key=lambda w: (w.received_at, w.id), reverse=True)[:limit]

    async def prune_bodies(self, processed_before: datetime, *, at: datetime, limit: int) -> int:
        return _prune_webhook_bodies(self._s.webhooks, processed_before, at=at, limit=limit)

    async def prunable_bodies(self, processed_before: datetime) -> int:
        return _prunable_webhook_bodies(self._s.webhooks, processed_before)


def _prunable_webhook(record: WebhookRecord, before: datetime) -> bool:
    return (
        record.processed_at is not None
        and record.processed_at < before
        and record.pruned_at is None
    )


def _prune_webhook_bodies(
    webhooks: dict[str, WebhookRecord], before: datetime, *, at: datetime, limit: int
) -> int:
    """See ``WebhookRepository.prune_bodies``."""
    chosen = sorted(
        (w for w in webhooks.values() if _prunable_webhook(w, before)),
        key=lambda w: (w.processed_at, w.id),
    )[:limit]
    for w in chosen:
        webhooks[w.id] = replace(w, body=b"", headers={}, pruned_at=at)
    return len(chosen)


def _prunable_webhook_bodies(webhooks: dict[str, WebhookRecord], before: datetime) -> int:
    """See ``WebhookRepository.prunable_bodies``."""
    return sum(1 for w in webhooks.values() if _prunable_webhook(w, before))


class MemoryFindingRepository:
    """Sweep findings in memory."""

    def __init__(self, state: _State) -> None:
        self._s = state

    async def record(self, finding: SweepFinding) -> bool:
        key = (finding.provider, finding.provider_ref, finding.kind)
        if any((f.provider, f.provider_ref, f.kind) == key for f in self._s.findings):
            return False
        self._s.findings.append(finding)
        return True

    async def resolve(self, finding_id: str, resolution: str) -> None:
        self._s.findings = [
            replace(f, resolution=resolution) if f.id == finding_id else f for f in self._s.findings
        ]

    async def all(self) -> list[SweepFinding]:
        return sorted(self._s.findings, key=lambda f: (f.found_at, f.id))


class MemoryUnitOfWork:
    """A transaction over the in-memory state."""

    orders: MemoryOrderRepository
    idempotency: MemoryIdempotencyRepository
    api_keys: MemoryApiKeyRepository
    leases: MemoryLeaseRepository
    webhooks: MemoryWebhookRepository
    findings: MemoryFindingRepository
    outbox: MemoryOutboxRepository
    endpoints: MemoryEndpointRepository
    reconciliations: MemoryReconciliationRepository

    def __init__(self, storage: InMemoryStorage) -> None:
        self._storage = storage
        self._work = _State()

    async def __aenter__(self) -> MemoryUnitOfWork:
        await self._storage.lock.acquire()
        self._work = copy.deepcopy(self._storage.state)
        self.orders = MemoryOrderRepository(self._work)
        self.idempotency = MemoryIdempotencyRepository(self._work)
        self.api_keys = MemoryApiKeyRepository(self._work)
        self.leases = MemoryLeaseRepository(self._work)
        self.webhooks = MemoryWebhookRepository(self._work)
        self.findings = MemoryFindingRepository(self._work)
        self.outbox = MemoryOutboxRepository(self._work.outbox, self._work.relay)
        self.endpoints = MemoryEndpointRepository(self._work.relay)
        self.reconciliations = MemoryReconciliationRepository(
            self._work.orders, self._work.reconciliation
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._storage.lock.release()

    async def commit(self) -> None:
        self._storage.state = self._work
        self._work = copy.deepcopy(self._work)


class InMemoryStorage:
    """Storage that lives in this process only; the fake every contract test also runs on."""

    def __init__(self) -> None:
        self.state = _State()
        self.lock = asyncio.Lock()
        #: The console's users, sessions and log-in counts (``memory_console``).
        self.console_state = ConsoleState()
        self.console = MemoryConsoleStore(self)
        self.stats = MemoryOpsStats(self)
        self.shopper_rows = MemoryShopperRows(self)

    def __call__(self) -> MemoryUnitOfWork:
        return MemoryUnitOfWork(self)

    def reader(self) -> MemoryUnitOfWork:
        """A unit of work that only reads."""
        return MemoryUnitOfWork(self)

    async def close(self) -> None:
        """Nothing to release."""

"""What the services need from storage; SQLite, PostgreSQL and memory implement it.

A unit of work is one transaction: leaving its ``async with`` block without
:meth:`UnitOfWork.commit` rolls everything back.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Protocol

from orderguard.domain.delivery import (
    Delivery,
    DeliveryAttempt,
    DeliveryState,
    WebhookEndpoint,
    WebhookSecret,
)
from orderguard.domain.events import EventType, OutboxEvent, TimelineEntry
from orderguard.domain.order import Order, PaymentAttempt
from orderguard.domain.states import TERMINAL_ORDER_STATES, OrderState
from orderguard.storage.budget import ServerRoom


@dataclass(frozen=True, slots=True)
class IdempotencyRecord:
    """What one ``Idempotency-Key`` (within one merchant scope) was used for."""

    scope: str
    key: str
    #: SHA-256 of the request's method, path and canonical JSON body.
    fingerprint: str
    created_at: datetime
    order_id: str | None = None
    #: Set once the response is final; ``None`` while the first request is in flight.
    response_status: int | None = None
    response_body: bytes | None = None
    #: While in flight, other requests with the key are refused until this moment.
    locked_until: datetime | None = None


@dataclass(frozen=True, slots=True)
class FinalAnswer:
    """The final answer to an idempotent request (its key within its merchant scope), stored
    with the order it answers (:meth:`OrderRepository.save_alone`)."""

    scope: str
    key: str
    status: int
    body: bytes


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A merchant API key; only the SHA-256 of its secret is stored."""

    id: str
    name: str
    prefix: str
    secret_hash: str
    created_at: datetime
    revoked_at: datetime | None = None
    #: What the key may do (``orders:read``, ``orders:write``, ``payments:refund``,
    #: ``admin``), sorted; none by default.
    scopes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class OrderQuery:
    """A page of orders, newest first, after the keyset cursor ``(created_at, id)``."""

    limit: int
    state: OrderState | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    cursor: tuple[datetime, str] | None = None
    #: Only orders in the review queue (with a flag reason).
    flagged: bool = False
    #: Only stuck orders (``domain.stuck``: in a stuck state) unchanged since this moment.
    stuck_since: datetime | None = None


class OrderRepository(Protocol):
    """Orders with their lines, attempts, timeline and outbox events."""

    async def add(self, order: Order) -> None:
        """Store a new order with its recorded entries and events.

        Raises ``DuplicateMerchantReference`` when its merchant reference is taken: from
        here, or, where the inserts wait to go with the commit (PostgreSQL: one round trip
        for both), from the unit of work's next statement or its ``commit``. The
        transaction is then spoilt, so find the holder with :meth:`find_by_reference` in a
        new unit of work.
        """
        ...

    async def get(self, order_id: str, *, for_update: bool = False) -> Order | None:
        """The order, or ``None``; ``for_update`` locks its row until the transaction ends."""
        ...

    async def lock_current(self, order: Order) -> bool:
        """Lock ``order``'s row, as :meth:`get` with ``for_update`` does, if it is still
        stored at ``order.version`` (nothing of it changed since ``order`` was stored or
        read: every change bumps the version); ``False`` (and nothing known to be locked)
        otherwise. One statement: what the order holds is not read again."""
        ...

    async def attempts(self, order_id: str) -> list[PaymentAttempt]:
        """The order's payment attempts as stored, in order (none for an unknown order);
        one read, no lock."""
        ...

    async def lock_many(self, order_ids: Sequence[str]) -> list[Order]:
        """The orders among ``order_ids`` that exist, in that order, each row locked until the
        transaction ends (in id order, so two callers never deadlock)."""
        ...

    async def claim_waiting(self, limit: int) -> list[Order]:
        """Up to ``limit`` of the orders :meth:`waiting_for_payment` lists, oldest first, each
        row locked until the transaction ends; orders another transaction holds are left out,
        not waited for (on SQLite, whose writers take turns, nobody else holds any)."""
        ...

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
        """:meth:`LeaseRepository.claim_due_orders`, returning the leased orders themselves
        (read in the claim's transaction, in id order) instead of their ids: the janitor
        claims and reads a batch in one transaction."""
        ...

    async def find_by_reference(self, merchant_reference: str) -> str | None:
        """The id of the order carrying ``merchant_reference``, if any."""
        ...

    async def save(self, order: Order) -> None:
        """Store the order's changes, its attempts and its new entries and events."""
        ...

    def saves_alone(self, order: Order) -> bool:
        """Whether :meth:`save_alone` takes ``order`` (PostgreSQL, an order holding no flag
        or refund); ask before changing it."""
        ...

    async def save_alone(self, order: Order, answer: FinalAnswer | None = None) -> bool:
        """:meth:`save` of ``order`` and, with ``answer``, the request it answers completed
        (:meth:`IdempotencyRepository.complete`), in one statement sent alone and committed
        as it runs (nothing else may be written in this unit of work), if the order is still
        stored at ``order.version``; ``False`` (nothing stored) if it changed since. Only for
        an order :meth:`saves_alone` takes."""
        ...

    async def save_many(self, orders: Sequence[Order]) -> None:
        """:meth:`save` for each of ``orders``, in a few statements for them all; raises
        ``ConcurrentUpdate`` (and the transaction must be abandoned) if any changed since it
        was loaded."""
        ...

    async def search(self, query: OrderQuery) -> list[Order]:
        """Orders matching ``query``, newest first (without attempts)."""
        ...

    async def timeline(self, order_id: str) -> list[TimelineEntry]:
        """The order's timeline, oldest first."""
        ...

    async def in_state(
        self, state: OrderState, *, updated_before: datetime, limit: int
    ) -> list[str]:
        """Ids of orders in ``state`` not changed since ``updated_before``, oldest first."""
        ...

    async def changed_in_state(
        self,
        state: OrderState,
        *,
        since: datetime,
        after: tuple[datetime, str] | None,
        limit: int,
    ) -> list[tuple[datetime, str]]:
        """``(updated_at, id)`` of orders in ``state`` changed at or after ``since``, oldest
        change first, from just after the keyset cursor ``after`` (a page's last row)."""
        ...

    async def waiting_for_payment(self, limit: int) -> list[str]:
        """Ids of orders in ``received`` holding a payment method to charge, oldest first."""
        ...

    async def pending_refunds(self, *, updated_before: datetime, limit: int) -> list[str]:
        """Ids of orders with a refund ``pending`` and unchanged since ``updated_before``."""
        ...

    async def events(self, order_id: str) -> list[OutboxEvent]:
        """The order's outbox events, in the order they were committed."""
        ...


class IdempotencyRepository(Protocol):
    """Idempotency records, one per (scope, key)."""

    async def claim(self, record: IdempotencyRecord) -> IdempotencyRecord | None:
        """Insert ``record`` unless its key exists; return the existing record if it does."""
        ...

    async def claim_for(self, record: IdempotencyRecord, order: Order) -> IdempotencyRecord | None:
        """Claim ``record``'s key for the new ``order``: insert both (the order as
        ``OrderRepository.add`` does, raising as it does) unless the key exists; else store
        nothing and return the existing record.

        Call it as the unit of work's only write, then commit: PostgreSQL sends it as one
        statement, alone, and commits it as it runs (an order holding no payment attempt yet).
        """
        ...

    async def complete(
        self, scope: str, key: str, *, order_id: str, status: int, body: bytes
    ) -> None:
        """Store the final response of the request that claimed the key."""
        ...

    async def prune(self, created_before: datetime) -> int:
        """Delete records created before the given moment; return how many."""
        ...

    async def prunable(self, created_before: datetime) -> int:
        """How many records :meth:`prune` would delete (``orderguard prune --dry-run``)."""
        ...


class ApiKeyRepository(Protocol):
    """Merchant API keys."""

    async def add(self, key: ApiKey) -> None:
        """Store a new key."""
        ...

    async def all(self) -> list[ApiKey]:
        """Every key, revoked ones included, oldest first."""
        ...

    async def find_active(self, secret_hash: str) -> ApiKey | None:
        """The unrevoked key whose secret hashes to ``secret_hash``."""
        ...

    async def revoke(self, key_id: str, at: datetime) -> bool:
        """Revoke the key; ``False`` when no unrevoked key has that id."""
        ...

    async def count_active(self) -> int:
        """How many keys are not revoked."""
        ...


class UnitOfWork(Protocol):
    """One transaction over every repository."""

    @property
    def orders(self) -> OrderRepository: ...

    @property
    def idempotency(self) -> IdempotencyRepository: ...

    @property
    def api_keys(self) -> ApiKeyRepository: ...

    @property
    def leases(self) -> LeaseRepository: ...

    @property
    def webhooks(self) -> WebhookRepository: ...

    @property
    def findings(self) -> FindingRepository: ...

    @property
    def outbox(self) -> OutboxRepository: ...

    @property
    def endpoints(self) -> EndpointRepository: ...

    @property
    def reconciliations(self) -> ReconciliationRepository: ...

    async def __aenter__(self) -> UnitOfWork: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    async def commit(self) -> None:
        """Make every change of this unit of work durable."""
        ...


class UnitOfWorkFactory(Protocol):
    """Opens units of work; the storage back end the application is wired to."""

    def __call__(self) -> UnitOfWork: ...

    def reader(self) -> UnitOfWork:
        """A unit of work that only reads (it takes no write lock)."""
        ...

    @property
    def console(self) -> ConsoleStore:
        """The support console's users and sessions."""
        ...

    @property
    def stats(self) -> OpsStats:
        """Read-only statistics over the whole database."""
        ...

    @property
    def shopper_rows(self) -> ShopperRows:
        """Every order's stored shopper data, read-only (for the shopper-data audit)."""
        ...

    async def close(self) -> None:
        """Release every connection."""
        ...


@dataclass(frozen=True, slots=True)
class WebhookRecord:
    """One webhook as received (raw), and how its processing went."""

    id: str
    provider: str
    event_id: str
    type: str
    headers: dict[str, str]
    body: bytes
    received_at: datetime
    order_id: str | None = None
    processed_at: datetime | None = None
    attempts: int = 0
    last_error: str | None = None
    next_attempt_at: datetime | None = None
    #: When retention cleared its body and headers (``None``: kept whole).
    pruned_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class SweepFinding:
    """A charge the sweep found unexplained (``orphan``) or doubled (``duplicate``)."""

    id: str
    provider: str
    provider_ref: str
    kind: str
    amount: int
    currency: str
    resolution: str
    found_at: datetime
    order_id: str | None = None


class LeaseRepository(Protocol):
    """Work claimed by workers: janitor rounds on orders, and worker heartbeats."""

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
        """Lease up to ``limit`` orders whose recheck is due and that nobody holds.

        Due: ``next_check_at <= now``, or never checked and ``last_checked_at`` before
        ``first_due_before``. Rows another worker is claiming right now are skipped.
        """
        ...

    async def claim_refund_checks(
        self, *, now: datetime, first_due_before: datetime, owner: str, until: datetime, limit: int
    ) -> list[str]:
        """Lease up to ``limit`` orders holding a ``pending`` refund whose lookup is due
        and that nobody holds; their ids, most overdue first.

        Due: the refund's ``next_check_at <= now``, or never looked up and created before
        ``first_due_before``. Rows another worker is claiming right now are skipped.
        """
        ...

    async def release(self, order_id: str, owner: str) -> None:
        """Give the lease back (only if ``owner`` still holds it)."""
        ...

    async def release_many(self, order_ids: Sequence[str], owner: str) -> None:
        """:meth:`release` for each of ``order_ids``, in one statement."""
        ...

    async def beat(self, worker_id: str, *, started_at: datetime, now: datetime) -> None:
        """Record that ``worker_id`` is alive."""
        ...

    async def last_beat(self, *, other_than: str | None = None) -> datetime | None:
        """When any worker (but ``other_than``) last said it was alive."""
        ...

    async def forget(self, worker_id: str) -> None:
        """A worker stopped cleanly: drop its heartbeat."""
        ...


class WebhookRepository(Protocol):
    """The webhook inbox."""

    async def record(self, event: WebhookRecord) -> bool:
        """Store a newly received event; ``False`` when its (provider, event id) is known.

        It is due for :meth:`claim_unprocessed` at ``next_attempt_at`` (default: at once);
        an event given with ``processed_at`` was handled on arrival: it is stored processed
        (one attempt, nothing due).
        """
        ...

    async def get(self, record_id: str) -> WebhookRecord | None:
        """One stored event."""
        ...

    async def claim_unprocessed(
        self, *, now: datetime, owner: str, until: datetime, limit: int
    ) -> list[WebhookRecord]:
        """Lease events not processed yet whose next attempt is due."""
        ...

    async def processed(self, record_id: str, *, at: datetime, order_id: str | None) -> None:
        """Processing succeeded."""
        ...

    async def failed(self, record_id: str, *, error: str, retry_at: datetime) -> None:
        """Processing failed; try again at ``retry_at``."""
        ...

    async def recent(self, *, limit: int, failed_only: bool = False) -> list[WebhookRecord]:
        """The newest events (for support)."""
        ...

    async def prune_bodies(self, processed_before: datetime, *, at: datetime, limit: int) -> int:
        """Clear the body and headers of up to ``limit`` events processed before
        ``processed_before`` (marking them pruned ``at``); how many. The row stays: its
        (provider, event id) is what refuses a late duplicate. Unprocessed events are never
        touched."""
        ...

    async def prunable_bodies(self, processed_before: datetime) -> int:
        """How many events :meth:`prune_bodies` would clear, in all batches."""
        ...


class FindingRepository(Protocol):
    """What the sweeps found."""

    async def record(self, finding: SweepFinding) -> bool:
        """Store a finding; ``False`` when this charge was already recorded as this kind."""
        ...

    async def resolve(self, finding_id: str, resolution: str) -> None:
        """Record what became of a finding that was waiting (a reported charge)."""
        ...

    async def all(self) -> list[SweepFinding]:
        """Every finding, oldest first."""
        ...


# --- The outbox relay's bookkeeping, merchant endpoints, reconciliation ----------------


#: Longest a transaction that writes an outbox event may stay open; events older than this
#: are surely visible, so a sink's floor may move past them.
OUTBOX_SETTLE = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class OutboxPruned:
    """What one retention pass removed from the outbox (or would remove)."""

    #: Delivered deliveries (with their recorded attempts).
    deliveries: int
    #: Events every sink is done with.
    events: int


@dataclass(frozen=True, slots=True)
class EventsPruned:
    """One batch of :meth:`OutboxRepository.prune_events`."""

    #: Events deleted.
    deleted: int
    #: The commit-order position (``seq``) of the last event looked at, where the next batch
    #: goes on from; ``None`` when no finished event is left after the one asked about.
    last_seq: int | None


@dataclass(frozen=True, slots=True)
class Undelivered:
    """What still waits for one sink."""

    #: Events not yet delivered (nor dead) there, picked up by the relay or not.
    count: int
    #: When the oldest of them was committed (``None`` when nothing waits).
    oldest: datetime | None


class OutboxRepository(Protocol):
    """Deliveries of outbox events to sinks: one per (event, sink), created lazily.

    For each sink the relay copies the events it has not yet considered (above the sink's
    floor) into deliveries, then claims due ones with a lease, never one whose order has an
    earlier event still pending at that sink: one event per order per sink in flight, in
    commit order. The floor only moves past events older than :data:`OUTBOX_SETTLE`.
    """

    async def enqueue(
        self,
        sink: str,
        *,
        types: frozenset[EventType] | None,
        since: datetime,
        now: datetime,
        batch: int,
    ) -> int:
        """Create the pending deliveries of up to ``batch`` new events of ``types`` (None:
        every type) for ``sink``; how many were created. The first time a sink is seen it
        starts with events committed at ``since``."""
        ...

    async def claim(
        self, sink: str, *, owner: str, now: datetime, until: datetime, limit: int
    ) -> list[Delivery]:
        """Lease up to ``limit`` due deliveries of ``sink`` until ``until``, in commit order,
        at most one per order: the oldest still pending, and only once its lease (if any)
        expired. Rows another relay is claiming right now are skipped."""
        ...

    async def delivered(self, delivery: Delivery, *, attempt: DeliveryAttempt) -> None:
        """Mark ``delivery`` delivered and record the attempt."""
        ...

    async def failed(
        self, delivery: Delivery, *, attempt: DeliveryAttempt, retry_at: datetime | None
    ) -> None:
        """Record a failed attempt: try again at ``retry_at``, or dead letter when None."""
        ...

    async def release(self, deliveries: Sequence[Delivery], *, owner: str) -> None:
        """Give up the leases ``owner`` holds on ``deliveries`` (not attempted)."""
        ...

    async def deliveries(
        self,
        *,
        state: DeliveryState | None = None,
        sink: str | None = None,
        order_id: str | None = None,
        event_id: str | None = None,
        limit: int = 100,
    ) -> list[Delivery]:
        """Deliveries matching every filter given, newest event first (then by sink)."""
        ...

    async def delivery(self, delivery_id: int) -> Delivery | None:
        """One delivery by its id."""
        ...

    async def attempts(self, event_id: str) -> list[DeliveryAttempt]:
        """Every recorded try at delivering ``event_id``, oldest first."""
        ...

    async def event(self, event_id: str) -> OutboxEvent | None:
        """One outbox event."""
        ...

    async def replay(
        self, *, now: datetime, event_id: str | None = None, sink: str | None = None
    ) -> int:
        """Make dead deliveries pending again at ``now`` with a fresh count of attempts; how
        many. With ``event_id`` only that event's; with ``sink`` only that sink's. An event
        named with a sink is sent there again whatever its state (created if it never was).
        """
        ...

    async def undelivered(
        self, sink: str, *, types: frozenset[EventType] | None, since: datetime
    ) -> Undelivered:
        """The events of ``types`` not yet delivered (nor dead) at ``sink``, counting those
        the relay has not picked up yet; ``since`` applies to a sink never enqueued for."""
        ...

    async def dead_counts(self) -> dict[str, int]:
        """Dead letters per sink (sinks with none are absent)."""
        ...

    async def prune(self, delivered_before: datetime, *, limit: int) -> OutboxPruned:
        """Delete up to ``limit`` finished deliveries, then their events that are finished.

        A delivery is finished when it was delivered before ``delivered_before`` and its sink's
        floor is past its event (so the relay never copies that event to the sink again); its
        attempts go with it. An event is finished when it was committed before
        ``delivered_before``, every known sink's floor is past it and no delivery of it is
        left (none pending, dead or recently delivered). Nothing else is touched.
        """
        ...

    async def prune_events(
        self, committed_before: datetime, *, after_seq: int, limit: int
    ) -> EventsPruned:
        """Look at up to ``limit`` events after ``after_seq`` (in commit order) committed
        before ``committed_before`` and below every sink's floor, and delete those with no
        delivery left: events no sink took (filtered out by type), or whose last delivery
        went while a sink still had to consider them. Go on from ``last_seq``."""
        ...

    async def prunable(self, delivered_before: datetime) -> OutboxPruned:
        """What :meth:`prune` would delete, in all batches."""
        ...


class EndpointRepository(Protocol):
    """Merchant webhook endpoints and their signing secrets. Removed endpoints are kept
    (their deliveries refer to them) but receive nothing more."""

    async def add(self, endpoint: WebhookEndpoint, secret: WebhookSecret) -> None:
        """Store a new endpoint with its first secret; ``UniqueViolation`` when its id (or
        the secret's) is taken."""
        ...

    async def active(self) -> list[WebhookEndpoint]:
        """Endpoints not removed, oldest first."""
        ...

    async def all(self) -> list[WebhookEndpoint]:
        """Every endpoint ever added, oldest first."""
        ...

    async def remove(self, endpoint_id: str, *, at: datetime) -> bool:
        """Stop sending to an endpoint; ``False`` when there is no such active endpoint."""
        ...

    async def rotate(self, secret: WebhookSecret, *, old_expire_at: datetime) -> bool:
        """Add ``secret`` to its endpoint; the secrets valid now stay valid until
        ``old_expire_at`` (signatures are made with both meanwhile). ``False`` when the
        endpoint is unknown or removed."""
        ...

    async def secrets(self, endpoint_id: str, *, at: datetime) -> list[WebhookSecret]:
        """The endpoint's secrets valid at ``at``, newest first."""
        ...


@dataclass(frozen=True, slots=True)
class RunRecord:
    """An applied reconciliation run."""

    id: str
    #: SHA-256 over the report files' contents: the same files are one run.
    digest: str
    files: str
    provider: str
    period_from: datetime | None
    period_to: datetime | None
    summary: str
    applied_at: datetime


@dataclass(frozen=True, slots=True)
class ExceptionRecord:
    """One recorded reconciliation exception."""

    id: str
    run_id: str
    #: What makes two reports' exceptions the same one (recorded once).
    dedupe_key: str
    category: str
    order_id: str | None
    provider_ref: str | None
    amount: int | None
    currency: str | None
    expected_amount: int | None
    expected_currency: str | None
    file: str | None
    line: int | None
    recorded_at: datetime
    #: When a later run explained it, and which run (both ``None`` while it is open).
    resolved_at: datetime | None = None
    resolved_by_run: str | None = None


#: The columns of reconciliation's export files (``reconcile.export``), as the engine reads
#: them: an order, and a payment attempt.
ORDER_CSV_COLUMNS = ("order_id", "merchant_reference", "state", "currency", "amount", "created_at")
ATTEMPT_CSV_COLUMNS = ("order_id", "provider", "provider_ref", "state", "updated_at")


@dataclass(frozen=True, slots=True)
class ExportedOrder:
    """An order as reconciliation matches it."""

    id: str
    merchant_reference: str | None
    state: str
    currency: str
    #: The order's total in minor units.
    amount: int
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ExportedAttempt:
    """A payment attempt as reconciliation matches it."""

    id: str
    order_id: str
    provider: str
    provider_ref: str | None
    state: str
    updated_at: datetime


@dataclass(frozen=True)
class LineRefs:
    """What a reconciliation run's report lines name: one entry per distinct line key, as
    three aligned JSON arrays (a day's report names tens of thousands: the engine's
    database writes them and the storage's database reads them, with no Python loop over
    the entries): ``refs``, each entry's payment reference, and ``order_refs``, its order
    reference (text or ``null``); ``charges``, whether it is a usable charge line (``true``
    or ``false``), whose reference claims the payment it names."""

    refs: str = "[]"
    order_refs: str = "[]"
    charges: str = "[]"

    def entries(self) -> list[tuple[str | None, str | None, bool]]:
        """The entries as tuples (for storage that reads them in Python)."""
        return list(
            zip(
                json.loads(self.refs),
                json.loads(self.order_refs),
                json.loads(self.charges),
                strict=True,
            )
        )


class ReconciliationRepository(Protocol):
    """Reconciliation: the orders it matches, its applied runs and their exceptions."""

    async def orders_after(self, after: str, *, limit: int) -> list[ExportedOrder]:
        """Up to ``limit`` orders whose id sorts after ``after``, by id (a page of the
        export; ``""`` starts it)."""
        ...

    async def attempts_after(self, after: str, *, limit: int) -> list[ExportedAttempt]:
        """Up to ``limit`` payment attempts whose id sorts after ``after``, by id."""
        ...

    async def paid_attempts_between(
        self,
        start: datetime,
        end: datetime,
        *,
        after: tuple[datetime, str] | None,
        limit: int,
        provider: str | None = None,
    ) -> list[ExportedAttempt]:
        """Up to ``limit`` attempts that paid (``succeeded`` or ``refunded``), through
        ``provider`` when given, last updated between ``start`` and ``end`` (inclusive), by
        ``(updated_at, id)`` after ``after`` (``None`` starts): a page of a period's payments,
        read by index (``payment_attempts_paid``)."""
        ...

    async def attempts_by_refs(self, refs: Sequence[str]) -> list[ExportedAttempt]:
        """The attempts whose provider reference is one of ``refs``, whatever their age
        (by index; the caller keeps ``refs`` to a few hundred)."""
        ...

    async def orders_by_ids(self, ids: Sequence[str]) -> list[ExportedOrder]:
        """The orders whose id is one of ``ids`` (by primary key)."""
        ...

    async def orders_by_references(self, refs: Sequence[str]) -> list[ExportedOrder]:
        """The orders whose id or merchant reference is one of ``refs`` (by index), each
        once."""
        ...

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
        """Write a reconciliation scope to the export's two CSV files (the columns of
        ``ExportedOrder`` and ``ExportedAttempt`` as the engine reads them), each row once:
        the attempts that paid between ``paid_from`` and ``paid_to`` (through ``provider``
        when given; none without a period) and those whose provider reference is one of the
        ``lines``' references; for each line whose reference names no attempt (or that has
        none), the attempts whose provider reference is its order reference; with a window,
        the attempts that paid between ``window_from`` and ``window_to`` of the orders of
        those whose reference no charge line names; the orders of every attempt written and
        those whose id or merchant reference is the order reference of a line whose
        reference names no attempt. Streamed by the database in a fixed number of
        statements, whatever the scope's size: ``(orders, attempts)`` written. ``None``
        (nothing written) where storage cannot stream: the caller reads the scope by the
        methods above."""
        ...

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
        """Write to the export's two CSV files, as :meth:`copy_scope` does, the attempts
        that paid (through ``provider`` when given) between ``window_from`` and
        ``window_to`` of every order whose amount is one of ``amounts`` and one of whose
        attempts paid between ``paid_from`` and ``paid_to``, and those orders.
        ``(orders, attempts)`` written; ``None`` where storage cannot stream."""
        ...

    async def record_run(self, run: RunRecord) -> bool:
        """Store ``run``; ``False`` when a run of the same files (digest) was applied
        before. ``UniqueViolation`` when its id is taken by another run."""
        ...

    async def record_exception(self, record: ExceptionRecord) -> bool:
        """Store ``record``; ``False`` when the same exception (dedupe key) was recorded."""
        ...

    async def latest_exceptions(
        self, *, limit: int, category: str | None = None, open_only: bool = False
    ) -> list[ExceptionRecord]:
        """The newest exceptions (only the open ones with ``open_only``), newest first."""
        ...

    async def open_exceptions(self, *, provider: str, other_than: str) -> list[ExceptionRecord]:
        """The open exceptions runs about ``provider`` recorded, but for run ``other_than``,
        by id."""
        ...

    async def resolve(self, ids: Sequence[str], *, run_id: str, at: datetime) -> int:
        """Close the open exceptions ``ids``, explained by run ``run_id``; how many closed."""
        ...

    async def counts_by_category(self, *, open_only: bool = False) -> dict[str, int]:
        """Exceptions per category (absent: none): every one recorded, or the open ones."""
        ...

    async def providers_of(self, run_ids: set[str]) -> dict[str, str]:
        """The provider each of ``run_ids`` reconciled (unknown runs are absent)."""
        ...

    async def runs(self) -> int:
        """How many runs were applied."""
        ...


# --- the support console's users and sessions, and the read-only statistics ------------


class UserExists(Exception):
    """A console user with this name exists already."""


@dataclass(frozen=True, slots=True)
class ConsoleUser:
    """A person who may log in to the console."""

    name: str
    role: str
    password_hash: str
    created_at: datetime
    failed_logins: int = 0
    locked_until: datetime | None = None


@dataclass(frozen=True, slots=True)
class ConsoleSession:
    """A logged-in browser; only the SHA-256 of its cookie value is stored."""

    id_hash: str
    user_name: str
    csrf_token: str
    created_at: datetime
    expires_at: datetime


class ConsoleStore(Protocol):
    """Console users, their sessions and log-in attempt counts, and the searches behind the
    console's pages. Each method is its own transaction."""

    async def add_user(self, user: ConsoleUser) -> None:
        """Store a new user; raises :class:`UserExists`."""
        ...

    async def user(self, name: str) -> ConsoleUser | None:
        """The user called ``name``."""
        ...

    async def users(self) -> list[ConsoleUser]:
        """Every user, by name."""
        ...

    async def remove_user(self, name: str) -> bool:
        """Remove the user and end their sessions; whether they existed."""
        ...

    async def set_password(self, name: str, password_hash: str) -> bool:
        """New password: unlocks the user and ends their sessions; whether they exist."""
        ...

    async def rehash(self, name: str, password_hash: str) -> None:
        """Store a stronger hash of the same password."""
        ...

    async def count_attempt(
        self, limits: Mapping[str, int], *, now: datetime, lock_until: datetime
    ) -> bool:
        """Count one log-in attempt under each key of ``limits`` (key → most attempts allowed
        until the count expires); whether every key is still within its limit.

        Each key's count is atomic and its own transaction: however many attempts arrive at
        once, at most ``limit`` see a count within the limit. A new or expired count starts
        at 1 and expires at ``lock_until``; the attempt that reaches the limit pushes the
        expiry to its ``lock_until``. Expired counts are deleted.
        """
        ...

    async def forget_attempts(self, keys: Iterable[str]) -> None:
        """Start the counts of ``keys`` afresh (after a success, or a new password)."""
        ...

    async def attempts(self, key: str, *, now: datetime) -> tuple[int, datetime] | None:
        """The unexpired count of attempts under ``key`` and when it expires."""
        ...

    async def logged_in(self, session: ConsoleSession) -> None:
        """Reset the user's failures and store their new session."""
        ...

    async def session(
        self, id_hash: str, *, now: datetime
    ) -> tuple[ConsoleSession, ConsoleUser] | None:
        """The unexpired session with this hash and its user."""
        ...

    async def end_session(self, id_hash: str) -> None:
        """Log a browser out."""
        ...

    async def prune_sessions(self, now: datetime) -> int:
        """Delete expired sessions; how many."""
        ...

    async def search(self, text: str, *, limit: int) -> list[str]:
        """Ids of orders whose id, merchant reference, email (any case) or a payment
        attempt's provider reference is ``text``, newest first."""
        ...

    async def webhooks_for(self, order_id: str, *, limit: int = 50) -> list[WebhookRecord]:
        """The raw webhook events stored for ``order_id``, newest first."""
        ...


#: Age buckets of unfinished orders: label and upper bound (the last is open-ended).
AGE_BUCKETS: tuple[tuple[str, timedelta | None], ...] = (
    ("0-1m", timedelta(minutes=1)),
    ("1m-10m", timedelta(minutes=10)),
    ("10m-1h", timedelta(hours=1)),
    ("1h-1d", timedelta(days=1)),
    ("1d+", None),
)
#: The states of unfinished orders, sorted.
OPEN_STATES = tuple(sorted(s for s in OrderState if s not in TERMINAL_ORDER_STATES))


@dataclass(frozen=True, slots=True)
class WebhookTotals:
    """The inbox of one provider, counted over every event ever received."""

    received: int
    processed: int
    #: Processing attempts that failed (an event may fail several times, then succeed).
    failures: int
    #: Events whose last attempt failed and that are not processed yet.
    failing: int
    oldest_unprocessed: datetime | None


@dataclass(frozen=True, slots=True)
class DatabaseStats:
    """One reading of the database, taken at ``now``."""

    now: datetime
    orders_by_state: dict[str, int] = field(default_factory=dict)
    #: Unfinished orders: state -> age bucket -> count.
    open_by_age: dict[str, dict[str, int]] = field(default_factory=dict)
    #: Creation time of the oldest unfinished order not in the review queue, per state.
    oldest_open: dict[str, datetime] = field(default_factory=dict)
    #: Stuck orders (``domain.stuck``: in a stuck state, unchanged for ``STUCK_AFTER``)
    #: per state, review queue included; every stuck state is present (zeros included).
    stuck_by_state: dict[str, int] = field(default_factory=dict)
    flagged_by_reason: dict[str, int] = field(default_factory=dict)
    janitor_backlog: int = 0
    #: How long the most overdue recheck has been due.
    janitor_lag: timedelta = timedelta(0)
    webhooks: dict[str, WebhookTotals] = field(default_factory=dict)
    last_heartbeat: datetime | None = None


@dataclass(frozen=True, slots=True)
class ConsoleCounts:
    """The console dashboard's counts."""

    #: Orders with an open review flag.
    flagged: int
    #: Orders stuck (``domain.stuck``) as of the horizon asked for.
    stuck: int
    #: Webhook events received and not processed yet.
    webhook_backlog: int


class OpsStats(Protocol):
    """What ``/metrics``, ``/readyz``, ``doctor`` and the console's dashboard read about the
    whole database. Read-only: nothing here changes anything."""

    async def ping(self) -> float:
        """One round trip to the database, in seconds (raises ``StorageError``)."""
        ...

    async def database_now(self) -> datetime | None:
        """The database server's clock; ``None`` when it is this host's (SQLite, memory)."""
        ...

    async def schema_version(self) -> int:
        """The schema version, read without creating anything (0 when never migrated)."""
        ...

    async def connection_room(self) -> ServerRoom | None:
        """What the database server accepts and holds open now; ``None`` when it has no
        connection limit (SQLite, memory)."""
        ...

    async def last_heartbeat(self) -> datetime | None:
        """When any worker last said it was alive."""
        ...

    async def read(
        self, *, now: datetime, watched: frozenset[OrderState], shortest_wait: timedelta
    ) -> DatabaseStats:
        """Everything ``/metrics`` shows about the database, read at once (``watched`` and
        ``shortest_wait``: the janitor's schedule, for its backlog and lag)."""
        ...

    async def orders_by_state(self) -> dict[str, int]:
        """How many orders are in each state (states with none left out)."""
        ...

    async def counts(self, *, stuck_since: datetime) -> ConsoleCounts:
        """Flagged orders, stuck orders (in a stuck state, unchanged since ``stuck_since``)
        and the webhook backlog."""
        ...


# --- stored shopper data, for the shopper-data audit ----------------------------------


@dataclass(frozen=True, slots=True)
class ShopperRow:
    """One order's shopper data as stored (maybe invalid by today's rules: the audit's
    question)."""

    order_id: str
    created_at: datetime
    email: str
    name: str
    phone: str | None
    line1: str
    line2: str | None
    city: str
    postal_code: str
    country: str


class ShopperRows(Protocol):
    """What the shopper-data audit reads: every stored order's shopper data. Read-only;
    each page is its own transaction, so a long scan holds no lock between pages."""

    def scan(self, *, since: datetime | None = None, page: int = 500) -> AsyncIterator[ShopperRow]:
        """Every order placed at or after ``since`` (all when ``None``), oldest first (by
        creation time, then id), read ``page`` orders at a time."""
        ...

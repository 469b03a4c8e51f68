"""What the services need from storage; SQLite, PostgreSQL and memory implement it.

A unit of work is one transaction: leaving its ``async with`` block without
:meth:`UnitOfWork.commit` rolls everything back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Protocol

from orderguard.domain.events import OutboxEvent, TimelineEntry
from orderguard.domain.order import Order
from orderguard.domain.states import OrderState


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
    #: Only orders not in a final state and unchanged since this moment ("stuck").
    stuck_since: datetime | None = None


class OrderRepository(Protocol):
    """Orders with their lines, attempts, timeline and outbox events."""

    async def add(self, order: Order) -> None:
        """Store a new order with its recorded entries and events.

        Raises ``DuplicateMerchantReference`` when its merchant reference is taken; the
        transaction is then spoilt, so find the holder with :meth:`find_by_reference` in a
        new unit of work.
        """
        ...

    async def get(self, order_id: str, *, for_update: bool = False) -> Order | None:
        """The order, or ``None``; ``for_update`` locks its row until the transaction ends."""
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

    async def find_by_reference(self, merchant_reference: str) -> str | None:
        """The id of the order carrying ``merchant_reference``, if any."""
        ...

    async def save(self, order: Order) -> None:
        """Store the order's changes, its attempts and its new entries and events."""
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

    async def complete(
        self, scope: str, key: str, *, order_id: str, status: int, body: bytes
    ) -> None:
        """Store the final response of the request that claimed the key."""
        ...

    async def prune(self, created_before: datetime) -> int:
        """Delete records created before the given moment; return how many."""
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

    async def release(self, order_id: str, owner: str) -> None:
        """Give the lease back (only if ``owner`` still holds it)."""
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

        It is due for :meth:`claim_unprocessed` at ``next_attempt_at`` (default: at once).
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

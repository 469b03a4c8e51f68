"""The console's users and sessions, the read-only statistics and the stored shopper data,
in memory: the :class:`~orderguard.storage.ports.ConsoleStore`,
:class:`~orderguard.storage.ports.OpsStats` and :class:`~orderguard.storage.ports.ShopperRows`
of :class:`~orderguard.storage.memory.InMemoryStorage`, with the same behaviour as the SQL
ones (the contract suite runs them all).

Each call takes the storage's lock, as a transaction would.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Protocol

from orderguard.domain.order import Order
from orderguard.domain.states import OrderState
from orderguard.domain.stuck import STUCK_STATES, stuck_horizon
from orderguard.storage import migrate
from orderguard.storage.budget import ServerRoom
from orderguard.storage.errors import UniqueViolation
from orderguard.storage.ports import (
    AGE_BUCKETS,
    OPEN_STATES,
    ConsoleCounts,
    ConsoleSession,
    ConsoleUser,
    DatabaseStats,
    ShopperRow,
    UserExists,
    WebhookRecord,
    WebhookTotals,
)


@dataclass
class ConsoleState:
    """The console's tables."""

    users: dict[str, ConsoleUser] = field(default_factory=dict)
    sessions: dict[str, ConsoleSession] = field(default_factory=dict)
    #: Log-in attempt counts: key -> (attempts, expires at).
    attempts: dict[str, tuple[int, datetime]] = field(default_factory=dict)


class Tables(Protocol):
    """The in-memory tables the console and the statistics read."""

    @property
    def orders(self) -> dict[str, Order]: ...

    @property
    def webhooks(self) -> dict[str, WebhookRecord]: ...

    @property
    def heartbeats(self) -> dict[str, datetime]: ...


class Shared(Protocol):
    """What these stores share with the rest of the in-memory storage (``memory.py``):
    its lock, its tables and the console's own; given, so this module does not import
    the storage that builds it."""

    @property
    def lock(self) -> asyncio.Lock: ...

    @property
    def state(self) -> Tables: ...

    @property
    def console_state(self) -> ConsoleState: ...


class MemoryConsoleStore:
    """:class:`~orderguard.storage.ports.ConsoleStore` in memory."""

    def __init__(self, storage: Shared) -> None:
        self._storage = storage

    @property
    def _c(self) -> ConsoleState:
        return self._storage.console_state

    async def add_user(self, user: ConsoleUser) -> None:
        async with self._storage.lock:
            if user.name in self._c.users:
                raise UserExists(user.name)
            self._c.users[user.name] = replace(user, failed_logins=0, locked_until=None)

    async def user(self, name: str) -> ConsoleUser | None:
        async with self._storage.lock:
            return self._c.users.get(name)

    async def users(self) -> list[ConsoleUser]:
        async with self._storage.lock:
            return [self._c.users[name] for name in sorted(self._c.users)]

    async def remove_user(self, name: str) -> bool:
        async with self._storage.lock:
            self._end_sessions_of(name)
            return self._c.users.pop(name, None) is not None

    async def set_password(self, name: str, password_hash: str) -> bool:
        async with self._storage.lock:
            self._end_sessions_of(name)
            user = self._c.users.get(name)
            if user is None:
                return False
            self._c.users[name] = replace(
                user, password_hash=password_hash, failed_logins=0, locked_until=None
            )
            return True

    async def rehash(self, name: str, password_hash: str) -> None:
        async with self._storage.lock:
            user = self._c.users.get(name)
            if user is not None:
                self._c.users[name] = replace(user, password_hash=password_hash)

    async def count_attempt(
        self, limits: Mapping[str, int], *, now: datetime, lock_until: datetime
    ) -> bool:
        admitted = True
        async with self._storage.lock:
            for key in sorted(limits):
                held = self._c.attempts.get(key)
                if held is None or held[1] <= now:
                    count = (1, lock_until)
                else:
                    attempts, expires = held[0] + 1, held[1]
                    count = (attempts, lock_until if attempts == limits[key] else expires)
                self._c.attempts[key] = count
                admitted = admitted and count[0] <= limits[key]
            for key, (_, expires) in list(self._c.attempts.items()):
                if expires <= now:
                    del self._c.attempts[key]
        return admitted

    async def forget_attempts(self, keys: Iterable[str]) -> None:
        async with self._storage.lock:
            for key in keys:
                self._c.attempts.pop(key, None)

    async def attempts(self, key: str, *, now: datetime) -> tuple[int, datetime] | None:
        async with self._storage.lock:
            held = self._c.attempts.get(key)
        return held if held is not None and held[1] > now else None

    async def logged_in(self, session: ConsoleSession) -> None:
        async with self._storage.lock:
            if session.id_hash in self._c.sessions:
                raise UniqueViolation("console_sessions.id_hash")
            user = self._c.users.get(session.user_name)
            if user is None:
                raise UniqueViolation("console_sessions.user_name (no such user)")
            self._c.users[user.name] = replace(user, failed_logins=0, locked_until=None)
            self._c.sessions[session.id_hash] = session

    async def session(
        self, id_hash: str, *, now: datetime
    ) -> tuple[ConsoleSession, ConsoleUser] | None:
        async with self._storage.lock:
            found = self._c.sessions.get(id_hash)
            user = self._c.users.get(found.user_name) if found is not None else None
        if found is None or user is None or found.expires_at <= now:
            return None
        return found, user

    async def end_session(self, id_hash: str) -> None:
        async with self._storage.lock:
            self._c.sessions.pop(id_hash, None)

    async def prune_sessions(self, now: datetime) -> int:
        async with self._storage.lock:
            expired = [k for k, s in self._c.sessions.items() if s.expires_at <= now]
            for key in expired:
                del self._c.sessions[key]
        return len(expired)

    async def search(self, text: str, *, limit: int) -> list[str]:
        async with self._storage.lock:
            found = [o for o in self._storage.state.orders.values() if _named_by(o, text)]
        found.sort(key=lambda o: o.created_at, reverse=True)
        return [o.id for o in found[:limit]]

    async def webhooks_for(self, order_id: str, *, limit: int = 50) -> list[WebhookRecord]:
        async with self._storage.lock:
            found = [w for w in self._storage.state.webhooks.values() if w.order_id == order_id]
        return sorted(found, key=lambda w: (w.received_at, w.id), reverse=True)[:limit]

    def _end_sessions_of(self, name: str) -> None:
        for key in [k for k, s in self._c.sessions.items() if s.user_name == name]:
            del self._c.sessions[key]


def _named_by(order: Order, text: str) -> bool:
    return (
        text in (order.id, order.merchant_reference)
        or order.customer.email.lower() == text.lower()
        or any(a.provider_ref == text for a in order.attempts)
    )


class MemoryOpsStats:
    """:class:`~orderguard.storage.ports.OpsStats` in memory."""

    def __init__(self, storage: Shared) -> None:
        self._storage = storage

    async def ping(self) -> float:
        async with self._storage.lock:
            return 0.0

    async def database_now(self) -> datetime | None:
        return None

    async def schema_version(self) -> int:
        return migrate.latest_version()  # nothing to migrate: always the code's own

    async def connection_room(self) -> ServerRoom | None:
        return None  # no server, no limit

    async def last_heartbeat(self) -> datetime | None:
        async with self._storage.lock:
            return max(self._storage.state.heartbeats.values(), default=None)

    async def read(
        self, *, now: datetime, watched: frozenset[OrderState], shortest_wait: timedelta
    ) -> DatabaseStats:
        async with self._storage.lock:
            orders = list(self._storage.state.orders.values())
            webhooks = list(self._storage.state.webhooks.values())
            heartbeats = list(self._storage.state.heartbeats.values())
        backlog, lag = _janitor(orders, now, watched, shortest_wait)
        return DatabaseStats(
            now=now,
            orders_by_state=_by_state(orders),
            open_by_age=_open_by_age(orders, now),
            oldest_open=_oldest_open(orders),
            stuck_by_state=_stuck(orders, stuck_horizon(now=now)),
            flagged_by_reason=dict(Counter(str(f.reason) for o in orders for f in o.open_flags)),
            janitor_backlog=backlog,
            janitor_lag=lag,
            webhooks=_webhooks(webhooks),
            last_heartbeat=max(heartbeats, default=None),
        )

    async def orders_by_state(self) -> dict[str, int]:
        async with self._storage.lock:
            return _by_state(self._storage.state.orders.values())

    async def counts(self, *, stuck_since: datetime) -> ConsoleCounts:
        async with self._storage.lock:
            orders = list(self._storage.state.orders.values())
            backlog = sum(1 for w in self._storage.state.webhooks.values() if not w.processed_at)
        return ConsoleCounts(
            flagged=sum(1 for o in orders if o.open_flags),
            stuck=sum(_stuck(orders, stuck_since).values()),
            webhook_backlog=backlog,
        )


class MemoryShopperRows:
    """:class:`~orderguard.storage.ports.ShopperRows` in memory: the same keyset scan over
    ``(created_at, id)`` as SQL, one look under the lock a page."""

    def __init__(self, storage: Shared) -> None:
        self._storage = storage

    async def scan(
        self, *, since: datetime | None = None, page: int = 500
    ) -> AsyncIterator[ShopperRow]:
        after: tuple[datetime, str] | None = None
        while True:
            async with self._storage.lock:
                orders = _page(self._storage.state.orders.values(), since, after, page)
            for order in orders:
                yield _shopper_row(order)
            if len(orders) < page:
                return
            after = (orders[-1].created_at, orders[-1].id)


def _page(
    orders: Iterable[Order],
    since: datetime | None,
    after: tuple[datetime, str] | None,
    page: int,
) -> list[Order]:
    """Up to ``page`` orders placed at or after ``since`` that sort after ``after``."""
    found = sorted(
        (
            o
            for o in orders
            if (since is None or o.created_at >= since)
            and (after is None or (o.created_at, o.id) > after)
        ),
        key=lambda o: (o.created_at, o.id),
    )
    return found[:page]


def _shopper_row(order: Order) -> ShopperRow:
    customer, address = order.customer, order.customer.shipping_address
    return ShopperRow(
        order_id=order.id,
        created_at=order.created_at,
        email=customer.email,
        name=customer.name,
        phone=customer.phone,
        line1=address.line1,
        line2=address.line2,
        city=address.city,
        postal_code=address.postal_code,
        country=address.country,
    )


def _by_state(orders: Iterable[Order]) -> dict[str, int]:
    return dict(Counter(str(o.state) for o in orders))


def _stuck(orders: Iterable[Order], since: datetime) -> dict[str, int]:
    found = Counter(
        str(o.state) for o in orders if o.state in STUCK_STATES and o.updated_at < since
    )
    return {str(state): found.get(str(state), 0) for state in sorted(STUCK_STATES)}


def is_stuck_since(order: Order, since: datetime) -> bool:
    """Whether ``order`` is in a stuck state and unchanged since ``since``."""
    return order.state in STUCK_STATES and order.updated_at < since


def _open_by_age(orders: Iterable[Order], now: datetime) -> dict[str, dict[str, int]]:
    by_age: dict[str, dict[str, int]] = {}
    for order in orders:
        if order.state not in OPEN_STATES:
            continue
        buckets = by_age.setdefault(str(order.state), {label: 0 for label, _ in AGE_BUCKETS})
        buckets[_bucket(now - order.created_at)] += 1
    return by_age


def _bucket(age: timedelta) -> str:
    for label, upper in AGE_BUCKETS:
        if upper is None or age < upper:
            return label
    raise AssertionError("the last age bucket is open-ended")


def _oldest_open(orders: Iterable[Order]) -> dict[str, datetime]:
    oldest: dict[str, datetime] = {}
    for o in orders:
        if o.state in OPEN_STATES and not o.open_flags:
            state = str(o.state)
            oldest[state] = min(oldest.get(state, o.created_at), o.created_at)
    return oldest


def _janitor(
    orders: Iterable[Order], now: datetime, watched: frozenset[OrderState], shortest_wait: timedelta
) -> tuple[int, timedelta]:
    first_due_before = now - shortest_wait
    due_at: list[datetime] = []
    for o in orders:
        if o.state not in watched:
            continue
        if o.next_check_at is not None and o.next_check_at <= now:
            due_at.append(o.next_check_at)
        elif (
            o.next_check_at is None
            and o.last_checked_at is not None
            and o.last_checked_at <= first_due_before
        ):
            due_at.append(o.last_checked_at + shortest_wait)
    if not due_at:
        return 0, timedelta(0)
    return len(due_at), max(now - min(due_at), timedelta(0))


def _webhooks(records: Iterable[WebhookRecord]) -> dict[str, WebhookTotals]:
    by_provider: dict[str, list[WebhookRecord]] = {}
    for w in records:
        by_provider.setdefault(w.provider, []).append(w)
    totals = {}
    for provider, found in by_provider.items():
        processed = sum(1 for w in found if w.processed_at is not None)
        waiting = [w.received_at for w in found if w.processed_at is None]
        totals[provider] = WebhookTotals(
            received=len(found),
            processed=processed,
            failures=max(sum(w.attempts for w in found) - processed, 0),
            failing=sum(1 for w in found if w.processed_at is None and w.last_error is not None),
            oldest_unprocessed=min(waiting, default=None),
        )
    return totals

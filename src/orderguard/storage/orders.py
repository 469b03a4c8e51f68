"""Orders, their lines, attempts, timeline and outbox events in SQL."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson

from orderguard.domain.customer import Address, Customer
from orderguard.domain.errors import DuplicateMerchantReference
from orderguard.domain.events import Cause, EntryKind, EventType, OutboxEvent, TimelineEntry
from orderguard.domain.order import Order, OrderLine, PaymentAttempt
from orderguard.domain.states import AttemptState, OrderState
from orderguard.domain.stuck import STUCK_STATES
from orderguard.request_id import current_request_id
from orderguard.storage.database import Connection, Meaning, Row, must_datetime, to_datetime
from orderguard.storage.errors import StorageError, UniqueViolation
from orderguard.storage.order_flags import (
    FLAGS_OF_ORDER,
    HAS_OPEN_FLAG,
    flags_by_order,
    flags_from,
    flags_query,
    load_flags,
    save_flags,
)
from orderguard.storage.order_refunds import (
    REFUND_REQUEST_UNIQUE,
    REFUNDS_OF_ORDER,
    pending_refunds,
    refunds_by_order,
    refunds_from,
    refunds_query,
    save_refunds,
)
from orderguard.storage.ports import FinalAnswer, OrderQuery
from orderguard.storage.recovery import claim_due

_INSERT_ORDER = """
INSERT INTO orders (id, merchant_reference, state, currency, amount_total, customer_email,
    customer_name, customer_phone, ship_line1, ship_line2, ship_city, ship_postal_code,
    ship_country, locale, status_token, flag_reason, payment_method, checks, last_checked_at,
    next_check_at, version, created_at, updated_at, livemode)
VALUES (:id, :merchant_reference, :state, :currency, :amount_total, :customer_email,
    :customer_name, :customer_phone, :ship_line1, :ship_line2, :ship_city, :ship_postal_code,
    :ship_country, :locale, :status_token, :flag_reason, :payment_method, :checks,
    :last_checked_at, :next_check_at, :version, :created_at, :updated_at, :livemode)
"""
_INSERT_LINE = """
INSERT INTO order_lines (order_id, position, sku, name, quantity, unit_amount)
VALUES (:order_id, :position, :sku, :name, :quantity, :unit_amount)
"""
_UPSERT_ATTEMPT = """
INSERT INTO payment_attempts (id, order_id, seq, provider, method, state, amount, currency,
    idempotency_key, provider_ref, decline_code, redirect_url, created_at, updated_at)
VALUES (:id, :order_id, :seq, :provider, :method, :state, :amount, :currency,
    :idempotency_key, :provider_ref, :decline_code, :redirect_url, :created_at, :updated_at)
ON CONFLICT (id) DO UPDATE SET state = excluded.state, provider_ref = excluded.provider_ref,
    decline_code = excluded.decline_code, redirect_url = excluded.redirect_url,
    updated_at = excluded.updated_at
"""
_INSERT_ENTRY = """
INSERT INTO timeline (id, order_id, at, kind, from_state, to_state, cause, actor, note,
    request_id)
VALUES (:id, :order_id, :at, :kind, :from_state, :to_state, :cause, :actor, :note, :request_id)
"""
_INSERT_EVENT = """
INSERT INTO outbox (id, order_id, type, payload, created_at)
VALUES (:id, :order_id, :type, :payload, :created_at)
"""
#: The idempotency record's columns (its row claims its key with the order,
#: :meth:`SqlOrderRepository.add_claiming`; see ``storage.keys``).
_KEY_COLUMNS = (
    "scope", "key", "fingerprint", "order_id", "response_status", "response_body",
    "locked_until", "created_at",
)  # fmt: skip


def _from_json(table: str, columns: str, param: str, gate: str = "k") -> str:
    """Insert the rows the JSON array ``param`` holds, typed by ``table``'s row type, in
    their order, when ``gate`` has its row (``k``: the key was claimed; ``o``: the order
    was updated at its version)."""
    picked = ", ".join(f"r.{column.strip()}" for column in columns.split(","))
    return (
        f"INSERT INTO {table} ({columns}) SELECT {picked} FROM {gate}, "
        f"json_populate_recordset(NULL::{table}, :{param}::json) WITH ORDINALITY AS r "
        "ORDER BY r.ordinality"
    )


def _columns(insert: str) -> str:
    """The column list of an ``INSERT ... (columns) VALUES`` statement."""
    return " ".join(insert.split("(", 1)[1].split(")", 1)[0].split())


#: A new order with everything it holds and the idempotency record claiming its key, in
#: one statement (PostgreSQL): each table's rows go as one JSON parameter, and nothing is
#: inserted when the key is taken (``k`` is then empty). Foreign keys are checked when the
#: statement ends, so the order's rows may reference the order inserted beside them.
_ADD_CLAIMING = f"""
WITH k AS (
    INSERT INTO idempotency_keys ({", ".join(_KEY_COLUMNS)})
    SELECT {", ".join(f"r.{c}" for c in _KEY_COLUMNS)}
    FROM json_populate_record(NULL::idempotency_keys, :key::json) AS r
    ON CONFLICT (scope, key) DO NOTHING
    RETURNING key
), o AS ({_from_json("orders", _columns(_INSERT_ORDER), "order")}
), l AS ({_from_json("order_lines", _columns(_INSERT_LINE), "lines")}
), a AS ({_from_json("payment_attempts", _columns(_UPSERT_ATTEMPT), "attempts")}
), t AS ({_from_json("timeline", _columns(_INSERT_ENTRY), "entries")}
), e AS ({_from_json("outbox", _columns(_INSERT_EVENT), "events")}
)
SELECT key FROM k
"""
_UPDATE_ORDER = """
UPDATE orders SET state = :state, flag_reason = :flag_reason,
    payment_method = :payment_method, checks = :checks, last_checked_at = :last_checked_at,
    next_check_at = :next_check_at, updated_at = :updated_at, livemode = :livemode,
    version = version + 1
WHERE id = :id AND version = :version
"""
#: An order's save (:meth:`SqlOrderRepository.save`) in one statement (PostgreSQL): its row
#: updated if it is still at the version it was read at (``o`` is empty otherwise, and
#: nothing else is written), its attempts upserted and its new entries and events inserted,
#: each table's rows as one JSON parameter; ``{answer}`` completes the request it answers.
_SAVE_ALONE = f"""
WITH o AS ({_UPDATE_ORDER.strip()} RETURNING id
), a AS ({_from_json("payment_attempts", _columns(_UPSERT_ATTEMPT), "attempts", "o")}
    {_UPSERT_ATTEMPT[_UPSERT_ATTEMPT.index("ON CONFLICT") :].strip()}
), t AS ({_from_json("timeline", _columns(_INSERT_ENTRY), "entries", "o")}
), e AS ({_from_json("outbox", _columns(_INSERT_EVENT), "events", "o")}
){{answer}}
SELECT id FROM o
"""
#: The final answer of the request the save answers, stored with it (``storage.keys``).
_ANSWERED = """, k AS (
    UPDATE idempotency_keys SET order_id = o.id, response_status = :answer_status,
        response_body = :answer_body, locked_until = NULL
    FROM o WHERE scope = :answer_scope AND key = :answer_key
)"""
_SAVE_ALONE_BARE = _SAVE_ALONE.format(answer="")
_SAVE_ALONE_ANSWERING = _SAVE_ALONE.format(answer=_ANSWERED)


class ConcurrentUpdate(StorageError):
    """The order changed since it was loaded; reload and try again."""


class SqlOrderRepository:
    """Orders in SQLite or PostgreSQL."""

    def __init__(
        self,
        conn: Connection,
        *,
        lock_clause: str,
        skip_locked: str = "",
        one_statement: bool = False,
    ) -> None:
        self._conn = conn
        self._lock = lock_clause
        self._skip_locked = skip_locked
        #: Whether a new order and its key's claim go in one statement (PostgreSQL).
        self._one_statement = one_statement
        #: Orders this transaction holds row-locked (``get(for_update=True)`` with a lock
        #: clause), with the version they had when locked and after its own saves.
        self._locked: dict[str, int] = {}

    async def add(self, order: Order) -> None:
        """Insert the order and everything it holds: sent with the commit where the driver
        can (nothing here is read back); a merchant reference another order holds raises
        :class:`DuplicateMerchantReference` (from here or from the commit)."""
        async with self._conn.at_commit(_duplicate_reference(order)):
            await self._conn.execute(_INSERT_ORDER, _order_row(order))
            await self._conn.executemany(_INSERT_LINE, _line_rows(order))
            if order.attempts:
                await self._conn.executemany(
                    _UPSERT_ATTEMPT, [_attempt_row(a) for a in order.attempts]
                )
            await save_flags(self._conn, order.id, order.flags)
            await save_refunds(self._conn, order.refunds)
            await self._flush(order)

    def adds_claiming(self, order: Order) -> bool:
        """Whether :meth:`add_claiming` takes ``order``: on PostgreSQL, an order holding no
        flag or refund yet (its payment attempts go with it)."""
        return self._one_statement and not (order.flags or order.refunds)

    async def add_claiming(self, order: Order, key: Row) -> bool:
        """Insert the idempotency record ``key`` (its row) unless its key is taken and, with
        it, the new ``order`` as :meth:`add` does, in one statement sent alone
        (:meth:`Connection.fetchall_alone`: the transaction takes no other write); whether
        the key was claimed (nothing is stored when it was not)."""
        claimed = await self._conn.fetchall_alone(
            _ADD_CLAIMING,
            {
                "key": orjson.dumps(key).decode(),
                "order": orjson.dumps([_order_row(order)]).decode(),
                "lines": orjson.dumps(_line_rows(order)).decode(),
                "attempts": orjson.dumps([_attempt_row(a) for a in order.attempts]).decode(),
                "entries": orjson.dumps([_entry_row(e) for e in order.new_entries]).decode(),
                "events": orjson.dumps([_event_row(e) for e in order.new_events]).decode(),
            },
            meaning=_duplicate_reference(order),
        )
        order.new_entries.clear()
        order.new_events.clear()
        return bool(claimed)

    async def get(self, order_id: str, *, for_update: bool = False) -> Order | None:
        lock = self._lock if for_update else ""
        of = {"id": order_id}
        # one round trip: the order (locked first, so its rows below cannot change) and
        # what it holds
        rows, lines, attempts, flags, refunds = await self._conn.fetch_each(
            [
                (f"SELECT * FROM orders WHERE id = :id{lock}", of),
                ("SELECT * FROM order_lines WHERE order_id = :id ORDER BY position", of),
                ("SELECT * FROM payment_attempts WHERE order_id = :id ORDER BY seq", of),
                (FLAGS_OF_ORDER, of),
                (REFUNDS_OF_ORDER, of),
            ]
        )
        if not rows:
            return None
        order = _order(rows[0], lines)
        order.attempts = [_attempt(a) for a in attempts]
        order.flags = flags_from(flags)
        order.refunds = refunds_from(refunds)
        if for_update and self._lock:
            self._locked[order.id] = order.version
        return order

    async def lock_current(self, order: Order) -> bool:
        rows = await self._conn.fetchall(
            f"SELECT version FROM orders WHERE id = :id{self._lock}", {"id": order.id}
        )
        if not rows or rows[0]["version"] != order.version:
            return False
        if self._lock:  # locked at its version: its save can go with the commit (see save)
            self._locked[order.id] = order.version
        return True

    async def attempts(self, order_id: str) -> list[PaymentAttempt]:
        rows = await self._conn.fetchall(
            "SELECT * FROM payment_attempts WHERE order_id = :id ORDER BY seq", {"id": order_id}
        )
        return [_attempt(row) for row in rows]

    async def lock_many(self, order_ids: Sequence[str]) -> list[Order]:
        if not order_ids:
            return []
        ids = {f"id{i}": order_id for i, order_id in enumerate(dict.fromkeys(order_ids))}
        names = ", ".join(f":{name}" for name in ids)
        rows = await self._conn.fetchall(
            f"SELECT * FROM orders WHERE id IN ({names}) ORDER BY id{self._lock}", ids
        )
        found = {order.id: order for order in await self._complete(rows)}
        if self._lock:  # locked here: their saves can go with the commit (see save)
            self._locked.update((order.id, order.version) for order in found.values())
        return [found[order_id] for order_id in ids.values() if order_id in found]

    async def claim_waiting(self, limit: int) -> list[Order]:
        rows = await self._conn.fetchall(
            "SELECT * FROM orders WHERE state = 'received' AND payment_method IS NOT NULL "
            f"ORDER BY created_at, id LIMIT :limit{self._skip_locked}",
            {"limit": limit},
        )
        return await self._complete(rows)

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
        rows = await claim_due(
            self._conn,
            states,
            now=now,
            first_due_before=first_due_before,
            owner=owner,
            until=until,
            limit=limit,
            skip_locked=self._skip_locked,
            returning="*",
        )
        return await self._complete(sorted(rows, key=lambda row: str(row["id"])))

    async def _complete(self, rows: list[Row]) -> list[Order]:
        """The orders of ``rows`` with their lines, attempts, flags and refunds (four queries,
        sent together)."""
        if not rows:
            return []
        order_ids = [str(row["id"]) for row in rows]
        ids = {f"id{i}": order_id for i, order_id in enumerate(order_ids)}
        names = ", ".join(f":{name}" for name in ids)
        line_rows, attempt_rows, flag_rows, refund_rows = await self._conn.fetch_each(
            [
                (
                    f"SELECT * FROM order_lines WHERE order_id IN ({names}) "
                    "ORDER BY order_id, position",
                    ids,
                ),
                (
                    f"SELECT * FROM payment_attempts WHERE order_id IN ({names}) "
                    "ORDER BY order_id, seq",
                    ids,
                ),
                flags_query(order_ids),
                refunds_query(order_ids),
            ]
        )
        lines: dict[str, list[Row]] = {}
        for line in line_rows:
            lines.setdefault(line["order_id"], []).append(line)
        attempts: dict[str, list[PaymentAttempt]] = {}
        for a in attempt_rows:
            attempts.setdefault(a["order_id"], []).append(_attempt(a))
        flags, refunds = flags_by_order(flag_rows), refunds_by_order(refund_rows)
        orders: list[Order] = []
        for row in rows:
            order = _order(row, lines.get(row["id"], []))
            order.attempts = attempts.get(order.id, [])
            order.flags = flags.get(order.id, [])
            order.refunds = refunds.get(order.id, [])
            orders.append(order)
        return orders

    async def find_by_reference(self, merchant_reference: str) -> str | None:
        row = await self._conn.fetchone(
            "SELECT id FROM orders WHERE merchant_reference = :ref", {"ref": merchant_reference}
        )
        return str(row["id"]) if row else None

    async def save(self, order: Order) -> None:
        """The order's row and everything it holds. An order this transaction locked, at
        the version it locked (nobody else can have changed it since): sent with the commit
        (no round trip of its own). Any other: one round trip, the row checked against the
        version it was loaded at once the batch's answers are in (a failed check rolls back
        with the transaction)."""
        if self._locked.get(order.id) == order.version:
            async with self._conn.at_commit(_refund_taken(order)):
                await self._conn.execute(_UPDATE_ORDER, _update_row(order))
                await self._write_held(order)
            order.version += 1
            self._locked[order.id] = order.version
            return
        try:
            async with self._conn.batch():
                changed = await self._conn.execute_counted(_UPDATE_ORDER, _update_row(order))
                await self._write_held(order)
        except UniqueViolation as exc:
            raise _refund_taken(order)(exc) or exc from exc
        if changed() != 1:
            raise ConcurrentUpdate(f"order {order.id} changed since it was loaded")
        order.version += 1

    async def _write_held(self, order: Order) -> None:
        """What the order holds: attempts, flags, refunds, new timeline entries and events."""
        if order.attempts:
            await self._conn.executemany(_UPSERT_ATTEMPT, [_attempt_row(a) for a in order.attempts])
        await save_flags(self._conn, order.id, order.flags)
        await save_refunds(self._conn, order.refunds)
        await self._flush(order)

    def saves_alone(self, order: Order) -> bool:
        return self._one_statement and not (order.flags or order.refunds)

    async def save_alone(self, order: Order, answer: FinalAnswer | None = None) -> bool:
        params: dict[str, Any] = {
            **_update_row(order),
            "attempts": orjson.dumps([_attempt_row(a) for a in order.attempts]).decode(),
            "entries": orjson.dumps([_entry_row(e) for e in order.new_entries]).decode(),
            "events": orjson.dumps([_event_row(e) for e in order.new_events]).decode(),
        }
        if answer is not None:
            params.update(
                answer_scope=answer.scope,
                answer_key=answer.key,
                answer_status=answer.status,
                answer_body=answer.body.decode(),
            )
        saved = await self._conn.fetchall_alone(
            _SAVE_ALONE_ANSWERING if answer is not None else _SAVE_ALONE_BARE, params
        )
        if not saved:
            return False
        order.version += 1
        order.new_entries.clear()
        order.new_events.clear()
        return True

    async def save_many(self, orders: Sequence[Order]) -> None:
        if not orders:
            return
        changed = await self._conn.executemany(_UPDATE_ORDER, [_update_row(o) for o in orders])
        if changed != len(orders):
            ids = ", ".join(order.id for order in orders)
            raise ConcurrentUpdate(f"one of the orders {ids} changed since it was loaded")
        for order in orders:
            order.version += 1
        attempts = [_attempt_row(a) for order in orders for a in order.attempts]
        entries = [_entry_row(e) for order in orders for e in order.new_entries]
        events = [_event_row(e) for order in orders for e in order.new_events]
        async with self._conn.batch():  # one round trip for the rest
            if attempts:
                await self._conn.executemany(_UPSERT_ATTEMPT, attempts)
            for order in orders:
                await save_flags(self._conn, order.id, order.flags)
            refunds = [refund for order in orders for refund in order.refunds]
            if refunds:
                await save_refunds(self._conn, refunds)
            if entries:
                await self._conn.executemany(_INSERT_ENTRY, entries)
            if events:
                await self._conn.executemany(_INSERT_EVENT, events)
        for order in orders:
            order.new_entries.clear()
            order.new_events.clear()

    async def pending_refunds(self, *, updated_before: datetime, limit: int) -> list[str]:
        return await pending_refunds(self._conn, updated_before=updated_before, limit=limit)

    async def search(self, query: OrderQuery) -> list[Order]:
        where, params = _filters(query)
        rows = await self._conn.fetchall(
            f"SELECT * FROM orders{where} ORDER BY created_at DESC, id DESC LIMIT :limit",
            {**params, "limit": query.limit},
        )
        if not rows:
            return []
        ids = {f"id{i}": row["id"] for i, row in enumerate(rows)}
        names = ", ".join(f":{name}" for name in ids)
        lines = await self._conn.fetchall(
            f"SELECT * FROM order_lines WHERE order_id IN ({names}) ORDER BY order_id, position",
            ids,
        )
        by_order: dict[str, list[Row]] = {}
        for line in lines:
            by_order.setdefault(line["order_id"], []).append(line)
        flags = await load_flags(self._conn, [str(row["id"]) for row in rows])
        found = [_order(row, by_order.get(row["id"], [])) for row in rows]
        for order in found:
            order.flags = flags.get(order.id, [])
        return found

    async def in_state(
        self, state: OrderState, *, updated_before: datetime, limit: int
    ) -> list[str]:
        rows = await self._conn.fetchall(
            "SELECT id FROM orders WHERE state = :state AND updated_at < :before "
            "ORDER BY updated_at, id LIMIT :limit",
            {"state": str(state), "before": updated_before, "limit": limit},
        )
        return [str(row["id"]) for row in rows]

    async def changed_in_state(
        self,
        state: OrderState,
        *,
        since: datetime,
        after: tuple[datetime, str] | None,
        limit: int,
    ) -> list[tuple[datetime, str]]:
        cursor = after or (since, "")
        rows = await self._conn.fetchall(
            "SELECT updated_at, id FROM orders WHERE state = :state AND updated_at >= :since "
            "AND (updated_at > :at OR (updated_at = :at AND id > :id)) "
            "ORDER BY updated_at, id LIMIT :limit",
            {"state": str(state), "since": since, "at": cursor[0], "id": cursor[1], "limit": limit},
        )
        return [(must_datetime(row["updated_at"]), str(row["id"])) for row in rows]

    async def waiting_for_payment(self, limit: int) -> list[str]:
        rows = await self._conn.fetchall(
            "SELECT id FROM orders WHERE state = 'received' AND payment_method IS NOT NULL "
            "ORDER BY created_at, id LIMIT :limit",
            {"limit": limit},
        )
        return [str(row["id"]) for row in rows]

    async def timeline(self, order_id: str) -> list[TimelineEntry]:
        rows = await self._conn.fetchall(
            "SELECT * FROM timeline WHERE order_id = :id ORDER BY seq", {"id": order_id}
        )
        return [_entry(row) for row in rows]

    async def events(self, order_id: str) -> list[OutboxEvent]:
        rows = await self._conn.fetchall(
            "SELECT * FROM outbox WHERE order_id = :id ORDER BY seq", {"id": order_id}
        )
        return [event_from_row(row) for row in rows]

    async def _flush(self, order: Order) -> None:
        if order.new_entries:
            await self._conn.executemany(_INSERT_ENTRY, [_entry_row(e) for e in order.new_entries])
        if order.new_events:
            await self._conn.executemany(_INSERT_EVENT, [_event_row(e) for e in order.new_events])
        order.new_entries.clear()
        order.new_events.clear()


def _refund_taken(order: Order) -> Meaning:
    """What a unique violation means while ``order`` is saved: a refund under a request key
    another refund holds is a concurrent update."""

    def meaning(exc: UniqueViolation) -> Exception | None:
        if not order.refunds or REFUND_REQUEST_UNIQUE not in exc.constraint:
            return None
        return ConcurrentUpdate(f"order {order.id}: a refund for this request exists")

    return meaning


def _duplicate_reference(order: Order) -> Meaning:
    """What a unique violation means while ``order`` is inserted."""

    def meaning(exc: UniqueViolation) -> Exception | None:
        if "merchant_reference" not in exc.constraint:
            return None
        # the holder is looked up by the caller, after this transaction rolled back
        return DuplicateMerchantReference(order.merchant_reference or "", "")

    return meaning


def _filters(query: OrderQuery) -> tuple[str, dict[str, Any]]:
    clauses: list[str] = []
    params: dict[str, Any] = {}
    if query.state is not None:
        clauses.append("state = :state")
        params["state"] = str(query.state)
    if query.created_after is not None:
        clauses.append("created_at >= :after")
        params["after"] = query.created_after
    if query.created_before is not None:
        clauses.append("created_at < :before")
        params["before"] = query.created_before
    if query.cursor is not None:
        clauses.append("(created_at < :c_at OR (created_at = :c_at AND id < :c_id))")
        params["c_at"], params["c_id"] = query.cursor
    if query.flagged:
        clauses.append(HAS_OPEN_FLAG)
    if query.stuck_since is not None:
        stuck = ", ".join(f"'{state}'" for state in sorted(STUCK_STATES))
        clauses.append(f"state IN ({stuck}) AND updated_at < :stuck")
        params["stuck"] = query.stuck_since
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params


def _order_row(order: Order) -> dict[str, Any]:
    customer, address = order.customer, order.customer.shipping_address
    return {
        "id": order.id,
        "merchant_reference": order.merchant_reference,
        "state": str(order.state),
        "currency": order.currency,
        "amount_total": order.total.amount,
        "customer_email": customer.email,
        "customer_name": customer.name,
        "customer_phone": customer.phone,
        "ship_line1": address.line1,
        "ship_line2": address.line2,
        "ship_city": address.city,
        "ship_postal_code": address.postal_code,
        "ship_country": address.country,
        "locale": order.locale,
        "status_token": order.status_token,
        "flag_reason": order.flag_reason,
        "payment_method": order.payment_method,
        "checks": order.checks,
        "last_checked_at": order.last_checked_at,
        "next_check_at": order.next_check_at,
        "version": order.version,
        "created_at": order.created_at,
        "updated_at": order.updated_at,
        "livemode": order.livemode,
    }


def _update_row(order: Order) -> dict[str, Any]:
    return {
        "id": order.id,
        "state": str(order.state),
        "flag_reason": order.flag_reason,
        "payment_method": order.payment_method,
        "checks": order.checks,
        "last_checked_at": order.last_checked_at,
        "next_check_at": order.next_check_at,
        "updated_at": order.updated_at,
        "livemode": order.livemode,
        "version": order.version,
    }


def _line_rows(order: Order) -> list[dict[str, Any]]:
    return [
        {
            "order_id": order.id,
            "position": i,
            "sku": line.sku,
            "name": line.name,
            "quantity": line.quantity,
            "unit_amount": line.unit_amount,
        }
        for i, line in enumerate(order.lines)
    ]


def _order(row: Row, lines: list[Row]) -> Order:
    address = Address(
        line1=row["ship_line1"],
        line2=row["ship_line2"],
        city=row["ship_city"],
        postal_code=row["ship_postal_code"],
        country=row["ship_country"],
    )
    customer = Customer(
        email=row["customer_email"],
        name=row["customer_name"],
        phone=row["customer_phone"],
        shipping_address=address,
    )
    return Order(
        id=row["id"],
        state=OrderState(row["state"]),
        currency=row["currency"],
        lines=tuple(
            OrderLine(
                sku=li["sku"],
                name=li["name"],
                quantity=li["quantity"],
                unit_amount=li["unit_amount"],
            )
            for li in lines
        ),
        customer=customer,
        status_token=row["status_token"],
        created_at=must_datetime(row["created_at"]),
        updated_at=must_datetime(row["updated_at"]),
        merchant_reference=row["merchant_reference"],
        locale=row["locale"],
        payment_method=row["payment_method"],
        checks=row["checks"],
        last_checked_at=to_datetime(row["last_checked_at"]),
        next_check_at=to_datetime(row["next_check_at"]),
        livemode=bool(row["livemode"]),
        version=row["version"],
    )


def _attempt_row(attempt: PaymentAttempt) -> dict[str, Any]:
    return {
        "id": attempt.id,
        "order_id": attempt.order_id,
        "seq": attempt.seq,
        "provider": attempt.provider,
        "method": attempt.method,
        "state": str(attempt.state),
        "amount": attempt.amount,
        "currency": attempt.currency,
        "idempotency_key": attempt.idempotency_key,
        "provider_ref": attempt.provider_ref,
        "decline_code": attempt.decline_code,
        "redirect_url": attempt.redirect_url,
        "created_at": attempt.created_at,
        "updated_at": attempt.updated_at,
    }


def _attempt(row: Row) -> PaymentAttempt:
    return PaymentAttempt(
        id=row["id"],
        order_id=row["order_id"],
        seq=row["seq"],
        provider=row["provider"],
        method=row["method"],
        amount=row["amount"],
        currency=row["currency"],
        idempotency_key=row["idempotency_key"],
        created_at=must_datetime(row["created_at"]),
        updated_at=must_datetime(row["updated_at"]),
        state=AttemptState(row["state"]),
        provider_ref=row["provider_ref"],
        decline_code=row["decline_code"],
        redirect_url=row["redirect_url"],
    )


def _entry_row(entry: TimelineEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "order_id": entry.order_id,
        "at": entry.at,
        "kind": str(entry.kind),
        "from_state": None if entry.from_state is None else str(entry.from_state),
        "to_state": str(entry.to_state),
        "cause": str(entry.cause),
        "actor": entry.actor,
        "note": entry.note,
        "request_id": entry.request_id or current_request_id(),
    }


def _entry(row: Row) -> TimelineEntry:
    return TimelineEntry(
        id=row["id"],
        order_id=row["order_id"],
        at=must_datetime(row["at"]),
        kind=EntryKind(row["kind"]),
        from_state=None if row["from_state"] is None else OrderState(row["from_state"]),
        to_state=OrderState(row["to_state"]),
        cause=Cause(row["cause"]),
        note=row["note"],
        actor=row["actor"],
        request_id=row["request_id"],
    )


def _event_row(event: OutboxEvent) -> dict[str, Any]:
    return {
        "id": event.id,
        "order_id": event.order_id,
        "type": str(event.type),
        "payload": orjson.dumps(event.payload).decode(),
        "created_at": event.at,
    }


def event_from_row(row: Row) -> OutboxEvent:
    """An outbox event from its ``outbox`` row (shared with the relay's storage)."""
    return OutboxEvent(
        id=row["id"],
        order_id=row["order_id"],
        type=EventType(row["type"]),
        at=must_datetime(row["created_at"]),
        payload=orjson.loads(row["payload"]),
    )

"""Fill a PostgreSQL database with N realistic orders, for measuring cost as data grows.

``python bench/datagen.py --url postgresql://postgres@127.0.0.1/og_growth --orders 1000000
--fresh`` drops and recreates the database, migrates it with orderguard's own migrations,
then loads every table an order touches with ``COPY``:

* ``orders`` placed over two years (more recently, more of them), each in a state drawn
  from a realistic distribution: nearly every order older than two hours is finished
  (paid, cancelled, refunded, an abandoned decline, a very few still unresolved and
  flagged for review); the last two hours hold the orders in motion (received, pending,
  waiting on 3-D Secure, unknown, with their janitor bookkeeping, some due, some stuck);
* ``order_lines``, ``payment_attempts`` (one per charge, two after a decline and a retry),
  ``timeline`` (one entry per move), ``outbox`` (one event per state entered that emits
  one) with the ``stream`` sink's ``outbox_deliveries`` and ``outbox_attempts`` (delivered
  but for the last minutes' events and a few dead letters), ``webhook_events`` (the
  provider's answer for each charge, processed but for the newest and a few failing),
  ``refunds`` of the refunded orders, open review flags of the unresolved orders, and
  ``idempotency_keys`` of the last two days' requests (prune has a day of them to delete).

This is a benchmark tool, not part of orderguard: it writes rows straight into the tables
(so it must follow the schema and the domain's shapes; ``tests/integration/
test_datagen.py`` reads a generated database back through the storage and the API). For
speed it drops the loaded tables' indexes and constraints, loads with triggers off
(``session_replication_role = replica``: no per-row foreign-key checks), then rebuilds
exactly the definitions it dropped and ANALYZEs. Python generates on one core while
PostgreSQL ingests on the other. Deterministic for a given ``--seed`` and ``--now``.
"""

from __future__ import annotations

import argparse
import math
import queue
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import psycopg

#: The tables loaded, in foreign-key order.
TABLES: dict[str, tuple[str, ...]] = {
    "orders": (
        "id", "merchant_reference", "state", "currency", "amount_total", "customer_email",
        "customer_name", "customer_phone", "ship_line1", "ship_line2", "ship_city",
        "ship_postal_code", "ship_country", "locale", "status_token", "flag_reason", "version",
        "created_at", "updated_at", "payment_method", "checks", "last_checked_at",
        "next_check_at", "livemode",
    ),
    "order_lines": ("order_id", "position", "sku", "name", "quantity", "unit_amount"),
    "payment_attempts": (
        "id", "order_id", "seq", "provider", "method", "state", "amount", "currency",
        "idempotency_key", "provider_ref", "decline_code", "redirect_url", "created_at",
        "updated_at",
    ),
    "timeline": (
        "id", "order_id", "at", "kind", "from_state", "to_state", "cause", "actor", "note",
        "request_id",
    ),
    "outbox": ("id", "order_id", "type", "payload", "created_at"),
    "outbox_deliveries": (
        "event_id", "sink", "order_id", "event_seq", "state", "attempts", "next_attempt_at",
        "last_error", "delivered_at", "dead_at",
    ),
    "outbox_attempts": ("event_id", "sink", "at", "outcome", "error", "relay", "duration_ms"),
    "webhook_events": (
        "id", "provider", "event_id", "type", "headers", "body", "received_at", "order_id",
        "processed_at", "attempts", "last_error", "next_attempt_at",
    ),
    "refunds": (
        "id", "order_id", "attempt_id", "amount", "currency", "reason", "requester",
        "request_key", "state", "provider_ref", "failure_reason", "created_at", "updated_at",
    ),
    "order_flags": ("id", "order_id", "position", "reason", "detail", "raised_by", "raised_at"),
    "idempotency_keys": (
        "scope", "key", "fingerprint", "order_id", "response_status", "response_body",
        "created_at",
    ),
}  # fmt: skip

#: Share of each state among orders older than a day: finished, as the janitor cancels
#: orders left unpaid for a day; a very few stay unresolved, flagged for support.
OLD_STATES: tuple[tuple[str, float], ...] = (
    ("paid", 0.84),
    ("cancelled", 0.1149),
    ("refunded", 0.045),
    ("payment_unknown", 0.0001),
)
#: Share of each state among orders between two hours and a day old.
DAY_STATES: tuple[tuple[str, float], ...] = (
    ("paid", 0.84),
    ("cancelled", 0.08),
    ("refunded", 0.005),
    ("payment_failed", 0.07),
    ("received", 0.004),
    ("payment_unknown", 0.001),
)
#: Share of each state among the last two hours' orders (the ones in motion).
RECENT_STATES: tuple[tuple[str, float], ...] = (
    ("received", 0.03),
    ("payment_pending", 0.04),
    ("action_required", 0.04),
    ("payment_unknown", 0.01),
    ("payment_failed", 0.08),
    ("paid", 0.74),
    ("cancelled", 0.06),
)
#: How far back orders go, and what counts as recent.
SPAN = timedelta(days=730)
RECENT = timedelta(hours=2)
DAY = timedelta(days=1)
SINK = "stream"
PROVIDER = "stripe"
_EVENT = {
    "received": "order.received",
    "action_required": "order.action_required",
    "paid": "order.paid",
    "payment_failed": "order.payment_failed",
    "payment_unknown": "order.payment_unknown",
    "refunded": "order.refunded",
    "cancelled": "order.cancelled",
}
_ATTEMPT = {
    "payment_pending": "pending",
    "action_required": "action_required",
    "payment_unknown": "unknown",
    "payment_failed": "failed",
    "paid": "succeeded",
    "refunded": "refunded",
}
_HOOK = {
    "paid": "payment_intent.succeeded",
    "refunded": "payment_intent.succeeded",
    "payment_failed": "payment_intent.payment_failed",
    "action_required": "payment_intent.requires_action",
}
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
#: Every 10-bit value as its two Crockford base-32 characters (ULIDs encoded a pair at a time).
_PAIRS = [high + low for high in _CROCKFORD for low in _CROCKFORD]
_SHIFTS = tuple(range(120, -1, -10))
_CITIES = (
    ("Berlin", "10115", "DE", "de-DE", "EUR"), ("Paris", "75002", "FR", "fr-FR", "EUR"),
    ("London", "EC1A 1BB", "GB", "en-GB", "GBP"), ("Shanghai", "200000", "CN", "zh-CN", "CNY"),
    ("New York", "10001", "US", "en-US", "USD"), ("Madrid", "28001", "ES", "es-ES", "EUR"),
)  # fmt: skip
_PRODUCTS = (("TEE-01", "T-shirt", 1900), ("MUG-02", "Mug", 1200), ("CAP-03", "Cap", 2400),
             ("BAG-04", "Tote bag", 1500), ("HOOD-05", "Hoodie", 4900))  # fmt: skip


@dataclass
class Counts:
    """Rows written per table, and orders per state (what the tests check against)."""

    rows: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TABLES, 0))
    states: dict[str, int] = field(default_factory=dict)


def ts(epoch_us: int) -> str:
    """A timestamptz literal for COPY (microseconds since the epoch, UTC)."""
    seconds, micros = divmod(epoch_us, 1_000_000)
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(seconds)) + f".{micros:06d}+00"


class Ids:
    """Time-ordered ULID identifiers (``ord_01J...``, as ``domain.ids``), from a seeded RNG."""

    def __init__(self, rng: random.Random) -> None:
        self._bits = rng.getrandbits

    def new(self, prefix: str, epoch_us: int) -> str:
        value = ((epoch_us // 1000) << 80) | self._bits(80)
        pairs = _PAIRS  # 26 characters of 5 bits: 13 pairs of 10 bits, most significant first
        return prefix + "_" + "".join([pairs[(value >> shift) & 1023] for shift in _SHIFTS])


def placed_at(index: int, total: int, start_us: int, span_us: int) -> int:
    """When order ``index`` of ``total`` was placed: the rate doubles over the span (so the
    newest days have twice the orders of the oldest), orders in time order."""
    fraction = (index + 0.5) / total
    return start_us + int(span_us * (math.sqrt(1 + 3 * fraction) - 1))


def _pick(rng: random.Random, table: tuple[tuple[str, float], ...]) -> str:
    roll, total = rng.random(), 0.0
    for state, share in table:
        total += share
        if roll < total:
            return state
    return table[-1][0]


class Generator:
    """Turns order numbers into COPY lines for every table (one order at a time)."""

    def __init__(self, total: int, *, now: datetime, seed: int) -> None:
        self.total = total
        self.now_us = int(now.timestamp() * 1_000_000)
        self.span_us = int(SPAN.total_seconds() * 1_000_000)
        self.start_us = self.now_us - self.span_us
        self.rng = random.Random(seed)
        self.ids = Ids(self.rng)
        self.counts = Counts()
        self.outbox_seq = 0
        self.customers = max(total // 3, 1)
        #: The first order number generated (the ones before are skipped).
        self.first = 0

    def first_of_last_day(self) -> int:
        """The number of the first order placed in the last day (binary search)."""
        since = self.now_us - int(DAY.total_seconds() * 1_000_000)
        low, high = 0, self.total
        while low < high:
            mid = (low + high) // 2
            if placed_at(mid, self.total, self.start_us, self.span_us) < since:
                low = mid + 1
            else:
                high = mid
        return low

    def chunk(self, first: int, last: int) -> dict[str, list[str]]:
        """COPY lines of orders ``first`` to ``last - 1``, per table."""
        out: dict[str, list[str]] = {name: [] for name in TABLES}
        for index in range(first, last):
            self.order(index, out)
        for name, lines in out.items():
            self.counts.rows[name] += len(lines)
        return out

    def order(self, index: int, out: dict[str, list[str]]) -> None:
        """Every row of order ``index``: the order, its lines, attempts, history, events."""
        rng, now = self.rng, self.now_us
        created = placed_at(index, self.total, self.start_us, self.span_us)
        age = timedelta(microseconds=now - created)
        recent = age < RECENT
        state = _pick(rng, RECENT_STATES if recent else DAY_STATES if age < DAY else OLD_STATES)
        self.counts.states[state] = self.counts.states.get(state, 0) + 1
        order_id = self.ids.new("ord", created)
        city, postal, country, locale, currency = _CITIES[index % len(_CITIES)]
        lines = [_PRODUCTS[rng.randrange(len(_PRODUCTS))] for _ in range(1 + (rng.random() < 0.3))]
        quantities = [1 + (rng.random() < 0.2) for _ in lines]
        total = sum(p[2] * q for p, q in zip(lines, quantities, strict=True))
        for position, ((sku, name, price), qty) in enumerate(zip(lines, quantities, strict=True)):
            out["order_lines"].append(f"{order_id}\t{position}\t{sku}\t{name}\t{qty}\t{price}")
        moved = created + rng.randrange(2_000_000, 90_000_000)  # the provider's answer
        if recent:
            moved = min(moved, now - 1_000_000)
        updated = self._updated(state, created, moved)
        history = self._history(state, created, moved, updated)
        attempts = self._attempts(order_id, state, total, currency, created, moved, updated, out)
        checks, last_checked, next_check = self._janitor(state, updated)
        flag = None
        if state == "payment_unknown" and age > RECENT:
            flag = "payment outcome still unresolved"
            out["order_flags"].append(
                f"{self.ids.new('flg', updated)}\t{order_id}\t0\tpayment_unresolved\t"
                f"no answer after every recheck\tjanitor\t{ts(updated)}"
            )
        customer = rng.randrange(self.customers)
        out["orders"].append(
            "\t".join((
                order_id, f"SO-{index:010d}", state, currency, str(total),
                f"shopper{customer}@example.com", f"Shopper {customer}",
                "\\N" if customer % 4 else f"+4930{customer:08d}",
                f"{1 + customer % 200} Main Street",
                "\\N", city, postal, country, locale, self.ids.new("tok", created)[4:].lower(),
                flag or "\\N", str(len(history)), ts(created), ts(updated),
                "\\N" if state != "received" or rng.random() < 0.5 else "card",
                str(checks), last_checked, next_check, "t" if index % 10 else "f",
            ))
        )  # fmt: skip
        self._timeline(order_id, history, out)
        self._events(order_id, state, total, currency, history, out)
        if attempts and state not in ("received",):
            self._webhook(order_id, state, attempts[-1], moved, out)
        if now - created < 2 * 86_400_000_000:
            key = self.ids.new("req", created)
            out["idempotency_keys"].append(
                f"api:key_merchant\t{key}\t{rng.getrandbits(128):032x}\t{order_id}\t201\t"
                f'{{"id": "{order_id}"}}\t{ts(created)}'
            )

    def _updated(self, state: str, created: int, moved: int) -> int:
        if state == "received":
            return created
        if state == "refunded":
            return moved + self.rng.randrange(86_400_000_000, 20 * 86_400_000_000)
        if state == "cancelled":
            return moved + self.rng.randrange(60_000_000, 3_600_000_000)
        return moved

    def _history(self, state: str, created: int, moved: int, updated: int) -> list[tuple]:
        """(at, from, to, cause) for each move of the order."""
        steps: list[tuple[int, str | None, str, str]] = [(created, None, "received", "api")]
        if state == "received":
            return steps
        if state == "cancelled" and self.rng.random() < 0.5:
            return [*steps, (updated, "received", "cancelled", "shopper")]
        steps.append((created + 500_000, "received", "payment_pending", "api"))
        if state == "payment_pending":
            return steps
        final = "payment_failed" if state == "cancelled" else state
        final = "paid" if state == "refunded" else final
        steps.append((moved, "payment_pending", final, "webhook"))
        if state == "refunded":
            steps.append((updated, "paid", "refunded", "api"))
        elif state == "cancelled":
            steps.append((updated, "payment_failed", "cancelled", "janitor"))
        return steps

    def _attempts(
        self,
        order_id: str,
        state: str,
        amount: int,
        currency: str,
        created: int,
        moved: int,
        updated: int,
        out: dict[str, list[str]],
    ) -> list[tuple[str, str]]:
        """The order's payment attempts as (id, provider ref); writes their rows."""
        if state == "received" or (state == "cancelled" and self.rng.random() < 0.5):
            return []
        final = {"cancelled": "failed"}.get(state, _ATTEMPT.get(state, "failed"))
        retried = final == "succeeded" and self.rng.random() < 0.05
        made = []
        for seq, attempt_state in enumerate(["failed", final] if retried else [final]):
            at = created + 500_000 + seq * 60_000_000
            attempt_id = self.ids.new("pay", at)
            ref = self.ids.new("pi", at)
            declined = "card_declined" if attempt_state == "failed" else "\\N"
            redirect = (
                f"https://hooks.stripe.com/3d_secure/{ref}"
                if attempt_state == "action_required"
                else "\\N"
            )
            done = updated if attempt_state == "refunded" else max(moved, at)
            out["payment_attempts"].append(
                f"{attempt_id}\t{order_id}\t{seq + 1}\t{PROVIDER}\tcard\t{attempt_state}\t"
                f"{amount}\t"
                f"{currency}\torderguard-{attempt_id}\t{ref}\t{declined}\t{redirect}\t"
                f"{ts(at)}\t{ts(done)}"
            )
            made.append((attempt_id, ref))
        if state == "refunded":
            attempt_id = made[-1][0]
            out["refunds"].append(
                f"{self.ids.new('rfd', updated)}\t{order_id}\t{attempt_id}\t{amount}\t{currency}\t"
                f"requested_by_customer\tkey_merchant\t{self.ids.new('req', updated)}\tsucceeded\t"
                f"{self.ids.new('re', updated)}\t\\N\t{ts(updated)}\t{ts(updated)}"
            )
        return made

    def _janitor(self, state: str, updated: int) -> tuple[int, str, str]:
        """checks, last_checked_at and next_check_at of an order (watched states only)."""
        if state not in ("payment_pending", "payment_unknown", "action_required"):
            return 0, "\\N", "\\N"
        checks = self.rng.randrange(0, 6)
        last = updated + checks * 30_000_000
        due = last + 10_000_000 * (2**checks)
        return checks, ts(last), (ts(due) if checks else "\\N")

    def _timeline(self, order_id: str, history: list[tuple], out: dict[str, list[str]]) -> None:
        for at, source, target, cause in history:
            out["timeline"].append(
                f"{self.ids.new('tle', at)}\t{order_id}\t{ts(at)}\tstate_changed\t"
                f"{source or chr(92) + 'N'}\t{target}\t{cause}\t\\N\t\t{self.ids.new('req', at)}"
            )

    def _events(
        self,
        order_id: str,
        state: str,
        amount: int,
        currency: str,
        history: list[tuple],
        out: dict[str, list[str]],
    ) -> None:
        for at, _, target, _ in history:
            kind = _EVENT.get(target)
            if kind is None:
                continue
            self.outbox_seq += 1
            event_id = self.ids.new("evt", at)
            payload = (
                f'{{"order_id": "{order_id}", "state": "{target}", "amount_total": {amount}, '
                f'"currency": "{currency}", "merchant_reference": null, "flag_reason": null}}'
            )
            out["outbox"].append(f"{event_id}\t{order_id}\t{kind}\t{payload}\t{ts(at)}")
            self._delivery(event_id, order_id, at, out)

    def _delivery(self, event_id: str, order_id: str, at: int, out: dict[str, list[str]]) -> None:
        """The stream sink's delivery of one event: delivered, pending (newest) or dead."""
        seq, fresh = self.outbox_seq, self.now_us - at < 120_000_000
        if fresh:
            state, delivered, dead, error = "pending", "\\N", "\\N", "\\N"
        elif self.rng.random() < 0.0002:
            state, delivered, dead, error = "dead", "\\N", ts(at + 86_400_000_000), "timeout"
        else:
            state, delivered, dead, error = "delivered", ts(at + 150_000), "\\N", "\\N"
        tries = 0 if fresh else 1
        out["outbox_deliveries"].append(
            f"{event_id}\t{SINK}\t{order_id}\t{seq}\t{state}\t{tries}\t{ts(at)}\t{error}\t"
            f"{delivered}\t{dead}"
        )
        if tries:
            outcome = "delivered" if state == "delivered" else "failed"
            out["outbox_attempts"].append(
                f"{event_id}\t{SINK}\t{ts(at + 150_000)}\t{outcome}\t{error}\trelay-1\t3"
            )

    def _webhook(
        self, order_id: str, state: str, attempt: tuple[str, str], moved: int, out: dict
    ) -> None:
        kind = _HOOK.get(state)
        if kind is None:
            return
        hook_id, event_id = self.ids.new("whk", moved), self.ids.new("evt", moved)
        fresh = self.now_us - moved < 60_000_000
        failing = not fresh and self.rng.random() < 0.0001
        processed = "\\N" if fresh or failing else ts(moved + 40_000)
        body = (
            f'{{"id": "{event_id}", "type": "{kind}", "data": {{"object": {{"id": "{attempt[1]}",'
            f' "object": "payment_intent", "metadata": {{"order_id": "{order_id}"}}}}}}}}'
        )
        out["webhook_events"].append(
            f'{hook_id}\t{PROVIDER}\t{event_id}\t{kind}\t{{"stripe-signature": "t=0"}}\t{body}\t'
            f"{ts(moved)}\t{order_id}\t{processed}\t{0 if fresh else 1}\t"
            f"{'no such order' if failing else chr(92) + 'N'}\t"
            f"{ts(moved + 600_000_000) if failing else (ts(moved) if fresh else chr(92) + 'N')}"
        )


def generate(
    url: str,
    total: int,
    *,
    now: datetime | None = None,
    seed: int = 1,
    chunk: int = 20_000,
    log: Callable[[str], None] = print,
    last_day_only: bool = False,
) -> Counts:
    """Load ``total`` orders into the migrated, empty database at ``url``; with
    ``last_day_only``, only those of them placed in the last day (the same work in motion,
    none of the history: the baseline of ``bench/growth.py``)."""
    generator = Generator(total, now=now or datetime.now(UTC), seed=seed)
    generator.first = generator.first_of_last_day() if last_day_only else 0
    with psycopg.connect(url, autocommit=True) as conn:
        saved = _drop_indexes(conn)
        conn.execute("SET session_replication_role = replica")
        _load(conn, generator, chunk, log)
        log("rebuilding indexes and constraints")
        conn.execute("SET maintenance_work_mem = '512MB'")
        for statement in saved:
            conn.execute(statement)
        conn.execute("SET session_replication_role = origin")
        conn.execute(
            "INSERT INTO outbox_sinks (sink, since, floor_seq) VALUES (%s, %s, %s)",
            (SINK, datetime.fromtimestamp(generator.start_us / 1e6, UTC), generator.outbox_seq),
        )
        _retally(conn)
        log("vacuum analyze")
        conn.execute("VACUUM ANALYZE")
    return generator.counts


def _load(conn: psycopg.Connection, generator: Generator, chunk: int, log: Callable) -> None:
    """Generate chunks on this thread, COPY them on another."""
    pending: queue.Queue[dict[str, list[str]] | None] = queue.Queue(maxsize=3)
    failure: list[BaseException] = []

    def writer() -> None:
        try:
            while (batch := pending.get()) is not None:
                for name, lines in batch.items():
                    if lines:
                        _copy(conn, name, lines)
        except BaseException as exc:  # reported on the generating thread
            failure.append(exc)
            while pending.get() is not None:
                pass

    thread = threading.Thread(target=writer, name="copy")
    thread.start()
    started = time.monotonic()
    try:
        for first in range(generator.first, generator.total, chunk):
            if failure:
                break
            pending.put(generator.chunk(first, min(first + chunk, generator.total)))
            done = min(first + chunk, generator.total)
            if (done - generator.first) % (chunk * 25) == 0 or done == generator.total:
                log(f"{done:,} orders in {time.monotonic() - started:.0f} s")
    finally:
        pending.put(None)
        thread.join()
    if failure:
        raise failure[0]


def _copy(conn: psycopg.Connection, table: str, lines: list[str]) -> None:
    columns = ", ".join(TABLES[table])
    with conn.cursor() as cur, cur.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
        copy.write("\n".join(lines) + "\n")


def _drop_indexes(conn: psycopg.Connection) -> list[str]:
    """Drop the loaded tables' constraints (but NOT NULL and CHECK) and indexes; return the
    statements that recreate exactly them, in an order that works (keys before references)."""
    tables = list(TABLES)
    constraints = conn.execute(
        "SELECT c.conrelid::regclass::text, c.conname, pg_get_constraintdef(c.oid), c.contype "
        "FROM pg_constraint c WHERE c.conrelid = ANY(%s::regclass[]) AND c.contype IN "
        "('p', 'u', 'f') ORDER BY c.contype = 'f', c.conname",
        (tables,),
    ).fetchall()
    indexes = conn.execute(
        "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' "
        "AND tablename = ANY(%s) AND indexname NOT IN (SELECT conname FROM pg_constraint) "
        "ORDER BY indexname",
        (tables,),
    ).fetchall()
    # referencing tables outside the loaded set (e.g. reconciliation) keep their keys:
    # their foreign keys to our primary keys are dropped and restored too
    outside = conn.execute(
        "SELECT c.conrelid::regclass::text, c.conname, pg_get_constraintdef(c.oid) "
        "FROM pg_constraint c WHERE c.confrelid = ANY(%s::regclass[]) AND c.contype = 'f' "
        "AND NOT c.conrelid = ANY(%s::regclass[])",
        (tables, tables),
    ).fetchall()
    for table, name, _ in outside:
        conn.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
    for table, name, _, _ in reversed(constraints):
        conn.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
    for name, _ in indexes:
        conn.execute(f'DROP INDEX "{name}"')
    restore = [f'ALTER TABLE {t} ADD CONSTRAINT "{n}" {d}' for t, n, d, _ in constraints]
    restore += [definition for _, definition in indexes]
    restore += [f'ALTER TABLE {t} ADD CONSTRAINT "{n}" {d}' for t, n, d in outside]
    return restore


def _retally(conn: psycopg.Connection) -> None:
    """Recount the webhook ledger (migration 15): COPY ran with its trigger off."""
    if conn.execute("SELECT to_regclass('webhook_tallies')").fetchone() == (None,):
        return
    conn.execute("DELETE FROM webhook_tallies")
    conn.execute(
        "INSERT INTO webhook_tallies (provider, received, processed, attempts) "
        "SELECT provider, COUNT(*), COUNT(processed_at), COALESCE(SUM(attempts), 0) "
        "FROM webhook_events GROUP BY provider"
    )


def create_database(admin_url: str, name: str, *, fresh: bool) -> None:
    """Create database ``name`` (dropping it first with ``fresh``)."""
    with psycopg.connect(admin_url, autocommit=True) as admin:
        if fresh:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
        if exists.fetchone() is None:
            admin.execute(f'CREATE DATABASE "{name}"')


def migrate_database(url: str) -> None:
    """Apply orderguard's own migrations."""
    import asyncio

    from orderguard.storage import migrate
    from orderguard.storage.connect import connect

    async def run() -> None:
        db = await connect(url, pool_size=1)
        try:
            await migrate.migrate(db)
        finally:
            await db.close()

    asyncio.run(run())


def iter_states(counts: Counts) -> Iterator[tuple[str, int]]:
    """Orders per state, largest first."""
    return iter(sorted(counts.states.items(), key=lambda kv: -kv[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", required=True, help="postgresql://... of the database to fill")
    parser.add_argument("--orders", type=int, required=True, help="how many orders")
    parser.add_argument("--fresh", action="store_true", help="drop and recreate the database")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--now", type=datetime.fromisoformat, default=None, help="ISO time")
    parser.add_argument(
        "--last-day-only", action="store_true", help="only the last day's orders of --orders"
    )
    args = parser.parse_args()
    admin_url, name = args.url.rsplit("/", 1)[0] + "/postgres", args.url.rsplit("/", 1)[1]
    started = time.monotonic()

    def log(message: str) -> None:
        print(f"[{time.monotonic() - started:7.1f}s] {message}", flush=True)

    create_database(admin_url, name, fresh=args.fresh)
    migrate_database(args.url)
    counts = generate(
        args.url, args.orders, now=args.now, seed=args.seed, log=log,
        last_day_only=args.last_day_only,
    )  # fmt: skip
    for table, rows in counts.rows.items():
        log(f"{table}: {rows:,} rows")
    log("states: " + ", ".join(f"{s} {n:,}" for s, n in iter_states(counts)))


if __name__ == "__main__":
    main()

"""The demo's oracle: the provider's ledger against the simulator's own record, then the
database.

Nothing here trusts the service's own answers or bookkeeping first. The simulator records
every checkout it made (:class:`~orderguard.demo.shoppers.Checkout`: the cart it sent, its
keys, every answer, what the shopper was shown); charges and refunds come from the sandbox's
``/ledger``. Each succeeded charge is matched to a checkout by the customer email the
checkout sent (its own; the provider keeps it with the charge, in the copy of the order that
travels in its metadata) and its merchant reference, and held against that checkout's cart;
only then is the database read (orders, attempts, timelines, straight from its tables), and
its orders are counted per checkout through the checkout each names (its merchant
reference, else the one its email names). The invariants:

* ``acknowledged_orders_lost``: an order the service answered 201 for is not stored;
* ``checkouts_with_two_orders``: one checkout (one Idempotency-Key) got two order ids, or
  has two orders in the database (counted through :attr:`StoredOrder.checkout`: its merchant
  reference, else the checkout its shopper's email names, so a second order the shopper
  never saw counts too);
* ``orders_charged_twice``: an order, or a checkout, the provider charged more than once
  (counted even when a sweep refunded the extra charge later: the shopper saw two charges);
* ``charges_without_an_order``: money held (charged, not refunded) for no order, or for
  an order that is not paid;
* ``orders_stuck_unflagged``: an order neither settled nor flagged for review;
* ``paid_amount_differs``: a charge whose amount or currency is not its checkout's cart
  (the charge is named); a paid order whose charge is not exactly its total, whose total is
  not its checkout's cart, or that holds no charge at all;
* ``timeline_disagrees_with_state``: an order whose state is not the one its timeline's last
  state change led to (G7), or that has no state change on its timeline at all.
* ``checkouts_refused_unexplained``: a checkout any of whose tries (even one a retry then
  got through) was refused with a ``409``, a ``5xx`` or no answer for a cause the demo
  cannot explain (:data:`EXPLAINED`: a ``503`` counts as explained only when it announced an
  outage, with its problem type and ``Retry-After``); every cause is counted in the report
  (``refusals``, ``gave_up_by_cause``). It watches the service's answers on the way;
  ``shoppers_misled`` watches where each checkout ended, so both are kept.
* ``refunded_amount_differs``: an order whose refunds that succeeded at the provider do not
  add up to what the back office was told was refunded (the simulator's own record: every
  refund answered as made must be in the ledger, and nothing beyond what it asked), or to the
  ``amount_refunded`` orderguard stored (its succeeded refunds), or whose state disagrees
  (``refunded`` exactly when the whole paid amount was given back).
* ``charges_for_unknown_checkouts``: a succeeded charge (kept or refunded) that is not one
  of this run's checkouts: no customer of theirs, a merchant reference other than the one
  that checkout sent, a checkout that never sent a cart, or an order of another checkout;
* ``shoppers_misled``: a checkout that did not end where its shopper was told, or met an
  error nothing explains (see :mod:`orderguard.demo.told`); named ``reference: why``.

The ledger holds amounts in the provider's units: they are converted to ISO minor units
(:func:`minor_units`) before they are compared with anything of ours.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from orderguard.demo import told
from orderguard.demo.shoppers import Checkout, RefundAsk, ShopperStats
from orderguard.domain.money import Money
from orderguard.providers import registry
from orderguard.storage.database import Database, must_datetime, transaction

#: States after which nothing more happens to an order without someone acting.
SETTLED = frozenset({"paid", "payment_failed", "cancelled", "refunded"})
INVARIANTS = (
    "acknowledged_orders_lost",
    "checkouts_with_two_orders",
    "orders_charged_twice",
    "charges_without_an_order",
    "orders_stuck_unflagged",
    "paid_amount_differs",
    "timeline_disagrees_with_state",
    "refunded_amount_differs",
    "checkouts_refused_unexplained",
    "charges_for_unknown_checkouts",
    "shoppers_misled",
)
#: Why a checkout's request may rightly go unanswered or be refused with a 409 (the causes
#: ``shoppers._submit`` notes), and what explains each.
EXPLAINED = {
    "client_timeout": "the storm held the answer past the browser's patience",
    "transport": "the connection broke (the storm's latency, a busy server)",
    "http_429": "too many requests at once",
    "503 storage-unavailable": "the database was out of reach for now (announced, Retry-After)",
    "503 provider-unavailable": "every provider was out of reach for now (announced, Retry-After)",
    "409 request-in-flight": "a retry or a double click while the first request ran",
}
#: The metadata keys the copy of the order travels in, chunk by chunk (``og_snap_0``...).
SNAPSHOT_KEY = "og_snap_{}"
#: Every order (id, merchant reference) whose state is not the ``to_state`` of its
#: timeline's last state change, or that has none (G7). One statement, so the order and
#: its timeline are read at the same moment even while the service keeps working.
TIMELINE_DISAGREES = (
    "SELECT o.id, o.merchant_reference FROM orders o "
    "LEFT JOIN timeline t ON t.seq = (SELECT MAX(s.seq) FROM timeline s "
    "WHERE s.order_id = o.id AND s.kind = 'state_changed') "
    "WHERE t.to_state IS NULL OR t.to_state <> o.state"
)


#: The run's orders: by merchant reference, or (placed without one) by the shopper's email,
#: which names the checkout (``shoppers.checkout_email``).
_OF_THE_RUN = "(o.merchant_reference LIKE :prefix OR o.customer_email LIKE :mail)"


def minor_units(amount: int, currency: str) -> int:
    """A ledger amount (the provider's units) in the currency's ISO 4217 minor units."""
    return registry.test_kit().minor_units(amount, currency)


@dataclass
class StoredOrder:
    id: str
    reference: str | None
    state: str
    currency: str
    total: int
    #: The reason of its first open review flag; None when no flag is open.
    flag: str | None
    created_at: datetime
    updated_at: datetime
    #: When it reached the state it is in now (settled) or was flagged; None while open.
    resolved_at: datetime | None = None
    #: What made it settle: api (the first answer), webhook, janitor, sweep, shopper...
    resolved_by: str | None = None
    went_unknown: bool = False
    #: The reason of every review flag it ever had, open or cleared, oldest first.
    flags_ever: list[str] = field(default_factory=list)
    #: The reasons of its flags still open.
    flags_open: list[str] = field(default_factory=list)
    #: Its refunds in the ``refunds`` table, oldest first.
    refunds: list[StoredRefund] = field(default_factory=list)
    #: The checkout it was placed for, in lower case: its reference, else the one its
    #: email names (``shoppers.checkout_email``).
    checkout: str = ""

    @property
    def amount_refunded(self) -> int:
        """What orderguard stored as given back: its succeeded refunds."""
        return sum(r.amount for r in self.refunds if r.state == "succeeded")


@dataclass
class StoredRefund:
    """A row of the ``refunds`` table."""

    id: str
    amount: int
    currency: str
    state: str


@dataclass
class Snapshot:
    """The database's side, for the orders of one run."""

    orders: dict[str, StoredOrder]
    all_ids: set[str]
    sweep_findings: Counter[str]
    #: The run's orders whose state disagrees with their timeline (see TIMELINE_DISAGREES).
    timeline_disagrees: list[str] = field(default_factory=list)

    @property
    def open_unflagged(self) -> list[str]:
        return [o.id for o in self.orders.values() if o.state not in SETTLED and not o.flag]

    def unresolved(self, now: datetime, *, action_expiry: timedelta) -> list[str]:
        """Orders something will still happen to: open and unflagged, or waiting for the
        shopper's authentication less than ``action_expiry`` since they last changed (the
        worker's expiry cancels them then, counting from that change)."""
        return [
            o.id
            for o in self.orders.values()
            if (o.state not in SETTLED and not o.flag)
            or (o.state == "action_required" and now - o.updated_at < action_expiry)
            or any(r.state == "pending" for r in o.refunds)
        ]


async def snapshot(db: Database, reference_prefix: str) -> Snapshot:
    """The run's orders (by merchant reference, or by the checkout's own customer email when
    it sent no reference), their timelines, and the sweep's findings."""
    like = {"prefix": reference_prefix + "%", "mail": reference_prefix.lower() + "%"}
    async with transaction(db, write=False) as conn:
        # flags before orders: PostgreSQL reads each statement afresh, and a flag clears only
        # when its order settles, so an order read later is never older than its flags
        flags = await conn.fetchall(
            "SELECT f.order_id, f.reason, f.cleared_at FROM order_flags f "
            f"JOIN orders o ON o.id = f.order_id WHERE {_OF_THE_RUN} "
            "ORDER BY f.order_id, f.position",
            like,
        )
        rows = await conn.fetchall(
            "SELECT o.id, o.merchant_reference, o.customer_email, o.state, o.currency, "
            f"o.amount_total, o.created_at, o.updated_at FROM orders o WHERE {_OF_THE_RUN}",
            like,
        )
        entries = await conn.fetchall(
            "SELECT t.order_id, t.at, t.kind, t.to_state, t.cause FROM timeline t "
            f"JOIN orders o ON o.id = t.order_id WHERE {_OF_THE_RUN} "
            "ORDER BY t.seq",
            like,
        )
        refunds = await conn.fetchall(
            "SELECT r.id, r.order_id, r.amount, r.currency, r.state FROM refunds r "
            f"JOIN orders o ON o.id = r.order_id WHERE {_OF_THE_RUN} "
            "ORDER BY r.created_at, r.id",
            like,
        )
        ids = {r["id"] for r in await conn.fetchall("SELECT id FROM orders")}
        findings = await conn.fetchall(
            "SELECT kind, resolution, COUNT(*) AS n FROM sweep_findings GROUP BY kind, resolution"
        )
        disagree = await conn.fetchall(TIMELINE_DISAGREES)
    orders = {
        r["id"]: StoredOrder(
            id=r["id"],
            reference=r["merchant_reference"],
            state=r["state"],
            currency=r["currency"],
            total=int(r["amount_total"]),
            flag=None,
            created_at=must_datetime(r["created_at"]),
            updated_at=must_datetime(r["updated_at"]),
            checkout=(r["merchant_reference"] or str(r["customer_email"]).split("@")[0]).lower(),
        )
        for r in rows
    }
    for f in flags:
        flagged = orders[f["order_id"]]  # orders are never deleted: it was read after
        flagged.flags_ever.append(str(f["reason"]))
        if f["cleared_at"] is None:
            flagged.flags_open.append(str(f["reason"]))
            flagged.flag = flagged.flag or str(f["reason"])
    for r in refunds:
        refunded = orders.get(r["order_id"])
        if refunded is not None:  # else placed after the orders were read
            refunded.refunds.append(
                StoredRefund(str(r["id"]), int(r["amount"]), str(r["currency"]), str(r["state"]))
            )
    for e in entries:
        order = orders.get(e["order_id"])
        if order is None:
            continue  # placed after the orders were read: the next snapshot has it
        if e["to_state"] == "payment_unknown":
            order.went_unknown = True
        settles = e["kind"] == "state_changed" and e["to_state"] == order.state
        if (settles and order.state in SETTLED) or (e["kind"] == "flagged" and order.flag):
            if order.resolved_at is None or e["kind"] == "state_changed":
                order.resolved_at = must_datetime(e["at"])
                order.resolved_by = e["cause"]
    return Snapshot(
        orders=orders,
        all_ids=ids,
        sweep_findings=Counter({f"{f['kind']}:{f['resolution']}": int(f["n"]) for f in findings}),
        timeline_disagrees=[str(r["id"]) for r in disagree if str(r["id"]) in orders],
    )


@dataclass
class Report:
    """Everything ``orderguard demo`` prints, and ``--json`` writes."""

    seed: int
    database: str
    checkouts: int
    behaviours: dict[str, int]
    acknowledged: int
    gave_up: int
    client_troubles: dict[str, int]
    final_states: dict[str, int]
    #: Orders with a flag still open, by reason: what a person still has to look at.
    flagged: dict[str, int]
    #: Orders that were ever flagged, by reason (most cleared themselves once answered).
    flagged_ever: dict[str, int]
    faults: dict[str, int]
    recoveries: dict[str, int]
    resolution_s: dict[str, float]
    invariants: dict[str, list[str]]
    placed_in_s: float = 0.0
    resolved_in_s: float = 0.0
    orders_per_s: float = 0.0
    #: Orders that had at least one review flag during the run, open or cleared.
    orders_ever_flagged: int = 0
    schedule: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not any(self.invariants.values())

    @property
    def flags_still_open(self) -> int:
        """Flags a person still has to look at (one per order and reason)."""
        return sum(self.flagged.values())

    def as_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "seed": self.seed,
            "database": self.database,
            "checkouts": self.checkouts,
            "behaviours": self.behaviours,
            "acknowledged": self.acknowledged,
            "gave_up": self.gave_up,
            "client_troubles": self.client_troubles,
            "final_states": self.final_states,
            "flagged": self.flagged,
            "flagged_ever": self.flagged_ever,
            "orders_ever_flagged": self.orders_ever_flagged,
            "flags_still_open": self.flags_still_open,
            "faults_injected": self.faults,
            "recoveries": self.recoveries,
            "resolution_seconds": self.resolution_s,
            "invariants": {name: len(ids) for name, ids in self.invariants.items()},
            "violations": {name: ids[:20] for name, ids in self.invariants.items() if ids},
            "placed_in_s": round(self.placed_in_s, 2),
            "resolved_in_s": round(self.resolved_in_s, 2),
            "orders_per_s": round(self.orders_per_s, 1),
            "schedule": self.schedule,
            **self.extra,
        }


def build_report(
    shoppers: ShopperStats,
    db: Snapshot,
    book: dict[str, list[dict[str, Any]]],
    faults: dict[str, int],
    *,
    seed: int,
    database: str,
    placed_in_s: float = 0.0,
    resolved_in_s: float = 0.0,
    schedule: dict[str, Any] | None = None,
    invariants: dict[str, list[str]] | None = None,
    owner: Owner | None = None,
) -> Report:
    """The report of one run, from the shoppers', the database's and the ledger's sides
    (``invariants`` when they were checked already, provider by provider)."""
    return Report(
        seed=seed,
        database=database,
        checkouts=len(shoppers.checkouts),
        behaviours=dict(shoppers.behaviours),
        acknowledged=len({o for c in shoppers.checkouts for o in c.acknowledged}),
        gave_up=sum(1 for c in shoppers.checkouts if c.gave_up),
        client_troubles=dict(shoppers.client_troubles),
        final_states=dict(Counter(o.state for o in db.orders.values())),
        flagged=dict(Counter(r for o in db.orders.values() for r in o.flags_open)),
        flagged_ever=dict(Counter(r for o in db.orders.values() for r in set(o.flags_ever))),
        faults=faults,
        recoveries=recoveries(shoppers, db, book),
        resolution_s=resolution_times(db),
        invariants=invariants if invariants is not None else check(shoppers, db, book),
        placed_in_s=placed_in_s,
        resolved_in_s=resolved_in_s,
        orders_per_s=len(shoppers.checkouts) / placed_in_s if placed_in_s else 0.0,
        schedule=schedule or {},
        orders_ever_flagged=sum(1 for o in db.orders.values() if o.flags_ever),
        extra={
            "charges": len(book.get("charges", [])),
            "refunds": len(book.get("refunds", [])),
            "back_office_refunds": refund_counts(shoppers, db),
            "checkouts_without_reference": sum(
                1 for c in shoppers.checkouts if not c.with_reference
            ),
            "refusals": dict(Counter(r for c in shoppers.checkouts for r in c.refusals)),
            "gave_up_by_cause": dict(
                Counter(
                    c.refusals[-1] if c.refusals else "?" for c in shoppers.checkouts if c.gave_up
                )
            ),
            "shoppers_told": dict(
                Counter(c.told or "nothing (no answer)" for c in shoppers.checkouts)
            ),
            "shopper_errors": sum(len(c.errors) for c in shoppers.checkouts),
            "charges_matched_to_checkouts": matched_charges(shoppers, book, owner),
        },
    )


def matched_charges(
    shoppers: ShopperStats, book: dict[str, list[dict[str, Any]]], owner: Owner | None = None
) -> int:
    """Succeeded charges of the ledger matched to a checkout of the run (``owner``, by
    default :func:`checkout_of`)."""
    find = owner or by_customer(shoppers)
    return sum(
        1 for c in book.get("charges", []) if c.get("status") == "succeeded" and find(c) is not None
    )


def refund_counts(shoppers: ShopperStats, db: Snapshot) -> dict[str, int]:
    """The back office's refunds: orders it refunded, requests asked (one per key), those it
    was told were made, repeated with the same key, refused or left unanswered; and the
    refunds orderguard stored as succeeded for the run's orders."""
    asks = shoppers.refund_asks
    return {
        "orders": len({a.order_id for a in asks}),
        "asked": len(asks),
        "made": sum(1 for a in asks if a.confirmed),
        "repeated_same_key": sum(a.repeats for a in asks),
        "refused": sum(1 for a in asks if a.trouble),
        "unanswered": sum(1 for a in asks if a.unanswered),
        "stored_succeeded": sum(
            1 for o in db.orders.values() for r in o.refunds if r.state == "succeeded"
        ),
    }


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


#: Who a charge of the ledger was made for: the run's checkout, or None (see
#: :func:`by_customer`, the card ledger's, and ``wallet_audit.by_order``, a wallet's).
Owner = Callable[[dict[str, Any]], "Checkout | None"]
#: More ways a checkout's shopper was misled, given the states its orders ended in.
Misled = Callable[[Checkout, list[str]], list[str]]


def check(
    shoppers: ShopperStats,
    db: Snapshot,
    book: dict[str, list[dict[str, Any]]],
    *,
    owner: Owner | None = None,
    misled: Misled | None = None,
) -> dict[str, list[str]]:
    """Each invariant with the ids that break it (empty lists when all hold): the ledger
    against the simulator's record first, then the database through that record.
    ``owner`` finds the checkout of a charge (by default by the customer it carries);
    ``misled`` adds what the shopper's own steps promise (a wallet shopper's)."""
    broken: dict[str, list[str]] = {name: [] for name in INVARIANTS}
    succeeded = [c for c in book.get("charges", []) if c.get("status") == "succeeded"]
    per_checkout = charges_per_checkout(
        shoppers, succeeded, broken, owner=owner or by_customer(shoppers)
    )
    orders_of = orders_per_checkout(shoppers, db)
    for checkout in shoppers.checkouts:
        in_db = orders_of.get(checkout.reference, [])
        for order_id in checkout.acknowledged:
            if order_id not in db.orders:
                broken["acknowledged_orders_lost"].append(order_id)
        if len(checkout.acknowledged) > 1:
            broken["checkouts_with_two_orders"].append(checkout.reference)
        elif len(in_db) > 1:  # a second order the shopper was never told of
            broken["checkouts_with_two_orders"].append(checkout.reference)
        seen = {o.id: o for o in in_db} | {
            i: db.orders[i] for i in checkout.acknowledged if i in db.orders
        }
        held_against_record(checkout, seen, per_checkout.get(checkout.reference, []), broken)
        finals = [o.state for o in seen.values()]
        broken["shoppers_misled"] += told.misled(checkout, finals)
        if misled is not None:
            broken["shoppers_misled"] += misled(checkout, finals)
    charged: dict[str, list[dict[str, Any]]] = {}
    for charge in succeeded:
        made_for = str((charge.get("metadata") or {}).get("order_id"))
        charged.setdefault(made_for, []).append(charge)
        remaining = int(charge["amount"]) - int(charge.get("amount_refunded") or 0)
        stored = db.orders.get(made_for)
        if remaining > 0 and (stored is None or stored.state != "paid"):
            if stored is not None or made_for not in db.all_ids:
                broken["charges_without_an_order"].append(str(charge["id"]))
    for order_id, charges in charged.items():
        if len(charges) > 1 and order_id in db.orders:
            broken["orders_charged_twice"].append(order_id)
    for order in db.orders.values():
        if order.state not in SETTLED and not order.flag:
            broken["orders_stuck_unflagged"].append(order.id)
        if order.state == "paid":
            kept = [
                c
                for c in charged.get(order.id, [])
                if int(c["amount"]) > int(c.get("amount_refunded") or 0)
            ]
            expected = (order.total, order.currency.lower())
            if not kept or any(
                (minor_units(int(c["amount"]), c["currency"]), c["currency"]) != expected
                for c in kept
            ):
                broken["paid_amount_differs"].append(order.id)
    broken["timeline_disagrees_with_state"] = list(db.timeline_disagrees)
    broken["refunded_amount_differs"] = refunds_differ(shoppers, db, book)
    broken["checkouts_refused_unexplained"] = [
        c.reference for c in shoppers.checkouts if any(r not in EXPLAINED for r in c.refusals)
    ]
    return {name: list(dict.fromkeys(ids)) for name, ids in broken.items()}


def by_customer(shoppers: ShopperStats) -> Owner:
    """A card charge's checkout: the one whose customer it carries (:func:`checkout_of`)."""
    checkouts = {email_of(c): c for c in shoppers.checkouts}
    return lambda charge: checkout_of(charge, checkouts)


def charges_per_checkout(
    shoppers: ShopperStats,
    succeeded: list[dict[str, Any]],
    broken: dict[str, list[str]],
    *,
    owner: Owner,
) -> dict[str, list[dict[str, Any]]]:
    """The ledger against the record alone: each succeeded charge matched to the checkout
    it was made for (``owner``; none: ``charges_for_unknown_checkouts``) and held against
    that checkout's cart (``paid_amount_differs``, naming the charge). The charges per
    checkout reference."""
    per_checkout: dict[str, list[dict[str, Any]]] = {}
    for charge in succeeded:
        checkout = owner(charge)
        if checkout is None or checkout.cart is None:
            broken["charges_for_unknown_checkouts"].append(str(charge["id"]))
            continue
        per_checkout.setdefault(checkout.reference, []).append(charge)
        cart = (checkout.cart.amount, checkout.cart.currency.lower())
        if (minor_units(int(charge["amount"]), charge["currency"]), charge["currency"]) != cart:
            broken["paid_amount_differs"].append(str(charge["id"]))
    return per_checkout


def held_against_record(
    checkout: Checkout,
    orders: dict[str, StoredOrder],
    charges: list[dict[str, Any]],
    broken: dict[str, list[str]],
) -> None:
    """The database's orders of ``checkout`` against its record: the checkout charged more
    than once (``orders_charged_twice``, naming its orders), a charge made for an order that
    is not the checkout's (``charges_for_unknown_checkouts``), a paid order whose stored
    total is not the cart the checkout sent (``paid_amount_differs``)."""
    if len(charges) > 1:
        owners = [str((c.get("metadata") or {}).get("order_id")) for c in charges]
        broken["orders_charged_twice"] += [o for o in owners if o in orders] or [checkout.reference]
    for charge in charges:
        if str((charge.get("metadata") or {}).get("order_id")) not in orders:
            broken["charges_for_unknown_checkouts"].append(str(charge["id"]))
    cart = checkout.cart
    for order in orders.values():
        if (
            cart
            and order.state == "paid"
            and (order.total, order.currency)
            != (
                cart.amount,
                cart.currency,
            )
        ):
            broken["paid_amount_differs"].append(order.id)


def orders_per_checkout(shoppers: ShopperStats, db: Snapshot) -> dict[str, list[StoredOrder]]:
    """The database's orders of each checkout (by reference), found through the checkout
    each order names (:attr:`StoredOrder.checkout`: its merchant reference, else the one its
    shopper's email names), whatever order ids the checkout was answered with."""
    by_checkout: dict[str, list[StoredOrder]] = {}
    for order in db.orders.values():
        by_checkout.setdefault(order.checkout, []).append(order)
    return {c.reference: by_checkout.get(c.reference.lower(), []) for c in shoppers.checkouts}


def email_of(checkout: Checkout) -> str:
    """The customer email the checkout sent (lower case), from its record."""
    return (checkout.cart.email if checkout.cart else checkout.email).lower()


@dataclass(frozen=True)
class ChargeCustomer:
    """Who a charge was made for, as the provider holds it."""

    email: str
    reference: str | None


def charge_customer(charge: dict[str, Any]) -> ChargeCustomer | None:
    """The customer email and merchant reference a charge carries: the provider keeps them
    with the charge in the copy of the order that travels in its metadata (chunks
    ``og_snap_0``, ``og_snap_1``...; read here without orderguard's code). None when the
    charge carries no readable copy."""
    metadata = charge.get("metadata") or {}
    chunks: list[str] = []
    while SNAPSHOT_KEY.format(len(chunks)) in metadata:
        chunks.append(str(metadata[SNAPSHOT_KEY.format(len(chunks))]))
    try:
        copy = json.loads("".join(chunks))
        email, reference = str(copy["cust"][0]).lower(), copy.get("ref")
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        return None
    return ChargeCustomer(email, None if reference is None else str(reference))


def checkout_of(charge: dict[str, Any], checkouts: dict[str, Checkout]) -> Checkout | None:
    """The run's checkout ``charge`` was made for (``checkouts`` by the email each sent): the
    one whose customer it carries, when it carries the merchant reference that checkout sent
    (or none, when it sent none). None when no checkout of the run is."""
    customer = charge_customer(charge)
    checkout = checkouts.get(customer.email) if customer else None
    if customer is None or checkout is None or checkout.cart is None:
        return None
    return checkout if customer.reference == checkout.cart.reference else None


def charge_owners(book: dict[str, list[dict[str, Any]]]) -> dict[str, str]:
    """The order each charge of the ledger was made for (its ``metadata.order_id``)."""
    return {
        str(c["id"]): str((c.get("metadata") or {}).get("order_id"))
        for c in book.get("charges", [])
    }


def ledger_refunded(book: dict[str, list[dict[str, Any]]]) -> dict[str, int]:
    """ISO minor units given back per order, by the ledger alone: its succeeded refunds,
    each counted for the order of the charge it refunds."""
    owners = charge_owners(book)
    refunded: Counter[str] = Counter()
    for refund in book.get("refunds", []):
        if refund.get("status") != "succeeded":
            continue
        owner = owners.get(str(refund.get("charge")), "")
        refunded[owner] += minor_units(int(refund["amount"]), str(refund["currency"]))
    return dict(refunded)


def refunds_differ(
    shoppers: ShopperStats, db: Snapshot, book: dict[str, list[dict[str, Any]]]
) -> list[str]:
    """Orders breaking ``refunded_amount_differs`` (see the module's docstring).

    First the ledger against the simulator's own record, per order it asked refunds of: the
    refunds it was told were made must all be there, and nothing more than it asked (a
    request left unanswered may or may not have been made; one key answered with two refund
    ids is two refunds). Then, for every order orderguard holds refunds of or holds paid or
    refunded, the ledger against the stored ``amount_refunded`` (a refund orderguard still
    holds pending may or may not be at the provider yet) and the state.
    """
    at_provider = ledger_refunded(book)
    broken: list[str] = []
    asked: dict[str, list[RefundAsk]] = {}
    for ask in shoppers.refund_asks:
        asked.setdefault(ask.order_id, []).append(ask)
    for order_id, asks in asked.items():
        told = sum(a.amount for a in asks if a.confirmed)
        open_ = sum(a.amount for a in asks if a.unanswered)
        made = at_provider.get(order_id, 0)
        if not told <= made <= told + open_ or any(len(a.refund_ids) > 1 for a in asks):
            broken.append(order_id)
    for order in db.orders.values():
        if order.id in broken or not (order.refunds or order.state in {"paid", "refunded"}):
            continue
        stored = order.amount_refunded
        # a refund still pending (its answer lost; sent again later) may be made or not yet
        pending = sum(r.amount for r in order.refunds if r.state == "pending")
        whole = stored >= order.total
        if (
            not stored <= at_provider.get(order.id, 0) <= stored + pending
            or stored > order.total
            or (order.state in {"paid", "refunded"} and (order.state == "refunded") != whole)
        ):
            broken.append(order.id)
    return broken


def recoveries(
    shoppers: ShopperStats, db: Snapshot, book: dict[str, list[dict[str, Any]]] | None = None
) -> dict[str, int]:
    """How outcomes were found out and fixed, by mechanism (every mechanism listed, even
    at zero, so a reader sees what did not have to act)."""
    settled_by = Counter(o.resolved_by for o in db.orders.values() if o.state in SETTLED)
    flagged_by = Counter(o.resolved_by for o in db.orders.values() if o.state not in SETTLED)
    return {
        "answered at once": settled_by["api"],
        "retry (same Idempotency-Key)": sum(1 for c in shoppers.checkouts if c.replays),
        "webhook": settled_by["webhook"],
        "janitor": settled_by["janitor"] + flagged_by["janitor"],
        "shopper back from 3-D Secure": settled_by["shopper"],
        "sweep": sum(n for k, n in db.sweep_findings.items() if not k.endswith(":refunded")),
        # money given back as a recovery (the sweep's), not the back office's own refunds
        "refund": _recovery_refunds(shoppers, book or {}),
        "unknown outcomes settled": sum(
            1 for o in db.orders.values() if o.went_unknown and o.state in SETTLED
        ),
    }


def _recovery_refunds(shoppers: ShopperStats, book: dict[str, list[dict[str, Any]]]) -> int:
    """Refunds in the ledger for orders the back office did not refund (theirs are counted
    apart, in ``back_office_refunds``)."""
    asked = {a.order_id for a in shoppers.refund_asks}
    owners = charge_owners(book)
    return sum(1 for r in book.get("refunds", []) if owners.get(str(r.get("charge"))) not in asked)


def resolution_times(db: Snapshot) -> dict[str, float]:
    times = [
        (o.resolved_at - o.created_at).total_seconds()
        for o in db.orders.values()
        if o.resolved_at is not None
    ]
    return {
        "p50": round(_percentile(times, 0.5), 3),
        "p99": round(_percentile(times, 0.99), 3),
        "max": round(max(times, default=0.0), 3),
    }


def amount_of(order: StoredOrder) -> str:
    return Money(order.total, order.currency).format()

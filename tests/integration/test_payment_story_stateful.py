"""Every way an order's payment story can unfold, as a hypothesis state machine on real
SQLite storage: orders placed (and placed again under their key), payments that succeed,
fail, need 3-D Secure, stay pending or end unknown (faults at the in-memory provider),
shoppers who pay again or authenticate, support cancelling, webhooks delivered in any
order (duplicated, late, out of order), rechecks, the janitor on an injected clock, and
the sweep of orphans and duplicates.

After every step the invariants are checked against the provider's own ledger (the
in-memory provider's payments and refunds) and the carts this test sent, never against
orderguard's numbers:

- orderguard charges an order at most once (a refunded charge still counts), and after a
  sweep no order keeps more than one charge;
- charged means paid or flagged — or still being found out (``payment_pending``,
  ``payment_unknown``, ``action_required``); once everything was rechecked and swept, only
  paid or flagged will do;
- paid means exactly one succeeded attempt, whose charge at the provider is the cart;
- state never moves backwards: every state change on the timeline is one of the moves
  written out below, each starts where the one before ended, and the timeline only grows;
- the timeline's last state change is the order's state (G7).

Refunds through the API are left out: they are being rebuilt (engineer ``refunds``); the
sweep's own refunds of extra charges are in.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import uuid
from collections import Counter
from collections.abc import Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any, TypeVar

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from orderguard.bootstrap import wire
from orderguard.config import Settings
from orderguard.domain.errors import (
    CancelNotAllowed,
    PaymentNotAllowed,
    ProviderUnreachable,
)
from orderguard.domain.events import Cause, EntryKind
from orderguard.domain.order import Order, OrderLine
from orderguard.domain.schedule import RecheckSchedule
from orderguard.domain.states import OrderState
from orderguard.providers.base import (
    ChargeRequest,
    PaymentOutcome,
    PaymentResult,
    ProviderError,
    ProviderOutcomeUnknown,
    ProviderRateLimited,
    ProviderRejected,
    ProviderServerError,
    ProviderUnavailable,
)
from orderguard.providers.memory import InMemoryProvider
from orderguard.providers.resilience import CircuitBreaker
from orderguard.services.idempotency import KeyedRequest
from orderguard.services.intake import PlaceOrder
from orderguard.services.janitor import Janitor
from orderguard.services.providers import Providers, ProviderSlot
from orderguard.services.snapshot import snapshot_metadata
from orderguard.storage.unit_of_work import SqlStorage
from tests.conftest import open_storage
from tests.factories import customer
from tests.state_moves import ORDER_MOVES

T = TypeVar("T")

VISA, DECLINED, THREE_DS = (
    "pm_card_visa",
    "pm_card_chargeDeclined",
    "pm_card_authenticationRequired",
)
METHODS = [VISA, DECLINED, THREE_DS]
LAGGING_SEARCH = "lagging search"
#: One fault for the provider's next call: (error, after its effect?), a search index that
#: lags behind writes, or none.
FAULTS: list[tuple[type[ProviderError], bool] | str | None] = [
    None,
    None,
    LAGGING_SEARCH,
    (ProviderUnavailable, False),  # not sent: the attempt stays pending
    (ProviderRateLimited, False),
    (ProviderRejected, False),
    (ProviderServerError, False),
    (ProviderServerError, True),  # charged, answer lost: unknown
    (ProviderOutcomeUnknown, True),
]
fault = st.sampled_from(FAULTS)

#: Every move of an order's state, as written out by hand in tests/state_moves.py (from the
#: product's state machine, not read from the code under test), but ``paid`` → ``refunded``:
#: no step of this test asks for a refund.
ALLOWED_MOVES: frozenset[tuple[str, str]] = ORDER_MOVES - {("paid", "refunded")}
#: States in which a charge may exist that orderguard has not found out about yet.
FINDING_OUT = frozenset({"payment_pending", "payment_unknown", "action_required"})
#: The refusals each step may meet because the rules say no; any other error fails.
PAY_AGAIN_REFUSED = (PaymentNotAllowed,)
CANCEL_REFUSED = (CancelNotAllowed, ProviderUnreachable)
#: The janitor's waits in this test: three rechecks 10 s apart in every watched state.
SCHEDULE = RecheckSchedule(
    {
        OrderState.PAYMENT_UNKNOWN: (timedelta(seconds=10),) * 3,
        OrderState.PAYMENT_PENDING: (timedelta(seconds=10),) * 3,
        OrderState.ACTION_REQUIRED: (timedelta(seconds=10),) * 3,
    }
)
#: The sweep looks at the charges of the last hour (every charge of one example).
SWEEP_WINDOW = timedelta(hours=1)


class LaggingSearch(InMemoryProvider):
    """Search finds nothing while ``lagging`` is set; everything else is exact."""

    lagging = False

    async def find_payments(self, order_id: str) -> list[PaymentResult]:
        return [] if self.lagging else await super().find_payments(order_id)


class Clock:
    """The janitor's clock, moved by the test."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


@dataclass(frozen=True)
class Cart:
    """What the shop sent for one order: the oracle for every amount."""

    amount: int
    currency: str


carts = st.tuples(st.integers(1, 3), st.integers(50, 50_000))


class PaymentStories(RuleBasedStateMachine):
    orders = Bundle("orders")

    def __init__(self, template: Path) -> None:
        super().__init__()
        self.folder = Path(tempfile.mkdtemp(dir=template.parent))
        shutil.copy(template, self.folder / "og.db")
        self.loop = asyncio.new_event_loop()
        self.storage: SqlStorage = self.run(open_storage(f"sqlite:///{self.folder / 'og.db'}"))
        self.provider = LaggingSearch(name="memory")
        breaker = CircuitBreaker(failure_threshold=10**6)  # the circuit is not under test
        providers = Providers([ProviderSlot(self.provider, breaker)])
        self.container = wire(Settings(public_url="https://shop.example"), self.storage, providers)
        self.clock = Clock()
        self.janitor = Janitor(
            self.storage, self.container.recheck, schedule=SCHEDULE, clock=self.clock
        )
        #: The cart of every order of ours (placed, or lost and charged), by order id.
        self.carts: dict[str, Cart] = {}
        self.commands: dict[str, PlaceOrder] = {}
        #: Orders charged at the provider but never stored (lost before their commit).
        self.lost: set[str] = set()
        #: Extra charges made at the provider behind orderguard's back, not swept since.
        self.unswept_extras: Counter[str] = Counter()
        #: The provider references of the charges this test made itself (lost and extra).
        self.planted: set[str] = set()
        #: Each order's state changes as last seen, to prove the timeline only grows.
        self.seen: dict[str, list[tuple[str | None, str]]] = {}

    # --- plumbing

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    def inject(self, chosen: object) -> None:
        self.provider.lagging = chosen == LAGGING_SEARCH
        if isinstance(chosen, tuple):
            error, after = chosen
            self.provider.fail_next(error("injected"), after_effect=after)

    def clear(self) -> None:
        self.provider._failures.clear()  # a fault not used must not leak into the next step
        self.provider.lagging = False

    async def load(self, order_id: str) -> Order | None:
        async with self.storage() as uow:
            return await uow.orders.get(order_id)

    def teardown(self) -> None:
        self.run(self.storage.close())
        self.loop.close()
        shutil.rmtree(self.folder, ignore_errors=True)

    # --- what shoppers, shops and providers do

    @rule(target=orders, method=st.sampled_from(METHODS), cart=carts, chosen=fault)
    def place(self, method: str, cart: tuple[int, int], chosen: object) -> str:
        quantity, unit = cart
        command = PlaceOrder(
            request=KeyedRequest("local", str(uuid.uuid4()), uuid.uuid4().hex),
            currency="EUR",
            customer=customer(),
            lines=[OrderLine("SKU", "Thing", quantity, unit)],
            payment_method=method,
        )
        self.inject(chosen)
        answer = self.run(self.container.intake.place(command))
        self.clear()
        self.carts[answer.order_id] = Cart(quantity * unit, "EUR")
        self.commands[answer.order_id] = command
        return answer.order_id

    @rule(order_id=orders, chosen=fault)
    def place_again_under_the_same_key(self, order_id: str, chosen: object) -> None:
        self.inject(chosen)
        answer = self.run(self.container.intake.place(self.commands[order_id]))
        self.clear()
        assert answer.order_id == order_id, "one key, one order (G2)"

    @rule(order_id=orders, method=st.sampled_from(METHODS), chosen=fault)
    def pay_again(self, order_id: str, method: str, chosen: object) -> None:
        before = self.run(self.load(order_id))
        assert before is not None
        request = KeyedRequest("local", str(uuid.uuid4()), uuid.uuid4().hex)
        self.inject(chosen)
        try:
            self.run(self.container.pay_again.pay(order_id, method, request))
        except PAY_AGAIN_REFUSED:
            # refused only when the rules say so: a declined order may always pay again
            assert before.state is not OrderState.PAYMENT_FAILED
        finally:
            self.clear()

    @rule(order_id=orders, approved=st.booleans())
    def shopper_authenticates(self, order_id: str, approved: bool) -> None:
        for payment in list(self.provider.payments.values()):
            if payment.request.order_id == order_id:
                self.provider.complete_action(payment.result.provider_ref or "", approved=approved)

    @rule(order_id=orders, chosen=fault)
    def support_cancels(self, order_id: str, chosen: object) -> None:
        self.inject(chosen)
        try:
            self.run(
                self.container.operations.cancel_order(
                    order_id, actor="support@shop", cause=Cause.SUPPORT
                )
            )
        except CANCEL_REFUSED:
            pass  # not cancellable in its state, or the provider could not be asked
        finally:
            self.clear()

    @precondition(lambda self: bool(self.provider.webhooks))
    @rule(pick=st.integers(min_value=0), deliveries=st.integers(1, 2))
    def a_webhook_arrives(self, pick: int, deliveries: int) -> None:
        """Any webhook the provider ever sent, in any order, once or twice in a row."""
        body, headers = self.provider.webhooks[pick % len(self.provider.webhooks)]
        for _ in range(deliveries):
            received = self.run(self.container.inbox.receive("memory", body, headers))
            if received.record_id is None:
                assert received.duplicate
                continue
            self.run(self.container.inbox.process(received.record_id))
            record = self.run(self._webhook(received.record_id))
            assert record.last_error is None, f"webhook {record.type} failed: {record.last_error}"
            assert record.processed_at is not None

    async def _webhook(self, record_id: str) -> Any:
        async with self.storage() as uow:
            return await uow.webhooks.get(record_id)

    @rule(order_id=orders, chosen=fault)
    def recheck(self, order_id: str, chosen: object) -> None:
        self.inject(chosen)
        try:
            self.run(self.container.recheck.order(order_id, cause=Cause.SUPPORT))
        finally:
            self.clear()

    @rule(chosen=fault)
    def janitor_round(self, chosen: object) -> None:
        self.clock.now += timedelta(seconds=11)
        self.inject(chosen)
        try:
            self.run(self.janitor.run_once(owner="w1"))
        finally:
            self.clear()

    @rule(chosen=fault)
    def sweep(self, chosen: object) -> None:
        self.inject(chosen)
        try:
            report = self.run(self.container.sweeper.sweep_last(SWEEP_WINDOW))
        finally:
            self.clear()
        if report.errors == 0:
            self.unswept_extras.clear()
            self.lost -= {o for o in self.lost if self.run(self.load(o)) is not None}

    @rule(cart=carts, with_snapshot=st.booleans())
    def an_order_is_lost_but_charged(self, cart: tuple[int, int], with_snapshot: bool) -> None:
        """The charge went through, the order never reached the database: an orphan."""
        quantity, unit = cart
        order = Order.place(
            currency="EUR",
            lines=[OrderLine("SKU", "Thing", quantity, unit)],
            customer=customer(),
            at=datetime.now(UTC),
        )
        attempt_id = f"pay_{uuid.uuid4().hex}"
        metadata = snapshot_metadata(order, attempt_id) if with_snapshot else {}
        self.run(self._charge(order.id, attempt_id, quantity * unit, metadata))
        self.carts[order.id] = Cart(quantity * unit, "EUR")
        self.lost.add(order.id)

    @rule(order_id=orders)
    def the_provider_charges_a_paid_order_again(self, order_id: str) -> None:
        """A second charge orderguard never asked for (G3's "nevertheless")."""
        order = self.run(self.load(order_id))
        assert order is not None
        if order.state is not OrderState.PAID:
            return
        amount = self.carts[order_id].amount
        self.run(self._charge(order_id, f"pay_{uuid.uuid4().hex}", amount, {}, extra=True))
        self.unswept_extras[order_id] += 1

    async def _charge(
        self,
        order_id: str,
        attempt_id: str,
        amount: int,
        metadata: dict[str, str],
        *,
        extra: bool = False,
    ) -> None:
        result = await self.provider.create_payment(
            ChargeRequest(
                attempt_id=attempt_id,
                order_id=order_id,
                amount=amount,
                currency="EUR",
                method=VISA,
                return_url="https://shop.example/return",
                idempotency_key=f"{'extra' if extra else 'lost'}-{uuid.uuid4()}",
                metadata=metadata,
            )
        )
        self.planted.add(result.provider_ref or "")

    @rule()
    def everything_is_rechecked_and_swept(self) -> None:
        """Recovery finishes what it can; then charged means paid or flagged, no less."""
        for order_id in list(self.commands):
            self.run(self.container.recheck.order(order_id, cause=Cause.JANITOR))
        report = self.run(self.container.sweeper.sweep_last(SWEEP_WINDOW))
        assert report.errors == 0
        self.unswept_extras.clear()
        self.lost -= {o for o in self.lost if self.run(self.load(o)) is not None}
        for order_id, charges in self.charges().items():
            kept = [c for c in charges if c.refunded < c.request.amount]
            order = self.run(self.load(order_id))
            if order is None:
                assert not kept, f"money kept for {order_id}, which was neither recovered"
                continue
            assert len(kept) <= 1, f"{order_id} keeps {len(kept)} charges after a sweep"
            assert order.state is OrderState.PAID or order.open_flags, (
                f"{order_id} is charged but {order.state} and not flagged after recovery"
            )

    # --- what must hold after every step

    def charges(self) -> dict[str, list[Any]]:
        """The provider's successful charges by order id, refunded or not."""
        found: dict[str, list[Any]] = {}
        for payment in self.provider.payments.values():
            if payment.result.outcome is PaymentOutcome.SUCCEEDED:
                found.setdefault(payment.request.order_id, []).append(payment)
        return found

    @invariant()
    def charged_at_most_once_and_only_for_our_orders(self) -> None:
        for order_id, charges in self.charges().items():
            assert order_id in self.carts, f"a charge for an order nobody placed: {order_id}"
            ours = [c for c in charges if c.result.provider_ref not in self.planted]
            assert len(ours) <= 1, f"orderguard charged {order_id} {len(ours)} times"
            kept = [c for c in charges if c.refunded < c.request.amount]
            assert len(kept) <= 1 + self.unswept_extras[order_id], (
                f"{order_id} keeps {len(kept)} charges though a sweep has run since"
            )
            for charge in charges:
                cart = self.carts[order_id]
                assert (charge.request.amount, charge.request.currency) == (
                    cart.amount,
                    cart.currency,
                ), f"{order_id} charged other than its cart"

    @invariant()
    def charged_means_paid_flagged_or_being_found_out(self) -> None:
        for order_id, charges in self.charges().items():
            if not any(c.refunded < c.request.amount for c in charges):
                continue
            order = self.run(self.load(order_id))
            if order is None:
                assert order_id in self.lost, f"money kept for {order_id}, which is not ours"
                continue
            assert (
                order.state is OrderState.PAID
                or order.open_flags
                or str(order.state) in FINDING_OUT
            ), f"{order_id} is charged but {order.state} and not flagged"

    @invariant()
    def paid_means_one_succeeded_attempt_charged_with_its_cart(self) -> None:
        for order_id in self.carts:
            order = self.run(self.load(order_id))
            if order is None or order.state is not OrderState.PAID:
                continue
            succeeded = [a for a in order.attempts if a.state == "succeeded"]
            assert len(succeeded) == 1, f"paid {order_id} has {len(succeeded)} succeeded attempts"
            [attempt] = succeeded
            payment = self.provider.payments.get(attempt.provider_ref or "")
            assert payment is not None, f"paid {order_id}: the provider has no such charge"
            assert payment.result.outcome is PaymentOutcome.SUCCEEDED
            cart = self.carts[order_id]
            assert (payment.request.amount, payment.request.currency) == (
                cart.amount,
                cart.currency,
            )
            assert payment.request.order_id == order_id

    @invariant()
    def state_moves_only_forward_and_the_timeline_ends_where_the_order_is(self) -> None:
        for order_id in self.carts:
            order, timeline = self.run(self._with_timeline(order_id))
            if order is None:
                continue
            changes = [
                (e.from_state and str(e.from_state), str(e.to_state))
                for e in timeline
                if e.kind is EntryKind.STATE_CHANGED
            ]
            assert changes and changes[0] == (None, "received"), changes
            for (_, reached), (source, target) in pairwise(changes):
                assert source == reached, f"{order_id}: a move from {source} after {reached}"
                assert (source, target) in ALLOWED_MOVES, f"{order_id}: {source} -> {target}"
            before = self.seen.get(order_id, [])
            assert changes[: len(before)] == before, f"{order_id}: its timeline was rewritten"
            self.seen[order_id] = changes
            assert changes[-1][1] == str(order.state), (
                f"{order_id} is {order.state}, its timeline's last state change {changes[-1]}"
            )

    async def _with_timeline(self, order_id: str) -> tuple[Order | None, list[Any]]:
        async with self.storage() as uow:
            return await uow.orders.get(order_id), await uow.orders.timeline(order_id)


def _template(folder: Path) -> Path:
    """A migrated SQLite database, copied for each example (migrating each is slow)."""
    path = folder / "template.db"

    async def build() -> None:
        storage = await open_storage(f"sqlite:///{path}")
        await storage.close()

    asyncio.run(build())
    assert not Path(f"{path}-wal").exists() or Path(f"{path}-wal").stat().st_size == 0
    return path


def test_every_payment_story_keeps_the_invariants(tmp_path: Path) -> None:
    template = _template(tmp_path)

    class OnTheTemplate(PaymentStories):
        def __init__(self) -> None:
            super().__init__(template)

    run_state_machine_as_test(
        OnTheTemplate,
        settings=settings(
            max_examples=40,
            stateful_step_count=25,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )

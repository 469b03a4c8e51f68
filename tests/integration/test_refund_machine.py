"""A state machine over refund requests, provider faults and webhooks, on real SQLite.

After every step the money adds up: every refund orderguard counts as given back is one
the provider made, counted once, and the provider never gives back more than was paid.
Once every webhook the provider sent has arrived (in whatever order, however often),
orderguard's ``amount_refunded`` equals the sum of the refunds that succeeded *at the
provider* (read from the in-memory provider's own ledger, not from orderguard) and so
never exceeds what was paid. Between the two, orderguard may lag the provider either way:
a refund that failed at the provider is counted until its ``refund.updated`` arrives (the
machine found such a run: a later failure, then a refund of "all that is left", briefly
counted one cent more than was paid). Counting more back than was paid flags the order
for review. The order is ``refunded`` exactly when all of it came back, unless a refund
failed afterwards or more than was paid is counted back: then it stays ``refunded`` (G6)
and is flagged for review.
"""

from __future__ import annotations

import asyncio
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from orderguard.bootstrap import Container, build_app, wire
from orderguard.domain.errors import (
    IdempotencyKeyReused,
    ProviderUnreachable,
    RefundNotAllowed,
)
from orderguard.domain.events import Cause
from orderguard.domain.flags import FlagReason
from orderguard.domain.order import Order
from orderguard.domain.refund_record import RefundState
from orderguard.providers.base import (
    ProviderOutcomeUnknown,
    ProviderRejected,
    ProviderUnavailable,
)
from orderguard.providers.memory import InMemoryProvider
from orderguard.services.webhook_events import WebhookEvents
from orderguard.storage.unit_of_work import SqlStorage
from tests.conftest import LOCAL_URL, open_storage
from tests.factories import key, order_body
from tests.integration.conftest import api_settings, memory_providers

KEYS = st.sampled_from(["k1", "k2", "k3", "k4", "k5"])
FAULTS = st.sampled_from(["none", "before", "after", "declined"])


class RefundMachine(RuleBasedStateMachine):
    """One paid order; refunds asked, faults injected, webhooks delivered in any order."""

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.folder = tempfile.TemporaryDirectory()
        self.storage: SqlStorage = self.run(
            open_storage(f"sqlite:///{Path(self.folder.name) / 'machine.db'}")
        )
        providers = memory_providers()
        provider = providers.primary.provider
        assert isinstance(provider, InMemoryProvider)
        self.provider = provider
        self.container: Container = wire(api_settings(), self.storage, providers)
        self.events = WebhookEvents(
            self.container.storage, self.container.payments, self.container.recheck
        )
        self.order_id, self.paid = self.run(self._place())
        self.delivered: set[int] = set(range(len(self.provider.webhooks)))

    def run(self, work: Any) -> Any:
        return self.loop.run_until_complete(work)

    async def _place(self) -> tuple[str, int]:
        app = build_app(container=self.container)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=LOCAL_URL) as client:
            body = {**order_body(), "payment": {"method": "pm_card_visa"}}
            response = await client.post("/v1/orders", json=body, headers=key())
        document = response.json()
        assert document["state"] == "paid", document
        return str(document["id"]), int(document["amount_total"])

    def teardown(self) -> None:
        self.run(self.storage.close())
        self.loop.close()
        self.folder.cleanup()

    async def _refund(self, amount: int | None, request_key: str) -> None:
        try:
            await self.container.operations.request_refund(
                self.order_id,
                amount=amount,
                actor="machine",
                cause=Cause.API,
                reason="test",
                request_key=request_key,
            )
        except (RefundNotAllowed, ProviderUnreachable, IdempotencyKeyReused):
            pass  # refused or unanswered: the invariants say whether anything was lost

    def order(self) -> Order:
        async def load() -> Order:
            async with self.storage() as uow:
                order = await uow.orders.get(self.order_id)
            assert order is not None
            return order

        result: Order = self.run(load())
        return result

    def at_provider(self) -> int:
        """What the provider really gave back: its own ledger of refunds."""
        return sum(r.amount for r in self.provider.refunds if r.status == "succeeded")

    @rule(
        amount=st.one_of(st.none(), st.integers(min_value=1, max_value=4000)),
        request_key=KEYS,
        fault=FAULTS,
    )
    def ask_refund(self, amount: int | None, request_key: str, fault: str) -> None:
        if fault == "before":
            self.provider.fail_next(ProviderUnavailable("connection refused"))
        elif fault == "after":
            self.provider.fail_next(ProviderOutcomeUnknown("read timeout"), after_effect=True)
        elif fault == "declined":
            self.provider.decline_next_refund("insufficient_funds")
        self.run(self._refund(amount, request_key))
        self.provider.clear_faults()  # a fault the call never reached must not linger

    @rule(
        first=st.tuples(st.integers(min_value=1, max_value=3000), KEYS),
        second=st.tuples(st.integers(min_value=1, max_value=3000), KEYS),
    )
    def ask_two_at_once(self, first: tuple[int, str], second: tuple[int, str]) -> None:
        async def both() -> None:
            # both run to the end even if one fails, so neither is left holding the database
            results = await asyncio.gather(
                self._refund(*first), self._refund(*second), return_exceptions=True
            )
            for result in results:
                if isinstance(result, BaseException):
                    raise result

        self.run(both())

    @rule(data=st.data())
    def a_refund_fails_later(self, data: st.DataObject) -> None:
        pick = data.draw(st.integers(0, 10_000))
        made = [r for r in self.provider.refunds if r.status == "succeeded"]
        if not made:
            return
        # drawn whatever the ledger holds (no preconditions on it either): two concurrent
        # requests may be served in either order, so it differs between runs of the steps
        self.provider.fail_refund(made[pick % len(made)].refund_ref)

    @rule(data=st.data())
    def deliver_a_webhook(self, data: st.DataObject) -> None:
        """Any webhook: a new one, an old one again, or one overtaking an earlier one."""
        pick = data.draw(st.integers(0, 10_000))
        if not self.provider.webhooks:
            return
        index = pick % len(self.provider.webhooks)
        body, _ = self.provider.webhooks[index]
        self.run(self.events.apply(self.provider.name, self.provider.decode_webhook(body)))
        self.delivered.add(index)

    @rule(again=st.booleans())
    def deliver_the_oldest_waiting_webhook(self, again: bool) -> None:
        """In order, as a healthy provider would; ``again``: delivered twice (a retry)."""
        if len(self.delivered) == len(self.provider.webhooks):
            return
        index = min(set(range(len(self.provider.webhooks))) - self.delivered)
        body, _ = self.provider.webhooks[index]
        for _ in range(2 if again else 1):
            self.run(self.events.apply(self.provider.name, self.provider.decode_webhook(body)))
        self.delivered.add(index)

    @rule()
    def deliver_every_webhook_late(self) -> None:
        for index in reversed(range(len(self.provider.webhooks))):
            if index not in self.delivered:
                body, _ = self.provider.webhooks[index]
                event = self.provider.decode_webhook(body)
                self.run(self.events.apply(self.provider.name, event))
                self.delivered.add(index)

    @rule(amount=st.integers(min_value=1, max_value=3000))
    def a_refund_made_at_the_provider(self, amount: int) -> None:
        """Someone refunds in the provider's dashboard: no metadata, no key of ours."""
        [ref] = self.provider.payments
        made = self.run(self._outside(ref, amount))
        assert made or True

    async def _outside(self, ref: str, amount: int) -> bool:
        try:
            await self.provider.refund(
                ref,
                amount=amount,
                idempotency_key=f"dash-{amount}-{id(self)}-{len(self.provider.refunds)}",
            )
        except ProviderRejected:
            return False  # more than is left at the provider
        return True

    @rule()
    def worker_resends_pending_refunds(self) -> None:
        self.run(self.container.operations.retry_refunds(older_than=timedelta(0)))

    @invariant()
    def money_adds_up(self) -> None:
        order = self.order()
        provider = self.at_provider()
        assert order.amount_paid == self.paid
        assert provider <= self.paid
        # every refund counted as given back is one the provider made, counted once
        ledger = {r.refund_ref for r in self.provider.refunds}
        counted = [r.provider_ref for r in order.refunds if r.state is RefundState.SUCCEEDED]
        assert set(counted) <= ledger and len(counted) == len(set(counted))
        held = sum(r.amount for r in order.refunds if r.state is not RefundState.FAILED)
        assert order.amount_refundable == max(0, self.paid - held)
        if len(self.delivered) == len(self.provider.webhooks):
            assert order.amount_refunded == provider, (order.refunds, self.provider.refunds)
            assert order.amount_refunded <= self.paid
            for made in self.provider.refunds:  # each known under its own record
                [record] = [r for r in order.refunds if r.provider_ref == made.refund_ref]
                assert record.state == ("succeeded" if made.status == "succeeded" else "failed")
                if "refund_id" in made.metadata:
                    assert record.id == made.metadata["refund_id"]
        all_back = order.amount_refunded == self.paid
        over = order.open_flag(FlagReason.REFUNDED_MORE_THAN_PAID)
        if order.amount_refunded > self.paid:
            assert over is not None  # more counted back than paid: a person looks
        if all_back:
            assert order.state == "refunded"
        elif order.state == "refunded":
            failed = order.open_flag(FlagReason.REFUND_FAILED)
            assert failed is not None or over is not None
        else:
            assert order.state == "paid"
            assert order.partially_refunded is (order.amount_refunded > 0)
        refs = [r.provider_ref for r in order.refunds if r.provider_ref]
        assert len(refs) == len(set(refs))  # one record per provider refund


RefundMachine.TestCase.settings = settings(
    max_examples=60,
    stateful_step_count=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_refunds_add_up = RefundMachine.TestCase

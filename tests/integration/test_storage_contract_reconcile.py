"""Reconciliation's storage (``uow.reconciliations``), one contract run unchanged on the
in-memory fake, SQLite and PostgreSQL: the export it matches, runs once per set of files,
exceptions once per dedupe key, and closing the open ones."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from orderguard.domain.events import Cause
from orderguard.domain.order import PaymentAttempt
from orderguard.domain.states import OrderState
from orderguard.storage.errors import UniqueViolation
from orderguard.storage.ports import (
    ExceptionRecord,
    ExportedAttempt,
    ExportedOrder,
    RunRecord,
    UnitOfWorkFactory,
)
from tests.factories import new_order

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def run(run_id: str, digest: str, provider: str = "stripe") -> RunRecord:
    return RunRecord(run_id, digest, '["r.csv"]', provider, T0, T0, "{}", T0)


def exception(
    exception_id: str,
    run_id: str,
    *,
    category: str = "amount_mismatch",
    key: str | None = None,
    at: datetime = T0,
) -> ExceptionRecord:
    return ExceptionRecord(
        id=exception_id,
        run_id=run_id,
        dedupe_key=key or exception_id,
        category=category,
        order_id="ord_1",
        provider_ref="pi_1",
        amount=900,
        currency="EUR",
        expected_amount=1000,
        expected_currency="EUR",
        file="r.csv",
        line=3,
        recorded_at=at,
    )


async def record(storage: UnitOfWorkFactory, *runs: RunRecord, **exceptions: str) -> None:
    """Store ``runs`` and exceptions given as ``exception id = run id``."""
    async with storage() as uow:
        for r in runs:
            assert await uow.reconciliations.record_run(r)
        for exception_id, run_id in exceptions.items():
            assert await uow.reconciliations.record_exception(exception(exception_id, run_id))
        await uow.commit()


async def test_the_export_pages_orders_and_attempts_by_id(storage: UnitOfWorkFactory) -> None:
    orders = [new_order(reference=f"R-{n}", at=T0 + timedelta(minutes=n)) for n in range(3)]
    paid = orders[1]
    paid.attempts.append(
        PaymentAttempt(
            "pay_1", paid.id, 1, "sandbox", "pm_card_visa", paid.total.amount, "EUR", "k", T0, T0
        )
    )
    paid.attempts[0].provider_ref = "pi_1"
    paid.move_to(OrderState.PAYMENT_PENDING, cause=Cause.API, at=T0)
    async with storage() as uow:
        for order in orders:
            await uow.orders.add(order)
        await uow.commit()
    by_id = sorted(orders, key=lambda o: o.id)
    async with storage.reader() as uow:
        first = await uow.reconciliations.orders_after("", limit=2)
        rest = await uow.reconciliations.orders_after(first[-1].id, limit=2)
        attempts = await uow.reconciliations.attempts_after("", limit=10)
        none_after = await uow.reconciliations.attempts_after("pay_1", limit=10)
    assert [o.id for o in first + rest] == [o.id for o in by_id]
    assert len(first) == 2
    assert next(o for o in first + rest if o.id == paid.id) == ExportedOrder(
        paid.id, "R-1", "payment_pending", "EUR", paid.total.amount, paid.created_at
    )
    assert attempts == [ExportedAttempt("pay_1", paid.id, "sandbox", "pi_1", "pending", T0)]
    assert none_after == []


async def test_a_period_s_payments_are_paged_in_time_order_and_references_found(
    storage: UnitOfWorkFactory,
) -> None:
    """Paid attempts (succeeded or refunded) of a period, through one provider, in pages
    that neither skip nor repeat an attempt when several share a time; attempts and orders
    by the references a report names, whatever their age."""
    from tests.reconcile_support import paid_order

    day = T0 - timedelta(days=1)
    orders = [
        paid_order(
            f"P{n}", provider_ref=f"pi_P{n}", amount=100 + n, at=day + timedelta(hours=n // 2)
        )
        for n in range(5)
    ]  # two at each hour: equal times
    old = paid_order("OLD", provider_ref="pi_OLD", amount=7, at=T0 - timedelta(days=400))
    other = paid_order("PP", provider_ref="pp_1", amount=8, at=day, provider="paypal")
    declined = new_order(reference="D-1", at=day)
    declined.attempts.append(
        PaymentAttempt("pay_D", declined.id, 1, "stripe", "card", 900, "EUR", "kd", day, day)
    )
    declined.attempts[0].provider_ref = "pi_D"
    async with storage() as uow:
        for order in [*orders, old, other, declined]:
            await uow.orders.add(order)
        await uow.commit()
    pages: list[list[str]] = []
    after = None
    async with storage.reader() as uow:
        repo = uow.reconciliations
        while page := await repo.paid_attempts_between(
            day, T0, after=after, limit=2, provider="stripe"
        ):
            pages.append([a.id for a in page])
            after = (page[-1].updated_at, page[-1].id)
        any_provider = await repo.paid_attempts_between(day, day, after=None, limit=10)
        by_refs = await repo.attempts_by_refs(["pi_OLD", "pi_D", "pi_nothing"])
        by_ids = await repo.orders_by_ids(["ord_OLD", "ord_nothing"])
        by_references = await repo.orders_by_references(["ord_P1", "M-OLD", "nothing"])
    assert pages == [["pay_P0", "pay_P1"], ["pay_P2", "pay_P3"], ["pay_P4"]]
    assert sorted(a.id for a in any_provider) == ["pay_P0", "pay_P1", "pay_PP"]
    assert sorted((a.id, a.state) for a in by_refs) == [
        ("pay_D", "pending"),
        ("pay_OLD", "succeeded"),
    ]
    assert [o.id for o in by_ids] == ["ord_OLD"]
    assert sorted(o.id for o in by_references) == ["ord_OLD", "ord_P1"]


async def test_a_run_is_recorded_once_per_set_of_files(storage: UnitOfWorkFactory) -> None:
    async with storage() as uow:
        assert await uow.reconciliations.record_run(run("rec_1", "digest-a"))
        assert not await uow.reconciliations.record_run(run("rec_2", "digest-a"))
        await uow.commit()
    with pytest.raises(UniqueViolation):
        async with storage() as uow:
            await uow.reconciliations.record_run(run("rec_1", "digest-b"))
    async with storage.reader() as uow:
        assert await uow.reconciliations.runs() == 1
        assert await uow.reconciliations.providers_of({"rec_1", "rec_2"}) == {"rec_1": "stripe"}
        assert await uow.reconciliations.providers_of(set()) == {}


async def test_an_exception_is_recorded_once_per_dedupe_key(storage: UnitOfWorkFactory) -> None:
    await record(storage, run("rec_1", "d1"), run("rec_2", "d2"))
    async with storage() as uow:
        assert await uow.reconciliations.record_exception(exception("rex_1", "rec_1", key="k"))
        assert not await uow.reconciliations.record_exception(exception("rex_2", "rec_2", key="k"))
        await uow.commit()
    async with storage.reader() as uow:
        (only,) = await uow.reconciliations.latest_exceptions(limit=10)
    assert only == exception("rex_1", "rec_1", key="k")


async def test_the_latest_exceptions_come_newest_first_by_category_and_openness(
    storage: UnitOfWorkFactory,
) -> None:
    await record(storage, run("rec_1", "d1"))
    async with storage() as uow:
        for n, category in enumerate(("amount_mismatch", "duplicate", "amount_mismatch")):
            x = exception(f"rex_{n}", "rec_1", category=category, at=T0 + timedelta(minutes=n))
            await uow.reconciliations.record_exception(x)
        await uow.reconciliations.record_exception(exception("rex_9", "rec_1"))  # at T0 too
        await uow.commit()
    async with storage() as uow:
        assert await uow.reconciliations.resolve(["rex_2"], run_id="rec_1", at=T0) == 1
        await uow.commit()
    async with storage.reader() as uow:
        every = await uow.reconciliations.latest_exceptions(limit=10)
        two = await uow.reconciliations.latest_exceptions(limit=2)
        amounts = await uow.reconciliations.latest_exceptions(limit=10, category="amount_mismatch")
        open_amounts = await uow.reconciliations.latest_exceptions(
            limit=10, category="amount_mismatch", open_only=True
        )
        counts = await uow.reconciliations.counts_by_category()
        open_counts = await uow.reconciliations.counts_by_category(open_only=True)
    assert [x.id for x in every] == ["rex_2", "rex_1", "rex_9", "rex_0"]
    assert [x.id for x in two] == ["rex_2", "rex_1"]
    assert [x.id for x in amounts] == ["rex_2", "rex_9", "rex_0"]
    assert [x.id for x in open_amounts] == ["rex_9", "rex_0"]
    assert (every[0].resolved_at, every[0].resolved_by_run) == (T0, "rec_1")
    assert counts == {"amount_mismatch": 3, "duplicate": 1}
    assert open_counts == {"amount_mismatch": 2, "duplicate": 1}


async def test_open_exceptions_of_a_provider_are_closed_once_by_a_later_run(
    storage: UnitOfWorkFactory,
) -> None:
    await record(
        storage,
        run("rec_1", "d1"),
        run("rec_2", "d2", provider="adyen"),
        run("rec_3", "d3"),
        rex_b="rec_1",
        rex_a="rec_1",
        rex_c="rec_2",
        rex_d="rec_3",
    )
    async with storage.reader() as uow:
        earlier = await uow.reconciliations.open_exceptions(provider="stripe", other_than="rec_3")
    assert [x.id for x in earlier] == ["rex_a", "rex_b"]  # by id; not adyen's, not rec_3's
    later = T0 + timedelta(days=1)
    async with storage() as uow:
        closed = await uow.reconciliations.resolve(
            ["rex_a", "rex_unknown"], run_id="rec_3", at=later
        )
        await uow.commit()
    async with storage() as uow:
        again = await uow.reconciliations.resolve(["rex_a"], run_id="rec_3", at=later)
        left = await uow.reconciliations.open_exceptions(provider="stripe", other_than="rec_3")
        (a,) = [x for x in await uow.reconciliations.latest_exceptions(limit=9) if x.id == "rex_a"]
    assert (closed, again) == (1, 0)
    assert [x.id for x in left] == ["rex_b"]
    assert (a.resolved_at, a.resolved_by_run) == (later, "rec_3")


async def test_a_run_not_committed_is_not_kept(storage: UnitOfWorkFactory) -> None:
    async with storage() as uow:
        await uow.reconciliations.record_run(run("rec_1", "d1"))
    async with storage() as uow:
        assert await uow.reconciliations.runs() == 0
        assert await uow.reconciliations.record_run(run("rec_1", "d1"))

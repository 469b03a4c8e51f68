"""G6 in the database: a stored state never moves backwards, whatever the code that writes it
believes. Migration 0014's trigger is checked against the moves the product promises, written
out by hand in tests/state_moves.py (never the code's own tables). One saved change may hold
several moves, so the database allows what is reachable along them, and nothing else."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from orderguard.domain.events import Cause
from orderguard.domain.order import Order, PaymentAttempt
from orderguard.domain.states import AttemptState, OrderState
from orderguard.storage.database import transaction
from orderguard.storage.errors import AppendOnlyViolation, StorageError
from orderguard.storage.unit_of_work import SqlStorage
from tests.conftest import open_storage
from tests.factories import new_order
from tests.state_moves import (
    ATTEMPT_MOVES,
    ATTEMPT_STATES,
    ORDER_MOVES,
    ORDER_STATES,
    path_to,
    reachable,
)

AT = datetime(2026, 11, 24, tzinfo=UTC)


class Refused(Exception):
    """Raised inside a transaction to roll back a move that was let through."""


@pytest.fixture(params=["sqlite", "postgresql"])
async def storage(request: pytest.FixtureRequest) -> AsyncIterator[SqlStorage]:
    fixture = "sqlite_url" if request.param == "sqlite" else "pg_url"
    url = str(request.getfixturevalue(fixture))
    sql = await open_storage(url)
    try:
        yield sql
    finally:
        await sql.close()


async def _stored_order(storage: SqlStorage) -> Order:
    order = new_order(at=AT)
    order.attempts.append(
        PaymentAttempt(
            id=f"pay_{order.id}",
            order_id=order.id,
            seq=1,
            provider="sandbox",
            method="pm_card_visa",
            amount=order.total.amount,
            currency=order.currency,
            idempotency_key=f"k_{order.id}",
            created_at=AT,
            updated_at=AT,
        )
    )
    async with storage() as uow:
        await uow.orders.add(order)
        await uow.commit()
    return order


async def _state(storage: SqlStorage, table: str, row_id: str) -> str:
    async with transaction(storage.db, write=False) as conn:
        row = await conn.fetchone(f"SELECT state FROM {table} WHERE id = :id", {"id": row_id})
    assert row is not None
    return str(row["state"])


async def _set(storage: SqlStorage, table: str, row_id: str, state: str) -> None:
    async with transaction(storage.db) as conn:
        await conn.execute(
            f"UPDATE {table} SET state = :state WHERE id = :id", {"state": state, "id": row_id}
        )


async def _try(storage: SqlStorage, table: str, row_id: str, state: str) -> bool:
    """Whether the database lets the row move to ``state`` (rolled back either way)."""
    try:
        async with transaction(storage.db) as conn:
            await conn.execute(
                f"UPDATE {table} SET state = :state WHERE id = :id",
                {"state": state, "id": row_id},
            )
            raise Refused
    except Refused:  # the move went through; it was rolled back
        return True
    except StorageError as exc:
        assert "illegal state move" in str(exc)
        return False


ORDER_REACHABLE = reachable(ORDER_MOVES)
ATTEMPT_REACHABLE = reachable(ATTEMPT_MOVES)


def test_what_is_reachable_never_leads_back_to_the_start_or_out_of_a_final_state() -> None:
    assert not [pair for pair in ORDER_REACHABLE if pair[1] == "received"]
    assert {p for p in ORDER_REACHABLE if p[0] in {"paid", "refunded", "cancelled"}} == {
        ("paid", "refunded")
    }
    assert {p for p in ATTEMPT_REACHABLE if p[0] == "action_required"} == {
        ("action_required", "succeeded"),
        ("action_required", "failed"),
        ("action_required", "refunded"),
    }
    assert ("payment_unknown", "cancelled") in ORDER_REACHABLE  # through a re-sent charge


async def test_the_database_knows_exactly_what_is_reachable(storage: SqlStorage) -> None:
    async with transaction(storage.db, write=False) as conn:
        rows = await conn.fetchall("SELECT machine, from_state, to_state FROM state_reachable")
    stored = {(r["machine"], r["from_state"], r["to_state"]) for r in rows}
    assert stored == {("order", *p) for p in ORDER_REACHABLE} | {
        ("attempt", *p) for p in ATTEMPT_REACHABLE
    }
    with pytest.raises(AppendOnlyViolation):
        async with transaction(storage.db) as conn:
            await conn.execute("DELETE FROM state_reachable")
    with pytest.raises(AppendOnlyViolation):
        async with transaction(storage.db) as conn:
            await conn.execute("UPDATE state_reachable SET to_state = 'received'")


async def test_a_stored_order_becomes_only_what_is_reachable_from_it(storage: SqlStorage) -> None:
    for source in ORDER_STATES:
        order = await _stored_order(storage)
        for step in path_to(ORDER_MOVES, "received", source):
            await _set(storage, "orders", order.id, step)
        for target in ORDER_STATES:
            allowed = await _try(storage, "orders", order.id, target)
            expected = target == source or (source, target) in ORDER_REACHABLE
            assert allowed == expected, f"order {source} -> {target}"
            assert await _state(storage, "orders", order.id) == source


async def test_a_stored_attempt_becomes_only_what_is_reachable_from_it(storage: SqlStorage) -> None:
    for source in ATTEMPT_STATES:
        attempt = (await _stored_order(storage)).attempts[0]
        for step in path_to(ATTEMPT_MOVES, "pending", source):
            await _set(storage, "payment_attempts", attempt.id, step)
        for target in ATTEMPT_STATES:
            allowed = await _try(storage, "payment_attempts", attempt.id, target)
            expected = target == source or (source, target) in ATTEMPT_REACHABLE
            assert allowed == expected, f"attempt {source} -> {target}"
            assert await _state(storage, "payment_attempts", attempt.id) == source


async def test_a_backward_move_the_code_lets_through_is_refused_and_loses_nothing(
    storage: SqlStorage,
) -> None:
    # as if the domain's table had grown a backward edge: the order object is forced back
    order = await _stored_order(storage)
    async with storage() as uow:
        loaded = await uow.orders.get(order.id, for_update=True)
        assert loaded is not None
        loaded.move_to(OrderState.PAYMENT_PENDING, cause=Cause.API, at=AT)
        loaded.attempts[0].move_to(AttemptState.FAILED, at=AT)
        loaded.move_to(OrderState.PAYMENT_FAILED, cause=Cause.WEBHOOK, at=AT)
        await uow.orders.save(loaded)
        await uow.commit()
    for state, attempt_state in (
        (OrderState.RECEIVED, AttemptState.FAILED),
        (OrderState.PAYMENT_FAILED, AttemptState.PENDING),
    ):
        with pytest.raises(StorageError, match="illegal state move"):
            async with storage() as uow:
                loaded = await uow.orders.get(order.id, for_update=True)
                assert loaded is not None
                loaded.state = state
                loaded.attempts[0].state = attempt_state
                await uow.orders.save(loaded)
                await uow.commit()
        async with storage() as uow:
            kept = await uow.orders.get(order.id)
            timeline = await uow.orders.timeline(order.id)
        assert kept is not None
        assert (kept.state, kept.attempts[0].state) == ("payment_failed", "failed")
        assert [(e.from_state, e.to_state) for e in timeline] == [
            (None, "received"),
            ("received", "payment_pending"),
            ("payment_pending", "payment_failed"),
        ]

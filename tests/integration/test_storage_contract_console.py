"""The console's storage port (``storage.console``: users, sessions, log-in counts, the
searches behind its pages), one contract run unchanged on memory, SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from orderguard.domain.order import PaymentAttempt
from orderguard.storage.ports import (
    ConsoleSession,
    ConsoleUser,
    UnitOfWorkFactory,
    UserExists,
    WebhookRecord,
)
from tests.factories import new_order

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


def _user(name: str, role: str = "operator") -> ConsoleUser:
    return ConsoleUser(name=name, role=role, password_hash=f"hash-{name}", created_at=T0)


def _session(id_hash: str, user: str, *, expires: datetime = T0 + HOUR) -> ConsoleSession:
    return ConsoleSession(id_hash, user, f"csrf-{id_hash}", T0, expires)


async def test_users_are_stored_once_and_listed_by_name(storage: UnitOfWorkFactory) -> None:
    console = storage.console
    await console.add_user(_user("zoe", "viewer"))
    await console.add_user(_user("amy"))
    with pytest.raises(UserExists):
        await console.add_user(_user("amy", "admin"))

    assert [(u.name, u.role) for u in await console.users()] == [
        ("amy", "operator"),
        ("zoe", "viewer"),
    ]
    amy = await console.user("amy")
    assert amy is not None and (amy.password_hash, amy.created_at) == ("hash-amy", T0)
    assert await console.user("nobody") is None


async def test_a_session_leads_to_its_user_until_it_expires_or_ends(
    storage: UnitOfWorkFactory,
) -> None:
    console = storage.console
    await console.add_user(_user("amy"))
    await console.logged_in(_session("s1", "amy"))
    await console.logged_in(_session("s2", "amy", expires=T0 + 2 * HOUR))

    found = await console.session("s1", now=T0 + timedelta(minutes=59))
    assert found is not None
    session, user = found
    assert (session.user_name, session.csrf_token, session.expires_at) == (
        "amy",
        "csrf-s1",
        T0 + HOUR,
    )
    assert user.name == "amy"
    assert await console.session("s1", now=T0 + HOUR) is None, "expired at its expiry"
    assert await console.session("nope", now=T0) is None

    assert await console.prune_sessions(T0 + HOUR) == 1
    await console.end_session("s2")
    assert await console.session("s2", now=T0) is None


async def test_a_new_password_unlocks_and_logs_out_and_removing_a_user_ends_their_sessions(
    storage: UnitOfWorkFactory,
) -> None:
    console = storage.console
    await console.add_user(_user("amy"))
    await console.add_user(_user("bob"))
    await console.logged_in(_session("a1", "amy"))
    await console.logged_in(_session("b1", "bob"))

    assert await console.set_password("amy", "new-hash")
    assert not await console.set_password("nobody", "x")
    await console.rehash("bob", "stronger")
    assert await console.remove_user("bob")
    assert not await console.remove_user("bob")

    amy = await console.user("amy")
    assert amy is not None and amy.password_hash == "new-hash"
    assert await console.session("a1", now=T0) is None
    assert await console.session("b1", now=T0) is None
    assert [u.name for u in await console.users()] == ["amy"]


async def test_log_in_attempts_are_counted_per_key_up_to_the_limit_then_expire(
    storage: UnitOfWorkFactory,
) -> None:
    console = storage.console
    until = T0 + timedelta(minutes=15)
    admitted = [
        await console.count_attempt({"name": 3, "addr": 10}, now=T0, lock_until=until)
        for _ in range(4)
    ]

    assert admitted == [True, True, True, False], "the fourth attempt is past the name's limit"
    assert await console.attempts("name", now=T0) == (4, until)
    assert await console.attempts("addr", now=T0) == (4, until)
    assert await console.attempts("name", now=until) is None, "expired at lock_until"
    later = until + timedelta(minutes=1)
    assert await console.count_attempt({"name": 3}, now=later, lock_until=later + HOUR)
    assert await console.attempts("name", now=later) == (1, later + HOUR), "counts afresh"
    await console.forget_attempts(["name", "addr"])
    assert await console.attempts("name", now=later) is None
    assert await console.attempts("addr", now=T0) is None


async def test_the_attempt_that_reaches_the_limit_moves_the_lock_out(
    storage: UnitOfWorkFactory,
) -> None:
    console = storage.console
    first_until, lock = T0 + timedelta(minutes=15), T0 + timedelta(minutes=40)
    await console.count_attempt({"k": 2}, now=T0, lock_until=first_until)
    await console.count_attempt({"k": 2}, now=T0 + timedelta(minutes=5), lock_until=lock)
    assert await console.attempts("k", now=T0 + timedelta(minutes=5)) == (2, lock)


async def test_orders_are_found_by_id_reference_email_or_provider_reference(
    storage: UnitOfWorkFactory,
) -> None:
    older = new_order(reference="A-1", at=T0)
    newer = new_order(reference="A-2", at=T0 + HOUR)
    newer.attempts.append(
        PaymentAttempt(
            id="pay_x",
            order_id=newer.id,
            seq=1,
            provider="sandbox",
            method="pm_card_visa",
            amount=newer.total.amount,
            currency=newer.currency,
            idempotency_key="orderguard-pay_x",
            created_at=T0 + HOUR,
            updated_at=T0 + HOUR,
            provider_ref="pi_123",
        )
    )
    async with storage() as uow:
        await uow.orders.add(older)
        await uow.orders.add(newer)
        await uow.commit()
    console = storage.console

    assert await console.search(older.id, limit=10) == [older.id]
    assert await console.search("A-2", limit=10) == [newer.id]
    assert await console.search("pi_123", limit=10) == [newer.id]
    email = older.customer.email
    assert email != email.upper()
    assert await console.search(email.upper(), limit=10) == [newer.id, older.id]
    assert await console.search(email, limit=1) == [newer.id]
    assert await console.search("nothing", limit=10) == []


async def test_an_orders_raw_webhooks_are_listed_newest_first(storage: UnitOfWorkFactory) -> None:
    order = new_order(at=T0)

    def record(n: int, order_id: str | None) -> WebhookRecord:
        return WebhookRecord(
            id=f"whk_{n}",
            provider="sandbox",
            event_id=f"evt_{n}",
            type="payment_intent.succeeded",
            headers={"x": "y"},
            body=b'{"n": %d}' % n,
            received_at=T0 + timedelta(minutes=n),
            order_id=order_id,
        )

    async with storage() as uow:
        await uow.orders.add(order)
        for n, order_id in ((1, order.id), (2, None), (3, order.id)):
            assert await uow.webhooks.record(record(n, order_id))
        await uow.webhooks.failed("whk_3", error="boom", retry_at=T0 + HOUR)
        await uow.commit()

    found = await storage.console.webhooks_for(order.id)

    assert [(w.id, w.body, w.last_error, w.attempts) for w in found] == [
        ("whk_3", b'{"n": 3}', "boom", 1),
        ("whk_1", b'{"n": 1}', None, 0),
    ]
    assert found[0].received_at == T0 + timedelta(minutes=3)
    assert await storage.console.webhooks_for(order.id, limit=1) == found[:1]

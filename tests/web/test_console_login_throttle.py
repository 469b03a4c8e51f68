"""Console log-in under attack: Argon2 off the event loop in a bounded pool, guesses
counted atomically per name (known or not) and per address, every refusal alike."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from argon2 import PasswordHasher

from orderguard.services.console_users import (
    ConsoleUsers,
    HashingBusy,
    LoginRefused,
    SessionPolicy,
)
from orderguard.services.password_hashing import PasswordHashing
from orderguard.storage.console import SqlConsoleStore
from orderguard.storage.database import transaction
from orderguard.storage.unit_of_work import SqlStorage
from tests.conftest import open_storage

PASSWORD = "s3cret-enough"


class Clock:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


class WatchedHasher(PasswordHasher):
    """A cheap Argon2 hasher that notes which hashes it checked, and on which thread."""

    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=1024, parallelism=1)
        self.checked: list[str] = []
        self.threads: set[int] = set()
        self._lock = threading.Lock()

    def verify(self, hash: str | bytes, password: str | bytes) -> bool:
        with self._lock:
            self.checked.append(str(hash))
            self.threads.add(threading.get_ident())
        return super().verify(hash, password)

    def hash(self, password: str | bytes, *, salt: bytes | None = None) -> str:
        with self._lock:
            self.threads.add(threading.get_ident())
        return super().hash(password, salt=salt)


@pytest.fixture
async def sql(database_url: str) -> AsyncIterator[SqlStorage]:
    storage = await open_storage(database_url)
    try:
        yield storage
    finally:
        await storage.close()


def users_on(
    storage: SqlStorage, hashing: PasswordHashing, *, clock: Clock | None = None, **policy: Any
) -> ConsoleUsers:
    return ConsoleUsers(
        SqlConsoleStore(storage.db),
        SessionPolicy(**policy),
        clock=clock or Clock(),
        hashing=hashing,
    )


async def outcome(users: ConsoleUsers, name: str, password: str, address: str = "") -> str:
    try:
        await users.log_in(name, password, address=address)
    except LoginRefused:
        return "refused"
    return "in"


async def test_twenty_simultaneous_wrong_guesses_check_at_most_five_then_the_right_password_is_refused(  # noqa: E501
    pg_url: str,
) -> None:
    storage = await open_storage(pg_url)
    hasher = WatchedHasher()
    hashing = PasswordHashing(workers=2, queue=64, hasher=hasher)
    users = users_on(storage, hashing, max_failures=5)
    try:
        await users.add("ana", PASSWORD, "operator")
        real = (await users.store.user("ana")).password_hash  # type: ignore[union-attr]

        guesses = await asyncio.gather(
            *(outcome(users, "ana", f"guess-number-{i}") for i in range(20))
        )
        right = await outcome(users, "ana", PASSWORD)

        assert guesses == ["refused"] * 20
        assert hasher.checked.count(real) <= 5  # the other guesses never met the real hash
        assert len(hasher.checked) == 21  # yet every attempt cost one check
        assert right == "refused"
    finally:
        hashing.close()
        await storage.close()


async def test_every_attempt_costs_one_check_off_the_event_loop(sql: SqlStorage) -> None:
    hasher = WatchedHasher()
    hashing = PasswordHashing(workers=1, queue=4, hasher=hasher)
    users = users_on(sql, hashing, max_failures=2)
    try:
        await users.add("ana", PASSWORD, "operator")
        hasher.checked.clear()
        for name, password in [("nobody", PASSWORD), ("ana", "wrong-one"), ("ana", "wrong")]:
            await outcome(users, name, password)
        await outcome(users, "ana", PASSWORD)  # locked now: still one check, not the real one

        assert len(hasher.checked) == 4
        assert threading.get_ident() not in hasher.threads
    finally:
        hashing.close()


async def test_unknown_names_are_counted_and_lock_the_name_before_it_exists(
    sql: SqlStorage,
) -> None:
    hashing = PasswordHashing(hasher=WatchedHasher())
    users = users_on(sql, hashing, max_failures=3)
    try:
        for _ in range(3):
            await outcome(users, "latecomer", "whatever-it-is")
        await users.add("latecomer", PASSWORD, "viewer")

        assert await outcome(users, "latecomer", PASSWORD) == "refused"
        assert await users.locked_until("latecomer") is not None
    finally:
        hashing.close()


async def test_an_address_spraying_many_names_is_locked_out_but_not_other_addresses(
    sql: SqlStorage,
) -> None:
    hashing = PasswordHashing(hasher=WatchedHasher())
    users = users_on(sql, hashing, max_failures=3, address_max_failures=6)
    try:
        await users.add("ana", PASSWORD, "operator")
        for i in range(6):
            await outcome(users, f"random-{i}", "x" * 12, address="203.0.113.9")

        from_the_sprayer = await outcome(users, "ana", PASSWORD, address="203.0.113.9")
        from_elsewhere = await outcome(users, "ana", PASSWORD, address="198.51.100.7")

        assert (from_the_sprayer, from_elsewhere) == ("refused", "in")
    finally:
        hashing.close()


async def test_ipv6_clients_are_counted_by_their_64_network(sql: SqlStorage) -> None:
    hashing = PasswordHashing(hasher=WatchedHasher())
    users = users_on(sql, hashing, max_failures=3, address_max_failures=2)
    try:
        await users.add("ana", PASSWORD, "operator")
        await outcome(users, "x1", "x" * 12, address="2001:db8:1:2::1")
        await outcome(users, "x2", "x" * 12, address="2001:db8:1:2::ffff")

        assert await outcome(users, "ana", PASSWORD, address="2001:db8:1:2:3::9") == "refused"
        assert await outcome(users, "ana", PASSWORD, address="2001:db8:1:3::1") == "in"
    finally:
        hashing.close()


async def test_counts_of_unknown_names_expire_and_are_deleted(sql: SqlStorage) -> None:
    clock = Clock()
    hashing = PasswordHashing(hasher=WatchedHasher())
    users = users_on(sql, hashing, clock=clock, lockout=timedelta(minutes=15))
    try:
        for i in range(30):
            await outcome(users, f"random-name-{i}", "x" * 12, address="203.0.113.9")
        clock.now += timedelta(minutes=16)
        await outcome(users, "one-more", "x" * 12, address="203.0.113.9")

        async with transaction(sql.db, write=False) as conn:
            row = await conn.fetchone("SELECT COUNT(*) AS n FROM console_login_attempts")
        assert row is not None and int(row["n"]) == 2  # the last name and its address
    finally:
        hashing.close()


async def test_a_full_hashing_pool_refuses_at_once_and_counts_nothing(sql: SqlStorage) -> None:
    hashing = PasswordHashing(workers=1, queue=0, hasher=WatchedHasher())
    users = users_on(sql, hashing, max_failures=1)
    try:
        await users.add("ana", PASSWORD, "operator")
        with hashing.reserve():  # every place taken
            with pytest.raises(HashingBusy):
                await users.log_in("ana", "wrong-password")
        assert hashing.taken == 0

        assert await outcome(users, "ana", PASSWORD) == "in"  # the busy try was not counted
    finally:
        hashing.close()


async def test_a_place_is_given_back_when_the_thread_finishes_even_if_the_caller_left() -> None:
    started, release = threading.Event(), threading.Event()

    class Slow(WatchedHasher):
        def verify(self, hash: str | bytes, password: str | bytes) -> bool:
            started.set()
            release.wait(30)
            return False

    hashing = PasswordHashing(workers=1, queue=0, hasher=Slow())
    try:
        waiting = asyncio.ensure_future(hashing.verify("$argon2id$whatever", "x"))
        assert await asyncio.to_thread(started.wait, 30)
        waiting.cancel()
        with pytest.raises(HashingBusy):  # the thread is still at it: the place is taken
            hashing.reserve()
        release.set()
        for _ in range(200):
            if hashing.taken == 0:
                break
            await asyncio.sleep(0.01)
        assert hashing.taken == 0
    finally:
        hashing.close()


async def test_after_each_hash_the_thread_rests_as_long_as_it_worked_so_a_flood_gets_half_a_core() -> (  # noqa: E501
    None
):
    starts: list[float] = []
    work_s = 0.05

    class Timed(WatchedHasher):
        def verify(self, hash: str | bytes, password: str | bytes) -> bool:
            starts.append(time.monotonic())
            time.sleep(work_s)
            return False

    hashing = PasswordHashing(workers=1, queue=8, rest=1.0, hasher=Timed())
    try:
        await asyncio.gather(*(hashing.verify("$argon2id$x", "y") for _ in range(4)))

        gaps = [later - earlier for earlier, later in itertools.pairwise(starts)]
        assert len(gaps) == 3
        assert all(gap >= 2 * work_s for gap in gaps)  # work, then as long again at rest
    finally:
        hashing.close()


def test_the_pools_hashes_use_one_argon2_lane() -> None:
    hashed = PasswordHashing().hasher.hash("s3cret-enough")
    assert ",p=1$" in hashed and "m=65536,t=3" in hashed


async def test_logging_in_to_one_account_does_not_give_an_address_more_guesses(
    sql: SqlStorage,
) -> None:
    hashing = PasswordHashing(hasher=WatchedHasher())
    users = users_on(sql, hashing, max_failures=5, address_max_failures=4)
    address = "203.0.113.77"
    try:
        await users.add("vic", PASSWORD, "viewer")
        await users.add("ana", PASSWORD, "admin")
        for i in range(3):
            await outcome(users, f"guess-{i}", "x" * 12, address=address)
        assert await outcome(users, "vic", PASSWORD, address=address) == "in"
        await outcome(users, "guess-3", "x" * 12, address=address)  # the address's 4th failure

        assert await outcome(users, "ana", PASSWORD, address=address) == "refused"
        assert await outcome(users, "ana", PASSWORD, address="198.51.100.7") == "in"
    finally:
        hashing.close()


def test_one_client_holds_at_most_its_share_of_the_hashing_queue() -> None:
    hashing = PasswordHashing(workers=1, queue=16, per_client=2, hasher=WatchedHasher())
    try:
        first, second = hashing.reserve("flooder"), hashing.reserve("flooder")
        with pytest.raises(HashingBusy):
            hashing.reserve("flooder")
        with hashing.reserve("staff"):  # everybody else still gets a place
            assert hashing.taken == 3
        first.close()
        with hashing.reserve("flooder"):  # a place given back is the client's again
            assert hashing.taken == 2
        second.close()
        assert hashing.taken == 0
    finally:
        hashing.close()

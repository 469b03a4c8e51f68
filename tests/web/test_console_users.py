"""``orderguard users``: the real command on a real database; Argon2 hashes; lock-out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from orderguard.services.console_users import (
    ConsoleUsers,
    InvalidUser,
    LoginRefused,
    SessionPolicy,
    UserExists,
)
from orderguard.storage.console import SqlConsoleStore
from tests.conftest import open_storage
from tests.e2e.procs import clean_env, run_cli


class Clock:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def test_users_add_list_passwd_remove(tmp_path: Path, database_url: str) -> None:
    env = clean_env(database_url)

    def cli(*args: str, stdin: str | None = None) -> tuple[int, str]:
        if stdin is None:
            done = run_cli(*args, env=env, cwd=tmp_path)
        else:
            import subprocess

            from tests.e2e.procs import ORDERGUARD

            done = subprocess.run(
                [ORDERGUARD, *args],
                env=env,
                cwd=tmp_path,
                input=stdin,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
        return done.returncode, done.stdout + done.stderr

    if database_url.startswith("postgresql"):
        assert cli("migrate")[0] == 0
    assert cli(
        "users", "add", "ana", "--role", "admin", "--password-stdin", stdin="s3cret-enough\n"
    ) == (0, "added ana (admin)\n")
    short = cli("users", "add", "bob", "--password-stdin", stdin="short\n")
    again = cli("users", "add", "ana", "--password-stdin", stdin="s3cret-enough\n")
    role = cli("users", "add", "cy", "--role", "boss", "--password-stdin", stdin="s3cret-enough\n")
    listed = cli("users", "list")
    changed = cli("users", "passwd", "ana", "--password-stdin", stdin="another-secret\n")
    missing = cli("users", "passwd", "nobody", "--password-stdin", stdin="another-secret\n")
    removed = cli("users", "remove", "ana")
    after = cli("users", "list")

    assert short[0] == 1 and "at least 10 characters" in short[1]
    assert again[0] == 1 and "exists already" in again[1]
    assert role[0] == 2 and "boss" in role[1]
    assert listed[0] == 0 and listed[1].startswith("ana  admin  since ")
    assert changed == (0, "password changed for ana\n")
    assert missing[0] == 1 and "no user nobody" in missing[1]
    assert removed == (0, "removed ana\n")
    assert after == (0, "")


async def test_passwords_are_stored_as_argon2_hashes(tmp_path: Path, database_url: str) -> None:
    storage = await open_storage(database_url)
    try:
        users = ConsoleUsers(SqlConsoleStore(storage.db), SessionPolicy())
        await users.add("ana", "s3cret-enough", "operator")
        stored = await users.store.user("ana")
        assert stored is not None
        assert stored.password_hash.startswith("$argon2id$")
        assert "s3cret-enough" not in stored.password_hash
        with pytest.raises(UserExists):
            await users.add("ana", "s3cret-enough", "viewer")
        with pytest.raises(InvalidUser):
            await users.add("bad name", "s3cret-enough", "viewer")
    finally:
        await storage.close()


async def test_lock_out_after_repeated_failures_until_it_expires_or_passwd(
    database_url: str,
) -> None:
    storage = await open_storage(database_url)
    clock = Clock()
    policy = SessionPolicy(max_failures=3, lockout=timedelta(minutes=15))
    users = ConsoleUsers(SqlConsoleStore(storage.db), policy, clock=clock)
    try:
        await users.add("ana", "s3cret-enough", "operator")
        for _ in range(3):
            with pytest.raises(LoginRefused):
                await users.log_in("ana", "wrong-password")
        with pytest.raises(LoginRefused):
            await users.log_in("ana", "s3cret-enough")  # even the right password

        clock.now += timedelta(minutes=16)
        opened = await users.log_in("ana", "s3cret-enough")
        assert await users.session(opened.cookie) is not None

        for _ in range(3):
            with pytest.raises(LoginRefused):
                await users.log_in("ana", "wrong-password")
        assert await users.passwd("ana", "a-new-secret")  # unlocks, ends sessions
        assert await users.session(opened.cookie) is None
        assert (await users.log_in("ana", "a-new-secret")).session.user_name == "ana"
    finally:
        await storage.close()


async def test_a_success_resets_the_failure_count(database_url: str) -> None:
    storage = await open_storage(database_url)
    users = ConsoleUsers(SqlConsoleStore(storage.db), SessionPolicy(max_failures=3), clock=Clock())
    try:
        await users.add("ana", "s3cret-enough", "operator")
        for _ in range(2):
            with pytest.raises(LoginRefused):
                await users.log_in("ana", "wrong-password")
        await users.log_in("ana", "s3cret-enough")
        for _ in range(2):
            with pytest.raises(LoginRefused):
                await users.log_in("ana", "wrong-password")
        assert (await users.log_in("ana", "s3cret-enough")).session.user_name == "ana"
    finally:
        await storage.close()


async def test_sessions_expire(database_url: str) -> None:
    storage = await open_storage(database_url)
    clock = Clock()
    users = ConsoleUsers(
        SqlConsoleStore(storage.db), SessionPolicy(lifetime=timedelta(hours=1)), clock=clock
    )
    try:
        await users.add("ana", "s3cret-enough", "viewer")
        opened = await users.log_in("ana", "s3cret-enough")
        clock.now += timedelta(minutes=59)
        assert await users.session(opened.cookie) is not None
        clock.now += timedelta(minutes=2)
        assert await users.session(opened.cookie) is None
        assert await users.session("") is None
        await users.log_in("ana", "s3cret-enough")
        assert await users.store.prune_sessions(clock.now) == 0  # the expired one went then
    finally:
        await storage.close()

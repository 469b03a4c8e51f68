"""The support console's SQL: users, sessions, and the searches behind its pages
(:class:`~orderguard.storage.ports.ConsoleStore`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

from orderguard.storage.database import Database, Row, must_datetime, to_datetime, transaction
from orderguard.storage.errors import UniqueViolation
from orderguard.storage.ports import ConsoleSession, ConsoleUser, UserExists, WebhookRecord
from orderguard.storage.recovery import webhook_from_row

#: One log-in attempt counted under a key, atomically: a new or expired count starts at 1
#: and expires ``:until``; otherwise it goes up by one, and the attempt that reaches the
#: limit moves the expiry to ``:until`` (the lock-out). Every SET reads the old row.
_COUNT_ATTEMPT = (
    "INSERT INTO console_login_attempts (key_hash, attempts, expires_at) "
    "VALUES (:key, 1, :until) "
    "ON CONFLICT (key_hash) DO UPDATE SET "
    "attempts = CASE WHEN console_login_attempts.expires_at <= :now THEN 1 "
    "ELSE console_login_attempts.attempts + 1 END, "
    "expires_at = CASE WHEN console_login_attempts.expires_at <= :now "
    "OR console_login_attempts.attempts + 1 = :limit THEN :until "
    "ELSE console_login_attempts.expires_at END "
    "RETURNING attempts"
)

#: The console's search: one index per way of naming an order (the primary key, the
#: merchant reference's unique key, ``orders_email``, ``payment_attempts_provider_ref``),
#: each branch its own index lookup. ORs across columns in one WHERE would make the
#: database read every order.
_SEARCH = (
    "SELECT id, created_at FROM orders WHERE id IN ("
    "SELECT id FROM orders WHERE id = :t "
    "UNION SELECT id FROM orders WHERE merchant_reference = :t "
    "UNION SELECT id FROM orders WHERE LOWER(customer_email) = LOWER(:t) "
    "UNION SELECT order_id FROM payment_attempts WHERE provider_ref = :t) "
    "ORDER BY created_at DESC, id DESC LIMIT :limit"
)


class SqlConsoleStore:
    """:class:`~orderguard.storage.ports.ConsoleStore` in SQLite or PostgreSQL."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def add_user(self, user: ConsoleUser) -> None:
        """Store a new user; raises :class:`UserExists`."""
        try:
            async with transaction(self._db) as conn:
                await conn.execute(
                    "INSERT INTO console_users (name, password_hash, role, created_at) "
                    "VALUES (:name, :hash, :role, :at)",
                    {
                        "name": user.name,
                        "hash": user.password_hash,
                        "role": user.role,
                        "at": user.created_at,
                    },
                )
        except UniqueViolation as exc:
            raise UserExists(user.name) from exc

    async def user(self, name: str) -> ConsoleUser | None:
        """The user called ``name``."""
        async with transaction(self._db, write=False) as conn:
            row = await conn.fetchone(
                "SELECT * FROM console_users WHERE name = :name", {"name": name}
            )
        return _user(row) if row else None

    async def users(self) -> list[ConsoleUser]:
        """Every user, by name."""
        async with transaction(self._db, write=False) as conn:
            rows = await conn.fetchall("SELECT * FROM console_users ORDER BY name")
        return [_user(row) for row in rows]

    async def remove_user(self, name: str) -> bool:
        """Remove the user and end their sessions; whether they existed."""
        async with transaction(self._db) as conn:
            await conn.execute("DELETE FROM console_sessions WHERE user_name = :n", {"n": name})
            return await conn.execute("DELETE FROM console_users WHERE name = :n", {"n": name}) > 0

    async def set_password(self, name: str, password_hash: str) -> bool:
        """New password: unlocks the user and ends their sessions; whether they exist."""
        async with transaction(self._db) as conn:
            await conn.execute("DELETE FROM console_sessions WHERE user_name = :n", {"n": name})
            changed = await conn.execute(
                "UPDATE console_users SET password_hash = :hash, failed_logins = 0, "
                "locked_until = NULL WHERE name = :n",
                {"n": name, "hash": password_hash},
            )
        return changed > 0

    async def rehash(self, name: str, password_hash: str) -> None:
        """Store a stronger hash of the same password."""
        async with transaction(self._db) as conn:
            await conn.execute(
                "UPDATE console_users SET password_hash = :hash WHERE name = :n",
                {"n": name, "hash": password_hash},
            )

    async def count_attempt(
        self, limits: Mapping[str, int], *, now: datetime, lock_until: datetime
    ) -> bool:
        """Count one log-in attempt under each key of ``limits``; whether every key is still
        within its limit (key → most attempts allowed until the count expires).

        Each key's count is one atomic upsert in its own transaction (so that concurrent
        attempts neither lose a count nor wait on each other in a deadlock): however many
        attempts arrive at once, at most ``limit`` see a count within the limit. A count
        expires at ``lock_until`` as of its first attempt, pushed back to ``lock_until`` as
        of the attempt that reaches the limit; expired counts are deleted here.
        """
        admitted = True
        for key in sorted(limits):
            async with transaction(self._db) as conn:
                row = await conn.fetchone(_COUNT_ATTEMPT, {
                    "key": key, "now": now, "until": lock_until, "limit": limits[key],
                })  # fmt: skip
            admitted = admitted and row is not None and int(row["attempts"]) <= limits[key]
        async with transaction(self._db) as conn:
            await conn.execute(
                "DELETE FROM console_login_attempts WHERE expires_at <= :now", {"now": now}
            )
        return admitted

    async def forget_attempts(self, keys: Iterable[str]) -> None:
        """Start the counts of ``keys`` afresh (after a success, or a new password)."""
        async with transaction(self._db) as conn:
            for key in sorted(keys):
                await conn.execute(
                    "DELETE FROM console_login_attempts WHERE key_hash = :key", {"key": key}
                )

    async def attempts(self, key: str, *, now: datetime) -> tuple[int, datetime] | None:
        """The unexpired count of attempts under ``key`` and when it expires."""
        async with transaction(self._db, write=False) as conn:
            row = await conn.fetchone(
                "SELECT attempts, expires_at FROM console_login_attempts "
                "WHERE key_hash = :key AND expires_at > :now",
                {"key": key, "now": now},
            )
        return (int(row["attempts"]), must_datetime(row["expires_at"])) if row else None

    async def logged_in(self, session: ConsoleSession) -> None:
        """Reset the user's failures and store their new session."""
        async with transaction(self._db) as conn:
            await conn.execute(
                "UPDATE console_users SET failed_logins = 0, locked_until = NULL WHERE name = :n",
                {"n": session.user_name},
            )
            await conn.execute(
                "INSERT INTO console_sessions (id_hash, user_name, csrf_token, created_at, "
                "expires_at) VALUES (:id, :user, :csrf, :created, :expires)",
                {
                    "id": session.id_hash,
                    "user": session.user_name,
                    "csrf": session.csrf_token,
                    "created": session.created_at,
                    "expires": session.expires_at,
                },
            )

    async def session(
        self, id_hash: str, *, now: datetime
    ) -> tuple[ConsoleSession, ConsoleUser] | None:
        """The unexpired session with this hash and its user."""
        async with transaction(self._db, write=False) as conn:
            row = await conn.fetchone(
                "SELECT s.id_hash, s.user_name, s.csrf_token, s.created_at AS s_created, "
                "s.expires_at, u.* FROM console_sessions s "
                "JOIN console_users u ON u.name = s.user_name "
                "WHERE s.id_hash = :id AND s.expires_at > :now",
                {"id": id_hash, "now": now},
            )
        if row is None:
            return None
        session = ConsoleSession(
            row["id_hash"],
            row["user_name"],
            row["csrf_token"],
            must_datetime(row["s_created"]),
            must_datetime(row["expires_at"]),
        )
        return session, _user(row)

    async def end_session(self, id_hash: str) -> None:
        """Log a browser out."""
        async with transaction(self._db) as conn:
            await conn.execute("DELETE FROM console_sessions WHERE id_hash = :id", {"id": id_hash})

    async def prune_sessions(self, now: datetime) -> int:
        """Delete expired sessions; how many."""
        async with transaction(self._db) as conn:
            return await conn.execute(
                "DELETE FROM console_sessions WHERE expires_at <= :now", {"now": now}
            )

    async def search(self, text: str, *, limit: int) -> list[str]:
        """Ids of orders whose id, merchant reference, email or provider reference is ``text``."""
        async with transaction(self._db, write=False) as conn:
            rows = await conn.fetchall(_SEARCH, {"t": text, "limit": limit})
        return [str(row["id"]) for row in rows]

    async def webhooks_for(self, order_id: str, *, limit: int = 50) -> list[WebhookRecord]:
        async with transaction(self._db, write=False) as conn:
            rows = await conn.fetchall(
                "SELECT * FROM webhook_events WHERE order_id = :id "
                "ORDER BY received_at DESC, id DESC LIMIT :limit",
                {"id": order_id, "limit": limit},
            )
        return [webhook_from_row(row) for row in rows]


def _user(row: Row) -> ConsoleUser:
    return ConsoleUser(
        name=row["name"],
        role=row["role"],
        password_hash=row["password_hash"],
        created_at=must_datetime(row["created_at"]),
        failed_logins=int(row["failed_logins"]),
        locked_until=to_datetime(row["locked_until"]),
    )

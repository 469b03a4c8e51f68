"""The support console's SQL: users, sessions, and the reads behind its pages."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from orderguard.domain.states import TERMINAL_ORDER_STATES
from orderguard.storage.database import (
    Database,
    Row,
    UniqueViolation,
    must_datetime,
    to_datetime,
    transaction,
)
from orderguard.storage.order_flags import HAS_OPEN_FLAG


class UserExists(Exception):
    """A console user with this name exists already."""


@dataclass(frozen=True, slots=True)
class ConsoleUser:
    """A person who may log in to the console."""

    name: str
    role: str
    password_hash: str
    created_at: datetime
    failed_logins: int = 0
    locked_until: datetime | None = None


@dataclass(frozen=True, slots=True)
class ConsoleSession:
    """A logged-in browser; only the SHA-256 of its cookie value is stored."""

    id_hash: str
    user_name: str
    csrf_token: str
    created_at: datetime
    expires_at: datetime


class SqlConsoleStore:
    """Console users and sessions, and the counts and searches its pages show."""

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

    async def failed_login(self, name: str, *, max_failures: int, lock_until: datetime) -> None:
        """Count a failed log-in; the ``max_failures``-th in a row locks the user."""
        async with transaction(self._db) as conn:
            await conn.execute(
                "UPDATE console_users SET "
                "locked_until = CASE WHEN failed_logins + 1 >= :max THEN :until "
                "ELSE locked_until END, "
                "failed_logins = CASE WHEN failed_logins + 1 >= :max THEN 0 "
                "ELSE failed_logins + 1 END "
                "WHERE name = :n",
                {"n": name, "max": max_failures, "until": lock_until},
            )

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

    # --- reads for the pages -------------------------------------------------------------

    async def orders_by_state(self) -> dict[str, int]:
        """How many orders are in each state."""
        async with transaction(self._db, write=False) as conn:
            rows = await conn.fetchall("SELECT state, COUNT(*) AS n FROM orders GROUP BY state")
        return {str(row["state"]): int(row["n"]) for row in rows}

    async def counts(self, *, stuck_since: datetime) -> dict[str, int]:
        """Flagged orders, stuck orders (unfinished, unchanged since ``stuck_since``), and
        webhooks received but not processed."""
        final = ", ".join(f"'{state}'" for state in sorted(TERMINAL_ORDER_STATES))
        async with transaction(self._db, write=False) as conn:
            flagged = await conn.fetchone(f"SELECT COUNT(*) AS n FROM orders WHERE {HAS_OPEN_FLAG}")
            stuck = await conn.fetchone(
                f"SELECT COUNT(*) AS n FROM orders WHERE state NOT IN ({final}) "
                "AND updated_at < :since",
                {"since": stuck_since},
            )
            webhooks = await conn.fetchone(
                "SELECT COUNT(*) AS n FROM webhook_events WHERE processed_at IS NULL"
            )
        return {
            "flagged": _n(flagged),
            "stuck": _n(stuck),
            "webhook_backlog": _n(webhooks),
        }

    async def search(self, text: str, *, limit: int) -> list[str]:
        """Ids of orders whose id, merchant reference, email or provider reference is ``text``."""
        async with transaction(self._db, write=False) as conn:
            rows = await conn.fetchall(
                "SELECT id, created_at FROM orders WHERE id = :t OR merchant_reference = :t "
                "OR LOWER(customer_email) = LOWER(:t) "
                "OR id IN (SELECT order_id FROM payment_attempts WHERE provider_ref = :t) "
                "ORDER BY created_at DESC LIMIT :limit",
                {"t": text, "limit": limit},
            )
        return [str(row["id"]) for row in rows]

    async def webhooks_for(self, order_id: str, *, limit: int = 50) -> list[Row]:
        """The raw webhook events stored for ``order_id``, newest first."""
        async with transaction(self._db, write=False) as conn:
            return await conn.fetchall(
                "SELECT id, provider, event_id, type, body, received_at, processed_at, attempts, "
                "last_error FROM webhook_events WHERE order_id = :id "
                "ORDER BY received_at DESC LIMIT :limit",
                {"id": order_id, "limit": limit},
            )


def _n(row: Row | None) -> int:
    return int(row["n"]) if row else 0


def _user(row: Row) -> ConsoleUser:
    return ConsoleUser(
        name=row["name"],
        role=row["role"],
        password_hash=row["password_hash"],
        created_at=must_datetime(row["created_at"]),
        failed_logins=int(row["failed_logins"]),
        locked_until=to_datetime(row["locked_until"]),
    )

"""Console users: passwords hashed with Argon2, roles, log-in with lock-out, sessions.

A session's cookie value is random; only its SHA-256 is stored, so a copy of the database
lets nobody in. Every session has its own CSRF token, which every console form repeats.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from orderguard.services.clock import Clock, system_clock
from orderguard.storage.console import ConsoleSession, ConsoleUser, SqlConsoleStore, UserExists

#: Shortest password accepted.
MIN_PASSWORD = 10
_NAME = re.compile(r"^[A-Za-z0-9._@-]{1,64}$")
_HASHER = PasswordHasher()
#: Verified against when the user does not exist, so that costs the same time.
_DUMMY_HASH = _HASHER.hash("orderguard-no-such-user")

__all__ = ["ConsoleUsers", "Role", "UserExists"]


class Role(StrEnum):
    """What a console user may do."""

    #: Reads every page; may not act.
    VIEWER = "viewer"
    #: Also rechecks, refunds, cancels, resends and clears flags.
    OPERATOR = "operator"
    #: Everything an operator may (users are managed with ``orderguard users``).
    ADMIN = "admin"

    @property
    def may_act(self) -> bool:
        """Whether this role may change orders."""
        return self is not Role.VIEWER


class InvalidUser(ValueError):
    """A user name, password or role that is not acceptable; the message says why."""


class LoginRefused(Exception):
    """Wrong user name or password (which of them is not said)."""


class AccountLocked(Exception):
    """Too many failed log-ins in a row: the account is locked for a while."""


@dataclass(frozen=True, slots=True)
class SessionPolicy:
    """How log-ins are limited and how long a session lasts."""

    max_failures: int = 5
    lockout: timedelta = timedelta(minutes=15)
    lifetime: timedelta = timedelta(hours=12)


@dataclass(frozen=True, slots=True)
class LoggedIn:
    """A session just opened: the cookie value to give the browser, and the session."""

    cookie: str
    session: ConsoleSession


class ConsoleUsers:
    """Manages console users and their sessions."""

    def __init__(
        self, store: SqlConsoleStore, policy: SessionPolicy, *, clock: Clock = system_clock
    ) -> None:
        self.store = store
        self._policy = policy
        self._clock = clock

    async def add(self, name: str, password: str, role: str) -> ConsoleUser:
        """A new user; raises :class:`InvalidUser` or :class:`UserExists`."""
        user = ConsoleUser(
            name=_checked_name(name),
            role=str(_checked_role(role)),
            password_hash=_HASHER.hash(_checked_password(password)),
            created_at=self._clock(),
        )
        await self.store.add_user(user)
        return user

    async def passwd(self, name: str, password: str) -> bool:
        """Set a new password (unlocks, ends sessions); whether the user exists."""
        return await self.store.set_password(name, _HASHER.hash(_checked_password(password)))

    async def log_in(self, name: str, password: str) -> LoggedIn:
        """Open a session; raises :class:`LoginRefused` or :class:`AccountLocked`."""
        now = self._clock()
        user = await self.store.user(name[:64])
        if user is None:
            _verify(_DUMMY_HASH, password)
            raise LoginRefused()
        if user.locked_until is not None and user.locked_until > now:
            raise AccountLocked()
        if not _verify(user.password_hash, password):
            until = now + self._policy.lockout
            await self.store.failed_login(
                user.name, max_failures=self._policy.max_failures, lock_until=until
            )
            raise LoginRefused()
        if _HASHER.check_needs_rehash(user.password_hash):
            await self.store.rehash(user.name, _HASHER.hash(password))
        cookie = secrets.token_urlsafe(32)
        session = ConsoleSession(
            id_hash=session_hash(cookie),
            user_name=user.name,
            csrf_token=secrets.token_urlsafe(32),
            created_at=now,
            expires_at=now + self._policy.lifetime,
        )
        await self.store.logged_in(session)
        await self.store.prune_sessions(now)  # expired sessions go as new ones come
        return LoggedIn(cookie, session)

    async def session(self, cookie: str) -> tuple[ConsoleSession, ConsoleUser] | None:
        """The live session behind a cookie value, and its user."""
        if not cookie:
            return None
        return await self.store.session(session_hash(cookie), now=self._clock())

    async def log_out(self, cookie: str) -> None:
        """End the session behind a cookie value."""
        await self.store.end_session(session_hash(cookie))


def session_hash(cookie: str) -> str:
    """What is stored of a session cookie's value."""
    return hashlib.sha256(cookie.encode()).hexdigest()


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _HASHER.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def _checked_name(name: str) -> str:
    if not _NAME.match(name):
        raise InvalidUser("a user name is 1-64 letters, digits, '.', '_', '@' or '-'")
    return name


def _checked_role(role: str) -> Role:
    try:
        return Role(role)
    except ValueError:
        raise InvalidUser(f"role must be one of {', '.join(Role)}, not {role!r}") from None


def _checked_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise InvalidUser(f"a password needs at least {MIN_PASSWORD} characters")
    return password


def policy(
    *, max_failed_logins: int, lockout_minutes: float, session_hours: float
) -> SessionPolicy:
    """The session policy from the ``console_*`` settings."""
    return SessionPolicy(
        max_failures=max(1, max_failed_logins),
        lockout=timedelta(minutes=lockout_minutes),
        lifetime=timedelta(hours=session_hours),
    )

"""Console users: passwords hashed with Argon2, roles, log-in with lock-out, sessions.

A session's cookie value is random; only its SHA-256 is stored, so a copy of the database
lets nobody in. Every session has its own CSRF token, which every console form repeats.

A log-in attempt is counted before its password is checked, once against the name tried
(existing or not) and once against the client's address, each in one atomic statement: a
name gets at most ``max_failures`` guesses and an address ``address_max_failures`` per
lock-out period, however many arrive at once. Every attempt costs exactly one Argon2 check
(against a dummy hash for an unknown name or a locked one), in the bounded pool of
:mod:`~orderguard.services.password_hashing`, and every refusal is the same
:class:`LoginRefused`: an unknown name, a wrong password and a lock look alike.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from orderguard.services.clock import Clock, system_clock
from orderguard.services.password_hashing import HASHING, HashingBusy, PasswordHashing
from orderguard.storage.ports import ConsoleSession, ConsoleStore, ConsoleUser, UserExists

#: Shortest password accepted.
MIN_PASSWORD = 10
#: Longest user name; a longer one tried at log-in is cut to this.
MAX_NAME = 64
_NAME = re.compile(r"^[A-Za-z0-9._@-]{1,64}$")
#: How many times a name's limit an address may try (several people may share one).
ADDRESS_FACTOR = 4
#: IPv6 clients are counted by their /64 network, which one customer usually has whole.
IPV6_PREFIX = 64

__all__ = ["ConsoleUsers", "HashingBusy", "Role", "UserExists"]


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
    """Wrong user name or password, or too many attempts (which of them is not said)."""


@dataclass(frozen=True, slots=True)
class SessionPolicy:
    """How log-ins are limited and how long a session lasts."""

    #: Guesses one user name gets per lock-out period.
    max_failures: int = 5
    lockout: timedelta = timedelta(minutes=15)
    lifetime: timedelta = timedelta(hours=12)
    #: Guesses one client address gets per lock-out period, whatever names it tries.
    address_max_failures: int = 5 * ADDRESS_FACTOR


@dataclass(frozen=True, slots=True)
class LoggedIn:
    """A session just opened: the cookie value to give the browser, and the session."""

    cookie: str
    session: ConsoleSession


class ConsoleUsers:
    """Manages console users and their sessions."""

    def __init__(
        self,
        store: ConsoleStore,
        policy: SessionPolicy,
        *,
        clock: Clock = system_clock,
        hashing: PasswordHashing = HASHING,
    ) -> None:
        self.store = store
        self._policy = policy
        self._clock = clock
        self._hashing = hashing

    async def add(self, name: str, password: str, role: str) -> ConsoleUser:
        """A new user; raises :class:`InvalidUser` or :class:`UserExists`."""
        user = ConsoleUser(
            name=_checked_name(name),
            role=str(_checked_role(role)),
            password_hash=await self._hashing.hash(_checked_password(password)),
            created_at=self._clock(),
        )
        await self.store.add_user(user)
        return user

    async def passwd(self, name: str, password: str) -> bool:
        """Set a new password (unlocks, ends sessions); whether the user exists."""
        hashed = await self._hashing.hash(_checked_password(password))
        changed = await self.store.set_password(name, hashed)
        await self.store.forget_attempts([name_key(name)])
        return changed

    async def log_in(self, name: str, password: str, *, address: str = "") -> LoggedIn:
        """Open a session for ``name`` logging in from ``address`` (the client's IP, when
        known); raises :class:`LoginRefused` for every refusal alike, or
        :class:`HashingBusy` when the hashing pool is full (nothing is counted then)."""
        now = self._clock()
        name = name[:MAX_NAME]
        limits = {name_key(name): self._policy.max_failures}
        if address:
            limits[address_key(address)] = self._policy.address_max_failures
        # before counting: a busy refusal costs nothing
        with self._hashing.reserve(address_key(address) if address else "") as slot:
            admitted = await self.store.count_attempt(
                limits, now=now, lock_until=now + self._policy.lockout
            )
            user = await self.store.user(name)
            known = admitted and user is not None
            # an unknown or locked name costs one check too, against the dummy hash
            right = await slot.verify(user.password_hash if known and user else None, password)
        if not (known and right and user):
            raise LoginRefused()
        # a success starts the name's count afresh, never the address's: logging in to one
        # account must not buy an address more guesses at the others
        await self.store.forget_attempts([name_key(name)])
        if self._hashing.hasher.check_needs_rehash(user.password_hash):
            with contextlib.suppress(HashingBusy):  # a stronger hash can wait for next time
                await self.store.rehash(user.name, await self._hashing.hash(password))
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

    async def locked_until(self, name: str) -> datetime | None:
        """Until when log-ins as ``name`` are refused (``None``: they are not)."""
        count = await self.store.attempts(name_key(name), now=self._clock())
        if count is None or count[0] < self._policy.max_failures:
            return None
        return count[1]

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


def name_key(name: str) -> str:
    """What log-in attempts on the name ``name`` are counted under (a hash: people type
    passwords into the name field, and such a mistake must not be kept)."""
    return _key("name", name[:MAX_NAME])


def address_key(address: str) -> str:
    """What log-in attempts from client ``address`` are counted under (IPv6 by /64)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return _key("address", address)
    if ip.version == 6 and ip.ipv4_mapped is None:
        return _key("address", str(ipaddress.ip_network(f"{ip}/{IPV6_PREFIX}", strict=False)))
    return _key("address", str(ip.ipv4_mapped or ip) if ip.version == 6 else str(ip))


def _key(kind: str, value: str) -> str:
    return hashlib.sha256(f"{kind}\0{value}".encode()).hexdigest()


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
        address_max_failures=max(1, max_failed_logins) * ADDRESS_FACTOR,
        lockout=timedelta(minutes=lockout_minutes),
        lifetime=timedelta(hours=session_hours),
    )

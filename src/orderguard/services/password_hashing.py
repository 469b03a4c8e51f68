"""Argon2 off the event loop, in a small bounded pool that leaves checkout its CPU.

One Argon2 check costs a quarter of a second of CPU. Run on the event loop, a few log-in
posts a second stall every other request the process serves, order intake included. Here
every hash and every check runs in a dedicated pool of :data:`WORKERS` thread, with at
most :data:`QUEUE` more waiting their turn; one more is refused at once with
:class:`HashingBusy` (the console answers 503 with ``Retry-After``), so a flood of log-ins
costs a bounded amount of memory. Argon2 runs on one lane (:data:`PARALLELISM`: the same
memory and passes, on one core instead of four threads), and after each hash the thread
rests :data:`REST` times as long as the hash took before the next one: a flood takes at
most half of one core, whatever the number of cores, and a lone log-in never waits.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

T = TypeVar("T")

#: Threads that hash: one, so a flood never takes more than one core.
WORKERS = 1
#: Hashes that may wait for a thread; one more is refused with :class:`HashingBusy`.
QUEUE = 16
#: Places one client (one address) may hold at once, so that one flooding client cannot
#: fill the queue and keep everybody else's log-in out.
PER_CLIENT = 2
#: Argon2 lanes per hash: one core per hash (argon2-cffi's default, 4, spreads one hash
#: over four threads). Memory (64 MiB) and passes (3) stay argon2-cffi's defaults.
PARALLELISM = 1
#: How long a hashing thread rests after a hash, as a multiple of the time it took.
REST = 1.0


class HashingBusy(Exception):
    """Every hashing thread is busy and the queue is full: try again in a moment."""


class PasswordHashing:
    """Hashes and checks passwords in a bounded, paced pool of threads."""

    def __init__(
        self,
        *,
        workers: int = WORKERS,
        queue: int = QUEUE,
        per_client: int = PER_CLIENT,
        rest: float = REST,
        hasher: PasswordHasher | None = None,
    ) -> None:
        self.hasher = hasher or PasswordHasher(parallelism=PARALLELISM)
        self._workers = max(1, workers)
        self._rest = max(0.0, rest)
        self._rested_at = 0.0  # (monotonic) when the threads may hash again
        self._capacity = self._workers + max(0, queue)
        self._taken = 0
        self._per_client = max(1, per_client)
        self._by_client: dict[str, int] = {}
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._dummy: str | None = None

    def dummy_hash(self) -> str:
        """A hash no password is known for, made with this pool's parameters, so that
        checking against it costs what checking against a user's hash costs (made once,
        in a hashing thread)."""
        if self._dummy is None:
            self._dummy = self.hasher.hash(secrets.token_urlsafe(32))
        return self._dummy

    @property
    def taken(self) -> int:
        """Hashes running or waiting now."""
        return self._taken

    def reserve(self, client: str = "") -> Slot:
        """A place in the pool for one hash; raises :class:`HashingBusy` when it is full, or
        when ``client`` (an address; empty: not known) already holds its share of it."""
        with self._lock:
            held = self._by_client.get(client, 0) if client else 0
            if self._taken >= self._capacity or held >= self._per_client:
                raise HashingBusy()
            self._taken += 1
            if client:
                self._by_client[client] = held + 1
        return Slot(self, client)

    async def hash(self, password: str) -> str:
        """The Argon2 hash of ``password``; raises :class:`HashingBusy`."""
        with self.reserve() as slot:
            return await slot.hash(password)

    async def verify(self, password_hash: str, password: str) -> bool:
        """Whether ``password`` matches ``password_hash``; raises :class:`HashingBusy`."""
        with self.reserve() as slot:
            return await slot.verify(password_hash, password)

    def close(self) -> None:
        """Stop the threads once the hashes already given to them are done."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def _release(self, client: str) -> None:
        with self._lock:
            self._taken -= 1
            if client:
                left = self._by_client.pop(client) - 1
                if left:
                    self._by_client[client] = left

    def _submit(self, work: Callable[[], T]) -> Future[T]:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="og-argon2")
            pool = self._pool
        return pool.submit(self._paced, work)

    def _paced(self, work: Callable[[], T]) -> T:
        """``work``, once the rest owed for the previous hash is over (in a pool thread)."""
        wait = self._rested_at - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        started = time.monotonic()
        try:
            return work()
        finally:
            ended = time.monotonic()
            self._rested_at = max(self._rested_at, ended + (ended - started) * self._rest)


class Slot:
    """One reserved place in a :class:`PasswordHashing` pool, for one hash or check.

    The place is given back when the thread has finished the work (not when the awaiting
    request gives up), or on leaving the ``with`` block if no work was ever handed over.
    """

    def __init__(self, owner: PasswordHashing, client: str = "") -> None:
        self._owner, self._client = owner, client
        self._held = True

    def __enter__(self) -> Slot:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        """Give the place back unless a thread already has the work."""
        if self._held:
            self._held = False
            self._owner._release(self._client)

    async def hash(self, password: str) -> str:
        """The Argon2 hash of ``password``."""
        return await self._run(lambda: self._owner.hasher.hash(password))

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """Whether ``password`` matches ``password_hash`` (a malformed hash never does);
        with ``None``, a check against the dummy hash that costs the same and fails."""
        owner = self._owner

        def check() -> bool:
            try:
                if password_hash is None:
                    owner.hasher.verify(owner.dummy_hash(), password)
                    return False
                return owner.hasher.verify(password_hash, password)
            except (VerificationError, InvalidHashError):
                return False

        return await self._run(check)

    async def _run(self, work: Callable[[], T]) -> T:
        if not self._held:
            raise RuntimeError("a slot does one piece of work")
        future = self._owner._submit(work)
        self._held = False  # from now on the thread gives the place back when it is done
        future.add_done_callback(lambda _: self._owner._release(self._client))
        return await asyncio.wrap_future(future)


#: The process's one pool, shared by every console and ``orderguard users``.
HASHING = PasswordHashing()

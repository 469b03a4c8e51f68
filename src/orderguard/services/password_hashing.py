"""Argon2 off the event loop, in a small bounded pool that checkout always wins against.

One Argon2 check costs about 0.2 s and more than one core. Run on the event loop, a few
log-in posts a second stall every other request the process serves, order intake
included. Here every hash and every check runs in a dedicated thread pool of
:data:`WORKERS` threads, at the lowest CPU priority the operating system has, with at most
:data:`QUEUE` more waiting their turn. One more is refused at once with
:class:`HashingBusy` (the console answers 503 with ``Retry-After``), so a flood of log-ins
costs a bounded amount of memory and at most :data:`WORKERS` low-priority threads of CPU.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

T = TypeVar("T")

#: Threads that hash: one, so a flood never takes more than one thread's share of CPU.
WORKERS = 1
#: Hashes that may wait for a thread; one more is refused with :class:`HashingBusy`.
QUEUE = 16
#: The nice value of the hashing threads: the lowest priority, below every request.
NICE = 19


class HashingBusy(Exception):
    """Every hashing thread is busy and the queue is full: try again in a moment."""


class PasswordHashing:
    """Hashes and checks passwords in a bounded pool of low-priority threads."""

    def __init__(
        self, *, workers: int = WORKERS, queue: int = QUEUE, hasher: PasswordHasher | None = None
    ) -> None:
        self.hasher = hasher or PasswordHasher()
        self._workers = max(1, workers)
        self._capacity = self._workers + max(0, queue)
        self._taken = 0
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

    def reserve(self) -> Slot:
        """A place in the pool for one hash; raises :class:`HashingBusy` when it is full."""
        with self._lock:
            if self._taken >= self._capacity:
                raise HashingBusy()
            self._taken += 1
        return Slot(self)

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

    def _release(self) -> None:
        with self._lock:
            self._taken -= 1

    def _submit(self, work: Callable[[], T]) -> Future[T]:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(
                    self._workers, thread_name_prefix="og-argon2", initializer=_lowest_priority
                )
            pool = self._pool
        return pool.submit(work)


class Slot:
    """One reserved place in a :class:`PasswordHashing` pool, for one hash or check.

    The place is given back when the thread has finished the work (not when the awaiting
    request gives up), or on leaving the ``with`` block if no work was ever handed over.
    """

    def __init__(self, owner: PasswordHashing) -> None:
        self._owner = owner
        self._held = True

    def __enter__(self) -> Slot:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        """Give the place back unless a thread already has the work."""
        if self._held:
            self._held = False
            self._owner._release()

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
        future.add_done_callback(lambda _: self._owner._release())
        return await asyncio.wrap_future(future)


def _lowest_priority() -> None:
    """Run this thread, and the threads Argon2 starts from it, at the lowest CPU priority
    (Linux gives each thread its own nice value; elsewhere this does nothing)."""
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), NICE)


#: The process's one pool, shared by every console and ``orderguard users``.
HASHING = PasswordHashing()

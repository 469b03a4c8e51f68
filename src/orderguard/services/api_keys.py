"""Merchant API keys: created once, shown once, stored as a SHA-256 hash, with scopes."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from enum import StrEnum

from orderguard.domain import ids
from orderguard.services.clock import Clock, system_clock
from orderguard.storage.ports import ApiKey, UnitOfWorkFactory

#: Every secret starts with this, so leaked keys are easy to recognise and scan for.
SECRET_PREFIX = "og_sk_"


class KeyScope(StrEnum):
    """What a key may do; each API route needs one."""

    #: Read orders: ``GET /v1/orders`` and ``GET /v1/orders/{id}``.
    ORDERS_READ = "orders:read"
    #: Place orders, pay again, recheck and cancel them.
    ORDERS_WRITE = "orders:write"
    #: Refund paid orders (money leaves the shop).
    PAYMENTS_REFUND = "payments:refund"
    #: Everything above, and whatever is added later.
    ADMIN = "admin"


#: What ``orderguard keys create`` gives a key when no ``--scope`` is named: what a
#: checkout back-end needs (place and read orders), not refunds.
DEFAULT_SCOPES = (KeyScope.ORDERS_READ, KeyScope.ORDERS_WRITE)


def grants(scopes: Iterable[str], needed: KeyScope) -> bool:
    """Whether a key with ``scopes`` may do what needs ``needed`` (``admin`` may do all)."""
    held = set(scopes)
    return needed in held or KeyScope.ADMIN in held


def hash_secret(secret: str) -> str:
    """The stored form of a key's secret (high-entropy secrets need no slow hash)."""
    return hashlib.sha256(secret.encode()).hexdigest()


async def create_key(
    storage: UnitOfWorkFactory,
    name: str,
    *,
    scopes: Iterable[KeyScope] = DEFAULT_SCOPES,
    clock: Clock = system_clock,
) -> tuple[ApiKey, str]:
    """A new key with ``scopes`` and its secret; the secret is not stored and cannot be
    shown again."""
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(
        id=ids.new_id("key"),
        name=name,
        prefix=secret[: len(SECRET_PREFIX) + 6],
        secret_hash=hash_secret(secret),
        created_at=clock(),
        scopes=tuple(sorted({KeyScope(s).value for s in scopes})),
    )
    async with storage() as uow:
        await uow.api_keys.add(key)
        await uow.commit()
    return key, secret


async def authenticate(storage: UnitOfWorkFactory, secret: str) -> ApiKey | None:
    """The active key whose secret this is, or ``None``."""
    async with storage() as uow:
        return await uow.api_keys.find_active(hash_secret(secret))


async def keys_required(storage: UnitOfWorkFactory) -> bool:
    """Whether any key was ever created: then every API request must present a valid one.

    Revoked keys count, so revoking the last key locks the API rather than opening it.
    """
    async with storage() as uow:
        return bool(await uow.api_keys.all())


async def count_active_keys(storage: UnitOfWorkFactory) -> int:
    """How many keys are not revoked (production mode needs at least one)."""
    async with storage() as uow:
        return await uow.api_keys.count_active()


async def list_keys(storage: UnitOfWorkFactory) -> list[ApiKey]:
    """Every key, revoked ones included."""
    async with storage() as uow:
        return await uow.api_keys.all()


async def revoke_key(
    storage: UnitOfWorkFactory, key_id: str, *, clock: Clock = system_clock
) -> bool:
    """Revoke a key at once; ``False`` when no active key has that id."""
    async with storage() as uow:
        revoked = await uow.api_keys.revoke(key_id, clock())
        await uow.commit()
    return revoked

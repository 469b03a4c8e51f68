"""Merchant webhook endpoints and their signing secrets (``uow.endpoints``), one contract
run unchanged on the in-memory fake, SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from orderguard.domain.delivery import WebhookEndpoint, WebhookSecret
from orderguard.storage.database import UniqueViolation
from orderguard.storage.ports import UnitOfWorkFactory

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def endpoint(name: str, at: datetime = T0, **changes: object) -> WebhookEndpoint:
    return WebhookEndpoint(f"wep_{name}", f"https://{name}.example/hook", at, **changes)  # type: ignore[arg-type]


def secret(name: str, endpoint_id: str, at: datetime = T0) -> WebhookSecret:
    return WebhookSecret(f"whs_{name}", endpoint_id, f"whsec_{name}", at)


async def add(storage: UnitOfWorkFactory, e: WebhookEndpoint, s: WebhookSecret) -> None:
    async with storage() as uow:
        await uow.endpoints.add(e, s)
        await uow.commit()


async def test_endpoints_read_back_oldest_first_and_removed_ones_are_kept(
    storage: UnitOfWorkFactory,
) -> None:
    later = endpoint("b", T0 + timedelta(minutes=1), description="shop B", allow_private=True)
    await add(storage, later, secret("b", later.id))
    first = endpoint("a")
    await add(storage, first, secret("a", first.id))
    async with storage() as uow:
        assert await uow.endpoints.remove(first.id, at=T0 + timedelta(hours=1))
        assert not await uow.endpoints.remove(first.id, at=T0 + timedelta(hours=2))
        assert not await uow.endpoints.remove("wep_unknown", at=T0)
        await uow.commit()
    async with storage.reader() as uow:
        every = await uow.endpoints.all()
        active = await uow.endpoints.active()
    assert every == [
        WebhookEndpoint("wep_a", "https://a.example/hook", T0, removed_at=T0 + timedelta(hours=1)),
        WebhookEndpoint(
            "wep_b",
            "https://b.example/hook",
            T0 + timedelta(minutes=1),
            "shop B",
            allow_private=True,
        ),
    ]
    assert [e.id for e in active] == ["wep_b"]


async def test_a_taken_endpoint_or_secret_id_is_a_unique_violation(
    storage: UnitOfWorkFactory,
) -> None:
    await add(storage, endpoint("a"), secret("a", "wep_a"))
    with pytest.raises(UniqueViolation):
        async with storage() as uow:
            await uow.endpoints.add(endpoint("a"), secret("other", "wep_a"))
    with pytest.raises(UniqueViolation):
        async with storage() as uow:
            await uow.endpoints.add(endpoint("b"), secret("a", "wep_b"))
    async with storage.reader() as uow:
        assert [e.id for e in await uow.endpoints.all()] == ["wep_a"]
        assert [s.id for s in await uow.endpoints.secrets("wep_a", at=T0)] == ["whs_a"]


async def test_a_rotation_keeps_the_old_secrets_valid_until_the_overlap_ends(
    storage: UnitOfWorkFactory,
) -> None:
    await add(storage, endpoint("a"), secret("old", "wep_a"))
    rotated_at, overlap_end = T0 + timedelta(days=1), T0 + timedelta(days=1, hours=24)
    async with storage() as uow:
        assert await uow.endpoints.rotate(
            secret("new", "wep_a", rotated_at), old_expire_at=overlap_end
        )
        await uow.commit()
    async with storage.reader() as uow:
        during = await uow.endpoints.secrets("wep_a", at=rotated_at)
        after = await uow.endpoints.secrets("wep_a", at=overlap_end)
        other = await uow.endpoints.secrets("wep_other", at=rotated_at)
    assert [(s.id, s.expires_at) for s in during] == [
        ("whs_new", None),  # newest first
        ("whs_old", overlap_end),
    ]
    assert [s.id for s in after] == ["whs_new"]
    assert other == []


async def test_a_rotation_shortens_an_overlap_but_never_lengthens_one(
    storage: UnitOfWorkFactory,
) -> None:
    await add(storage, endpoint("a"), secret("one", "wep_a"))
    hours = [T0 + timedelta(hours=n) for n in range(10)]
    async with storage() as uow:
        await uow.endpoints.rotate(secret("two", "wep_a", hours[1]), old_expire_at=hours[5])
        await uow.endpoints.rotate(secret("three", "wep_a", hours[2]), old_expire_at=hours[9])
        await uow.commit()
    async with storage.reader() as uow:
        valid = await uow.endpoints.secrets("wep_a", at=hours[2])
    assert [(s.id, s.expires_at) for s in valid] == [
        ("whs_three", None),
        ("whs_two", hours[9]),
        ("whs_one", hours[5]),  # its end stays the earlier one
    ]
    async with storage() as uow:
        await uow.endpoints.rotate(secret("four", "wep_a", hours[2]), old_expire_at=hours[3])
        await uow.commit()
    async with storage.reader() as uow:
        valid = await uow.endpoints.secrets("wep_a", at=hours[2])
    assert [(s.id, s.expires_at) for s in valid] == [
        ("whs_four", None),
        ("whs_three", hours[3]),
        ("whs_two", hours[3]),
        ("whs_one", hours[3]),  # every overlap ends with the shortest
    ]


async def test_a_removed_or_unknown_endpoint_cannot_rotate(storage: UnitOfWorkFactory) -> None:
    await add(storage, endpoint("a"), secret("a", "wep_a"))
    async with storage() as uow:
        await uow.endpoints.remove("wep_a", at=T0)
        assert not await uow.endpoints.rotate(secret("new", "wep_a"), old_expire_at=T0)
        assert not await uow.endpoints.rotate(secret("x", "wep_unknown"), old_expire_at=T0)
        await uow.commit()
    async with storage.reader() as uow:
        assert [s.id for s in await uow.endpoints.secrets("wep_a", at=T0)] == ["whs_a"]


async def test_an_endpoint_not_committed_is_not_kept(storage: UnitOfWorkFactory) -> None:
    async with storage() as uow:
        await uow.endpoints.add(endpoint("a"), secret("a", "wep_a"))
    async with storage.reader() as uow:
        assert await uow.endpoints.all() == []
        assert await uow.endpoints.secrets("wep_a", at=T0) == []

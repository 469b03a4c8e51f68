"""Merchant webhook endpoints and their signing secrets in SQL (the ``EndpointRepository``
of :mod:`orderguard.storage.ports`)."""

from __future__ import annotations

from datetime import datetime

from orderguard.domain.delivery import WebhookEndpoint, WebhookSecret
from orderguard.storage.database import Connection, Row, must_datetime, to_datetime


class SqlEndpointRepository:
    """Merchant webhook endpoints, in one transaction; removed ones are kept (their
    deliveries refer to them) but receive nothing more."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    async def add(self, endpoint: WebhookEndpoint, secret: WebhookSecret) -> None:
        await self._conn.execute(
            "INSERT INTO webhook_endpoints (id, url, description, created_at, "
            "allow_private) VALUES (:id, :url, :description, :created_at, :allow_private)",
            {
                "id": endpoint.id,
                "url": endpoint.url,
                "allow_private": endpoint.allow_private,
                "description": endpoint.description,
                "created_at": endpoint.created_at,
            },
        )
        await self._conn.execute(_INSERT_SECRET, _secret_row(secret))

    async def active(self) -> list[WebhookEndpoint]:
        return [e for e in await self.all() if e.removed_at is None]

    async def all(self) -> list[WebhookEndpoint]:
        rows = await self._conn.fetchall("SELECT * FROM webhook_endpoints ORDER BY created_at, id")
        return [_endpoint(row) for row in rows]

    async def remove(self, endpoint_id: str, *, at: datetime) -> bool:
        changed = await self._conn.execute(
            "UPDATE webhook_endpoints SET removed_at = :at WHERE id = :id AND removed_at IS NULL",
            {"id": endpoint_id, "at": at},
        )
        return changed > 0

    async def rotate(self, secret: WebhookSecret, *, old_expire_at: datetime) -> bool:
        row = await self._conn.fetchone(
            "SELECT id FROM webhook_endpoints WHERE id = :id AND removed_at IS NULL",
            {"id": secret.endpoint_id},
        )
        if row is None:
            return False
        await self._conn.execute(
            "UPDATE webhook_secrets SET expires_at = :at WHERE endpoint_id = :endpoint "
            "AND (expires_at IS NULL OR expires_at > :at)",
            {"endpoint": secret.endpoint_id, "at": old_expire_at},
        )
        await self._conn.execute(_INSERT_SECRET, _secret_row(secret))
        return True

    async def secrets(self, endpoint_id: str, *, at: datetime) -> list[WebhookSecret]:
        rows = await self._conn.fetchall(
            "SELECT * FROM webhook_secrets WHERE endpoint_id = :id "
            "AND (expires_at IS NULL OR expires_at > :at) ORDER BY created_at DESC, id",
            {"id": endpoint_id, "at": at},
        )
        return [_secret(row) for row in rows]


_INSERT_SECRET = (
    "INSERT INTO webhook_secrets (id, endpoint_id, secret, created_at, expires_at) "
    "VALUES (:id, :endpoint_id, :secret, :created_at, :expires_at)"
)


def _secret_row(secret: WebhookSecret) -> dict[str, object]:
    return {
        "id": secret.id,
        "endpoint_id": secret.endpoint_id,
        "secret": secret.secret,
        "created_at": secret.created_at,
        "expires_at": secret.expires_at,
    }


def _endpoint(row: Row) -> WebhookEndpoint:
    return WebhookEndpoint(
        id=row["id"],
        url=row["url"],
        description=row["description"],
        created_at=must_datetime(row["created_at"]),
        removed_at=to_datetime(row["removed_at"]),
        allow_private=bool(row["allow_private"]),
    )


def _secret(row: Row) -> WebhookSecret:
    return WebhookSecret(
        id=row["id"],
        endpoint_id=row["endpoint_id"],
        secret=row["secret"],
        created_at=must_datetime(row["created_at"]),
        expires_at=to_datetime(row["expires_at"]),
    )

"""Idempotency records and merchant API keys in SQL."""

from __future__ import annotations

from datetime import datetime

from orderguard.domain.order import Order
from orderguard.storage.database import Connection, Row, must_datetime, to_datetime
from orderguard.storage.orders import SqlOrderRepository
from orderguard.storage.ports import ApiKey, IdempotencyRecord

_CLAIM = """
INSERT INTO idempotency_keys (scope, key, fingerprint, order_id, response_status,
    response_body, locked_until, created_at)
VALUES (:scope, :key, :fingerprint, :order_id, :response_status, :response_body,
    :locked_until, :created_at)
ON CONFLICT (scope, key) DO NOTHING
RETURNING key
"""


_EXISTING = "SELECT * FROM idempotency_keys WHERE scope = :scope AND key = :key"


class SqlIdempotencyRepository:
    """Idempotency records in SQLite or PostgreSQL."""

    def __init__(self, conn: Connection, orders: SqlOrderRepository) -> None:
        self._conn = conn
        self._orders = orders

    async def claim(self, record: IdempotencyRecord) -> IdempotencyRecord | None:
        inserted = await self._conn.fetchone(_CLAIM, _row(record))
        if inserted is not None:
            return None
        row = await self._conn.fetchone(_EXISTING, {"scope": record.scope, "key": record.key})
        return _record(row) if row else None

    async def claim_for(self, record: IdempotencyRecord, order: Order) -> IdempotencyRecord | None:
        if not self._orders.adds_claiming(order):
            existing = await self.claim(record)
            if existing is None:
                await self._orders.add(order)
            return existing
        if await self._orders.add_claiming(order, _row(record)):  # one statement, alone
            return None
        rows = await self._conn.fetchall_alone(
            _EXISTING, {"scope": record.scope, "key": record.key}
        )
        return _record(rows[0]) if rows else None

    async def complete(
        self, scope: str, key: str, *, order_id: str, status: int, body: bytes
    ) -> None:
        # nothing reads its answer: sent with the commit where the driver can
        await self._conn.execute_at_commit(
            "UPDATE idempotency_keys SET order_id = :order_id, response_status = :status, "
            "response_body = :body, locked_until = NULL WHERE scope = :scope AND key = :key",
            {
                "scope": scope,
                "key": key,
                "order_id": order_id,
                "status": status,
                "body": body.decode(),
            },
        )

    async def prune(self, created_before: datetime) -> int:
        return await self._conn.execute(
            "DELETE FROM idempotency_keys WHERE created_at < :before", {"before": created_before}
        )

    async def prunable(self, created_before: datetime) -> int:
        row = await self._conn.fetchone(
            "SELECT COUNT(*) AS n FROM idempotency_keys WHERE created_at < :before",
            {"before": created_before},
        )
        return int(row["n"]) if row else 0


def _row(record: IdempotencyRecord) -> Row:
    body = record.response_body.decode() if record.response_body is not None else None
    return {
        "scope": record.scope,
        "key": record.key,
        "fingerprint": record.fingerprint,
        "order_id": record.order_id,
        "response_status": record.response_status,
        "response_body": body,
        "locked_until": record.locked_until,
        "created_at": record.created_at,
    }


def _record(row: Row) -> IdempotencyRecord:
    body = row["response_body"]
    return IdempotencyRecord(
        scope=row["scope"],
        key=row["key"],
        fingerprint=row["fingerprint"],
        created_at=must_datetime(row["created_at"]),
        order_id=row["order_id"],
        response_status=row["response_status"],
        response_body=body.encode() if body is not None else None,
        locked_until=to_datetime(row["locked_until"]),
    )


class SqlApiKeyRepository:
    """Merchant API keys in SQLite or PostgreSQL."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    async def add(self, key: ApiKey) -> None:
        await self._conn.execute(
            "INSERT INTO api_keys (id, name, prefix, secret_hash, created_at, revoked_at, "
            "scopes) VALUES (:id, :name, :prefix, :secret_hash, :created_at, :revoked_at, "
            ":scopes)",
            {
                "id": key.id,
                "name": key.name,
                "prefix": key.prefix,
                "secret_hash": key.secret_hash,
                "created_at": key.created_at,
                "revoked_at": key.revoked_at,
                "scopes": " ".join(key.scopes),
            },
        )

    async def all(self) -> list[ApiKey]:
        rows = await self._conn.fetchall("SELECT * FROM api_keys ORDER BY created_at, id")
        return [_key(row) for row in rows]

    async def find_active(self, secret_hash: str) -> ApiKey | None:
        row = await self._conn.fetchone(
            "SELECT * FROM api_keys WHERE secret_hash = :h AND revoked_at IS NULL",
            {"h": secret_hash},
        )
        return _key(row) if row else None

    async def revoke(self, key_id: str, at: datetime) -> bool:
        changed = await self._conn.execute(
            "UPDATE api_keys SET revoked_at = :at WHERE id = :id AND revoked_at IS NULL",
            {"id": key_id, "at": at},
        )
        return changed == 1

    async def count_active(self) -> int:
        row = await self._conn.fetchone(
            "SELECT COUNT(*) AS n FROM api_keys WHERE revoked_at IS NULL"
        )
        return int(row["n"]) if row else 0


def _key(row: Row) -> ApiKey:
    return ApiKey(
        id=row["id"],
        name=row["name"],
        prefix=row["prefix"],
        secret_hash=row["secret_hash"],
        created_at=must_datetime(row["created_at"]),
        revoked_at=to_datetime(row["revoked_at"]),
        scopes=tuple(row["scopes"].split()),
    )

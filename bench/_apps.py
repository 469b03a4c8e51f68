"""The two baselines the intake benchmark compares against, served like ``orderguard serve``.

``python bench/_apps.py parse --port P``  (a) parse the JSON body, answer 201.
``python bench/_apps.py cte --port P``    (b) also write the order, its lines, a timeline
entry, an outbox event and an idempotency record in ONE data-modifying CTE, through a
psycopg async pool (``ORDERGUARD_DATABASE_URL``, ``ORDERGUARD_DB_POOL_SIZE``).

Both answer a 201 with an order document shaped like the real one, so the response bytes
are comparable. Neither validates, authenticates or adds a request id: they are floors.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import secrets
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import orjson
from fastapi import FastAPI, Request
from starlette.responses import Response

JSON = "application/json"

# k first so that a reused key writes nothing (the other inserts select FROM k / FROM o).
# Foreign keys are checked at the end of the statement, so children may reference o.
CTE = """
WITH k AS (
    INSERT INTO idempotency_keys (scope, key, fingerprint, order_id, response_status,
        response_body, locked_until, created_at)
    VALUES (%(scope)s, %(key)s, %(fingerprint)s, %(id)s, 201, %(body)s, NULL, %(now)s)
    ON CONFLICT (scope, key) DO NOTHING
    RETURNING key
), o AS (
    INSERT INTO orders (id, merchant_reference, state, currency, amount_total, customer_email,
        customer_name, customer_phone, ship_line1, ship_line2, ship_city, ship_postal_code,
        ship_country, locale, status_token, flag_reason, version, created_at, updated_at)
    SELECT %(id)s, %(ref)s::text, 'received', %(currency)s, %(total)s::bigint, %(email)s,
        %(name)s, %(phone)s::text, %(line1)s, %(line2)s::text, %(city)s, %(postal)s,
        %(country)s, 'en', %(token)s, NULL, 1, %(now)s, %(now)s
    FROM k
    RETURNING id
), l AS (
    INSERT INTO order_lines (order_id, position, sku, name, quantity, unit_amount)
    SELECT o.id, x.position, x.sku, x.name, x.quantity, x.unit_amount
    FROM o, unnest(%(positions)s::int[], %(skus)s::text[], %(names)s::text[],
        %(quantities)s::int[], %(amounts)s::bigint[])
        AS x(position, sku, name, quantity, unit_amount)
), t AS (
    INSERT INTO timeline (id, order_id, at, kind, from_state, to_state, cause, actor, note,
        request_id)
    SELECT %(tle)s, o.id, %(now)s, 'state_changed', NULL, 'received', 'api', NULL,
        'order received', %(request_id)s FROM o
), e AS (
    INSERT INTO outbox (id, order_id, type, payload, created_at)
    SELECT %(evt)s, o.id, 'order.received', %(payload)s, %(now)s FROM o
)
SELECT (SELECT key FROM k) AS claimed
"""


def _id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def _document(data: dict[str, Any], order_id: str, token: str, now: str) -> dict[str, Any]:
    """An order document shaped like ``orderguard.api.render.order_document``."""
    items = [{**item, "amount": item["quantity"] * item["unit_amount"]} for item in data["items"]]
    return {
        "id": order_id,
        "state": "received",
        "merchant_reference": data.get("merchant_reference"),
        "amount_total": sum(i["amount"] for i in items),
        "currency": data["currency"],
        "items": items,
        "customer": data["customer"],
        "locale": "en",
        "flag_reason": None,
        "created_at": now,
        "updated_at": now,
        "status_url": f"http://127.0.0.1:8000/orders/{order_id}?token={token}",
        "next_action": None,
        "payment_attempts": [],
    }


def parse_app() -> FastAPI:
    """(a) Parse the same JSON, answer 201."""
    app = FastAPI()

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/v1/orders")
    async def place(request: Request) -> Response:
        if "idempotency-key" not in request.headers:
            return Response(b'{"error":"key"}', 400, media_type=JSON)
        data = orjson.loads(await request.body())
        order_id = _id("ord")
        body = orjson.dumps(_document(data, order_id, secrets.token_urlsafe(24), _now()))
        return Response(body, 201, headers={"Location": f"/v1/orders/{order_id}"}, media_type=JSON)

    return app


def _now() -> str:
    return datetime.now(UTC).isoformat()


def cte_app() -> FastAPI:
    """(b) Parse the same JSON, write the same rows in one statement, answer 201."""
    import psycopg
    from psycopg_pool import AsyncConnectionPool

    url = os.environ["ORDERGUARD_DATABASE_URL"]
    size = int(os.environ.get("ORDERGUARD_DB_POOL_SIZE", "10"))
    pool: AsyncConnectionPool[psycopg.AsyncConnection[Any]] = AsyncConnectionPool(
        url,
        min_size=1,
        max_size=size,
        open=False,
        timeout=10.0,
        kwargs={"autocommit": True, "application_name": os.environ.get("PGAPPNAME", "bench-cte")},
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await pool.open(wait=True, timeout=10.0)
        try:
            yield
        finally:
            await pool.close()

    app = FastAPI(lifespan=lifespan)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/v1/orders")
    async def place(request: Request) -> Response:
        key = request.headers.get("idempotency-key")
        if key is None:
            return Response(b'{"error":"key"}', 400, media_type=JSON)
        raw = await request.body()
        data = orjson.loads(raw)
        order_id, token, at = _id("ord"), secrets.token_urlsafe(24), datetime.now(UTC)
        document = _document(data, order_id, token, at.isoformat())
        body = orjson.dumps(document)
        customer, address, items = (
            data["customer"],
            data["customer"]["shipping_address"],
            data["items"],
        )
        params = {
            "scope": "local",
            "key": key,
            "fingerprint": hashlib.sha256(b"POST /v1/orders\n" + raw).hexdigest(),
            "id": order_id,
            "body": body.decode(),
            "now": at,
            "ref": data.get("merchant_reference"),
            "currency": data["currency"],
            "total": document["amount_total"],
            "email": customer["email"].lower(),
            "name": customer["name"],
            "phone": customer.get("phone"),
            "line1": address["line1"],
            "line2": address.get("line2"),
            "city": address["city"],
            "postal": address["postal_code"],
            "country": address.get("country") or "PT",
            "token": token,
            "positions": list(range(len(items))),
            "skus": [i["sku"] for i in items],
            "names": [i["name"] for i in items],
            "quantities": [i["quantity"] for i in items],
            "amounts": [i["unit_amount"] for i in items],
            "tle": _id("tle"),
            "request_id": _id("req"),
            "evt": _id("evt"),
            "payload": orjson.dumps(
                {
                    "order_id": order_id,
                    "state": "received",
                    "amount_total": document["amount_total"],
                    "currency": data["currency"],
                    "merchant_reference": data.get("merchant_reference"),
                    "flag_reason": None,
                }
            ).decode(),
        }
        async with pool.connection() as conn:
            cursor = await conn.execute(CTE, params)
            row = await cursor.fetchone()
        if row is None or row[0] is None:
            return Response(b'{"error":"key reused"}', 409, media_type=JSON)
        return Response(body, 201, headers={"Location": f"/v1/orders/{order_id}"}, media_type=JSON)

    return app


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser()
    parser.add_argument("which", choices=["parse", "cte"])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument(
        "--settle-heap",
        action="store_true",
        help="settle the heap as orderguard serve does before it serves (gc.freeze, young "
        "collections after 10,000 allocations): to measure what that alone is worth",
    )
    args = parser.parse_args()
    app = parse_app() if args.which == "parse" else cte_app()
    if args.settle_heap:
        from orderguard.api.server import settle_heap

        settle_heap()
    # Exactly the call in orderguard.cli.serve: one worker, loop/http "auto" (uvloop,
    # httptools), access log on at level info.
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")


if __name__ == "__main__":
    main()

"""Every PostgreSQL session orderguard opens runs its statements as planned, never compiled
to machine code first: JIT compilation, which PostgreSQL starts once a plan's estimated cost
passes ``jit_above_cost``, took 0.78 s of a 0.80 s reconciliation read on 10 M orders."""

from __future__ import annotations

from contextlib import AsyncExitStack

from orderguard.storage.connect import connect
from tests.conftest import _admin


async def test_every_postgresql_session_runs_without_jit(pg_url: str) -> None:
    """Even where the database turns JIT on for everyone, and makes every plan pass the
    threshold."""
    name = pg_url.rsplit("/", 1)[1]
    with _admin() as admin:
        admin.execute(f'ALTER DATABASE "{name}" SET jit = on')
        admin.execute(f'ALTER DATABASE "{name}" SET jit_above_cost = 0')
    db = await connect(pg_url, pool_size=3)
    try:
        async with AsyncExitStack() as stack:
            txs = [await stack.enter_async_context(db.transaction(write=False)) for _ in range(3)]
            values = []
            for tx in txs:
                row = await tx.conn.fetchone("SHOW jit")
                assert row is not None
                values.append(next(iter(row.values())))
            plan = await txs[0].conn.fetchall(
                "EXPLAIN (ANALYZE, FORMAT TEXT) SELECT count(*) FROM generate_series(1, 1000)"
            )
    finally:
        await db.close()
    assert values == ["off", "off", "off"]
    assert not any("JIT" in str(next(iter(row.values()))) for row in plan)

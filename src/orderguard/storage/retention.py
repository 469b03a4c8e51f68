"""Retention in SQL: delete finished outbox rows and clear processed webhook bodies, in
bounded batches (each statement touches at most ``limit`` rows, so no lock is held long on
a big table). Orders, payment attempts, the timeline and refunds are never touched.

The outbox repository and the webhook inbox (:mod:`orderguard.storage.outbox`,
:mod:`orderguard.storage.recovery`) call these on their unit of work's connection.
"""

from __future__ import annotations

from datetime import datetime

from orderguard.storage.database import Connection
from orderguard.storage.ports import EventsPruned, OutboxPruned

#: A delivery retention may delete: delivered before the cut-off, and its sink's floor is
#: past its event, so the relay will never copy that event to that sink again.
_FINISHED_DELIVERY = """
    d.state = 'delivered' AND d.delivered_at < :before
    AND d.event_seq <= (SELECT s.floor_seq FROM outbox_sinks s WHERE s.sink = d.sink)
"""
#: An event retention may delete (with no delivery left): committed before the cut-off and
#: below every known sink's floor (none known: nothing is done with it, it stays).
_FINISHED_EVENT = """
    o.created_at < :before AND o.seq <= (SELECT MIN(s.floor_seq) FROM outbox_sinks s)
"""


async def prune_outbox(
    conn: Connection, before: datetime, *, limit: int, skip_locked: str
) -> OutboxPruned:
    """Delete up to ``limit`` finished deliveries (and their attempts), then those of their
    events that are finished and left with no delivery (see ``OutboxRepository.prune``).

    The events are looked up by id, from the deliveries just deleted: an anti-join over the
    whole outbox would read every delivery of the table on each batch.
    """
    gone = await conn.fetchall(
        f"""
        DELETE FROM outbox_deliveries WHERE state = 'delivered' AND id IN (
            SELECT d.id FROM outbox_deliveries d WHERE {_FINISHED_DELIVERY}
            ORDER BY d.delivered_at LIMIT :limit{skip_locked}
        )
        RETURNING event_id, sink
        """,
        {"before": before, "limit": limit},
    )
    if not gone:
        return OutboxPruned(deliveries=0, events=0)
    await conn.executemany(
        "DELETE FROM outbox_attempts WHERE event_id = :event_id AND sink = :sink",
        [{"event_id": r["event_id"], "sink": r["sink"]} for r in gone],
    )
    events = await _delete_events(conn, before, sorted({str(r["event_id"]) for r in gone}))
    return OutboxPruned(deliveries=len(gone), events=events)


async def prune_outbox_events(
    conn: Connection, before: datetime, *, after_seq: int, limit: int
) -> EventsPruned:
    """Look at up to ``limit`` finished events after ``after_seq`` in commit order and delete
    those with no delivery left (see ``OutboxRepository.prune_events``)."""
    rows = await conn.fetchall(
        f"""
        SELECT o.id, o.seq FROM outbox o WHERE o.seq > :after AND {_FINISHED_EVENT}
        ORDER BY o.seq LIMIT :limit
        """,
        {"before": before, "after": after_seq, "limit": limit},
    )
    if not rows:
        return EventsPruned(deleted=0, last_seq=None)
    deleted = await _delete_events(conn, before, [str(r["id"]) for r in rows])
    return EventsPruned(deleted=deleted, last_seq=max(int(r["seq"]) for r in rows))


async def _delete_events(conn: Connection, before: datetime, ids: list[str]) -> int:
    """Delete the events among ``ids`` that are finished and have no delivery left."""
    names = {f"e{n}": event_id for n, event_id in enumerate(ids)}
    listed = ", ".join(f":{name}" for name in names)
    return await conn.execute(
        f"""
        DELETE FROM outbox WHERE id IN (
            SELECT o.id FROM outbox o WHERE o.id IN ({listed}) AND {_FINISHED_EVENT}
              AND NOT EXISTS (SELECT 1 FROM outbox_deliveries d WHERE d.event_id = o.id)
        )
        """,
        {**names, "before": before},
    )


async def prunable_outbox(conn: Connection, before: datetime) -> OutboxPruned:
    """What :func:`prune_outbox` would delete, in all batches."""
    deliveries = await conn.fetchone(
        f"SELECT COUNT(*) AS n FROM outbox_deliveries d WHERE {_FINISHED_DELIVERY}",
        {"before": before},
    )
    events = await conn.fetchone(
        f"""
        SELECT COUNT(*) AS n FROM outbox o WHERE {_FINISHED_EVENT}
          AND NOT EXISTS (SELECT 1 FROM outbox_deliveries d
                          WHERE d.event_id = o.id AND NOT ({_FINISHED_DELIVERY}))
        """,
        {"before": before},
    )
    return OutboxPruned(
        deliveries=int(deliveries["n"]) if deliveries else 0,
        events=int(events["n"]) if events else 0,
    )


#: A webhook event whose body retention may clear: processed before the cut-off, not yet
#: cleared. Unprocessed events keep everything: the worker still has to apply them.
_PRUNABLE_WEBHOOK = "processed_at IS NOT NULL AND processed_at < :before AND pruned_at IS NULL"


async def prune_webhook_bodies(
    conn: Connection, before: datetime, *, at: datetime, limit: int, skip_locked: str
) -> int:
    """Clear the body and headers of up to ``limit`` processed events; how many. The row,
    with its (provider, event id), stays to refuse a late duplicate."""
    return await conn.execute(
        f"""
        UPDATE webhook_events SET body = '', headers = :no_headers, pruned_at = :at
        WHERE processed_at IS NOT NULL AND id IN (
            SELECT id FROM webhook_events WHERE {_PRUNABLE_WEBHOOK}
            ORDER BY processed_at LIMIT :limit{skip_locked}
        )
        """,
        # the empty headers go as a parameter: the statement's text (logged at debug) holds
        # no literal that looks like data
        {"before": before, "at": at, "limit": limit, "no_headers": "{}"},
    )


async def prunable_webhook_bodies(conn: Connection, before: datetime) -> int:
    """How many events :func:`prune_webhook_bodies` would clear, in all batches."""
    row = await conn.fetchone(
        f"SELECT COUNT(*) AS n FROM webhook_events WHERE {_PRUNABLE_WEBHOOK}", {"before": before}
    )
    return int(row["n"]) if row else 0

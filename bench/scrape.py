"""Benchmark: the time of a ``/metrics`` scrape's database gauges on one database.

    PYTHONPATH=$PWD/src:$PWD .venv/bin/python bench/scrape.py \\
        --url postgresql://postgres@127.0.0.1/og_scrape_200k --scrapes 100

Builds the collector as ``orderguard serve`` does (the janitor's default schedule, the relay's
``stream`` sink, reconciliation's counts) with its cache off, so every scrape takes a new
reading, and prints p50 and p95 of ``--scrapes`` scrapes (after 5 untimed ones). A database
is filled by ``bench/datagen.py``. Runs against any checkout: point ``PYTHONPATH`` at the
``src`` of the version to measure (the collector's constructor is the same).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from datetime import UTC, datetime

WARMUP = 5


async def _scrapes(url: str, count: int) -> list[float]:
    from orderguard.config import Settings
    from orderguard.domain.schedule import RecheckSchedule
    from orderguard.observability.collector import DatabaseCollector
    from orderguard.observability.hooks import RecordedExceptionCounts, RelayOutbox
    from orderguard.storage.connect import connect
    from orderguard.storage.unit_of_work import SqlStorage

    storage = SqlStorage(await connect(url, pool_size=4))
    settings = Settings.load(
        {"ORDERGUARD_DATABASE_URL": url, "ORDERGUARD_NATS_URL": "nats://127.0.0.1:4222"}
    )
    schedule = RecheckSchedule()
    collector = DatabaseCollector(
        storage.stats,
        watched=schedule.watched,
        shortest_wait=schedule.shortest_wait,
        outbox=RelayOutbox(settings, storage),
        reconciliation=RecordedExceptionCounts(storage),
        ttl_s=0.0,
    )
    timings = []
    try:
        for n in range(WARMUP + count):
            started = time.perf_counter()
            await collector.text(datetime.now(UTC))
            if n >= WARMUP:
                timings.append(time.perf_counter() - started)
    finally:
        await storage.close()
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--scrapes", type=int, default=100)
    args = parser.parse_args()
    timings = sorted(asyncio.run(_scrapes(args.url, args.scrapes)))
    p95 = timings[max(round(len(timings) * 0.95) - 1, 0)]
    print(
        f"{len(timings)} scrapes: p50 {statistics.median(timings) * 1000:.1f} ms, "
        f"p95 {p95 * 1000:.1f} ms, max {timings[-1] * 1000:.1f} ms"
    )


if __name__ == "__main__":
    main()

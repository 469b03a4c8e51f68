"""Server CPU per paid order all in: the request, and the webhooks the provider sends after.

``python bench/paid_allin.py --webhooks`` runs one run of ``bench/paid.py``'s ``webhooks``
variant (64 shoppers, every order charged with ``pm_card_visa`` at an ``orderguard
sandbox-provider`` in its own process that sends each charge's webhooks to ``serve``) on a
fresh database, and prints its all-in figure: ``serve``'s CPU time from the start of the
load until every webhook was processed, divided by the paid orders (see ``paid._all_in``).
Without ``--webhooks`` the headline's variant (no webhooks); ``--intake`` orders without a
payment (serve as in the ``inprocess`` variant, its sandbox idle), counted the same way.

Not a section of docs/benchmarks.md: a tool to compare two versions of the code back to
back (run it with ``PYTHONPATH`` pointing at each one's ``src``). Prints one JSON object.
Uses the database ``BENCH_PG_DB`` (default ``og_bench``), dropped and recreated.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import paid
from _common import BENCH, PYTHON, Context, migrated_database, pg_scalar


def _intake(ctx: Context, url: str, *, seconds: float, connections: int) -> dict[str, Any]:
    """Orders without a payment; the load generator's result with ``allin``."""
    paid._reset(url)
    setup = paid.Setup(ctx, url, "inprocess", "intake")
    try:
        assert setup.server is not None
        started, cpu_before = time.monotonic(), paid._cpu_seconds(setup.server.pid)
        load = [
            PYTHON, str(BENCH / "_loadgen.py"), f"--port={setup.server.port}",
            f"--connections={connections}", "--warmup=1", f"--duration={seconds}",
            f"--watch=server={setup.server.pid}",
        ]  # fmt: skip
        done = subprocess.run(load, capture_output=True, text=True, check=True)
        result: dict[str, Any] = json.loads(done.stdout)
        cpu = paid._cpu_seconds(setup.server.pid) - cpu_before
        orders = int(pg_scalar("SELECT COUNT(*) FROM orders", url))
    finally:
        setup.stop()
    result["allin"] = {
        "server_cpu": cpu,
        "seconds": time.monotonic() - started,
        "drain_seconds": 0.0,
        "paid_orders": orders,
        "events": 0,
        "processed": 0,
        "ms_per_order": 1000 * cpu / orders if orders else float("nan"),
    }
    return result


def run(*, webhooks: bool, intake: bool, seconds: float, connections: int) -> dict[str, object]:
    """One run from scratch; its figures."""
    with tempfile.TemporaryDirectory(prefix="og-allin-") as scratch:
        ctx = Context(
            rounds=1, warmup=1.0, duration=seconds, connections=connections, pool_size=None,
            workdir=Path(scratch), log=print,
        )  # fmt: skip
        url = migrated_database(ctx)
        if intake:
            result = _intake(ctx, url, seconds=seconds, connections=connections)
        else:
            mode = "webhooks" if webhooks else "external"
            result = paid._measure(
                ctx, url, mode, f"allin-{mode}", connections=connections, warmup=1.0,
                duration=seconds,
            )  # fmt: skip
    allin = result["allin"]
    figures: dict[str, object] = {
        "orders": allin["paid_orders"],
        "errors": result.get("errors"),
        "per_second": round(result["rps"], 1),
        "server_cpu_ms_per_order_window": round(result["cpu"]["server"] / result["rps"] * 1000, 2),
        "server_cpu_ms_per_order_all_in": round(allin["ms_per_order"], 2),
        "webhooks": allin["processed"],
        "drained_after_s": round(allin["seconds"], 1) if webhooks and not intake else None,
        "machine_busy_cores": round(result["cpu"]["machine"], 2),
    }
    if "check" in result:
        figures["check_problems"] = result["check"]["problem_count"]
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--webhooks", action="store_true", help="the sandbox sends its events")
    parser.add_argument("--intake", action="store_true", help="orders without a payment")
    parser.add_argument("--seconds", type=float, default=12.0, help="seconds of load")
    parser.add_argument("--connections", type=int, default=64)
    args = parser.parse_args()
    figures = run(
        webhooks=args.webhooks,
        intake=args.intake,
        seconds=args.seconds,
        connections=args.connections,
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()

"""What the garbage collector costs ``orderguard serve`` per order (issue 20).

``python bench/gc_cost.py --rounds 3`` starts ``serve --processes 1`` on a fresh database
(``BENCH_PG_DB``, default ``og_bench``) with ``bench/gc_hook`` on its ``PYTHONPATH``, which
times every collection in the server, runs the intake load of ``bench/intake.py`` (64
connections), and prints, per run, the orders/s, the server's CPU per order and the time
spent collecting per order, with the collections per generation. Runs alternate between
serve as shipped (its heap settled before it serves: ``settle_heap``) and serve with
Python's default collector settings (``OG_GC_DEFAULTS``: no freeze, young collections after
700 allocations). The collector's time is counted from the end of the warm-up to the end
of the load, and is part of the server's CPU, not added to it.
"""

from __future__ import annotations

import argparse
import glob
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    BENCH,
    PYTHON,
    VENV_BIN,
    Context,
    free_port,
    median,
    migrated_database,
    start_server,
)

WARMUP_S = 3.0


def _collected(stats: Path) -> tuple[float, list[int]]:
    """Seconds spent collecting so far, and collections per generation."""
    found = [f for f in glob.glob(f"{stats}.*") if not f.endswith(".new")]
    if len(found) != 1:
        raise RuntimeError(f"expected the statistics of one process, found {found}")
    data = json.loads(Path(found[0]).read_text(encoding="utf-8"))
    return sum(data["seconds"]), data["collections"]


def measure(defaults: bool, seconds: float) -> dict[str, Any]:
    """One run of the load against a fresh serve; its figures."""
    with tempfile.TemporaryDirectory(prefix="og-gc-") as scratch:
        workdir = Path(scratch)
        ctx = Context(
            rounds=1, warmup=0, duration=0, connections=0, pool_size=None, workdir=workdir,
            log=print,
        )  # fmt: skip
        url = migrated_database(ctx)
        env = ctx.env(url)
        stats = workdir / "gc"
        env |= {"PYTHONPATH": str(BENCH / "gc_hook"), "OG_GC_STATS": str(stats)}
        if defaults:
            env["OG_GC_DEFAULTS"] = "1"
        port = free_port()
        env["ORDERGUARD_PUBLIC_URL"] = f"http://127.0.0.1:{port}"
        argv = [
            str(VENV_BIN / "orderguard"), "serve", "--processes=1", "--host=127.0.0.1",
            f"--port={port}",
        ]  # fmt: skip
        server = start_server("serve", argv, env, workdir, port)
        try:
            load_argv = [
                PYTHON, str(BENCH / "_loadgen.py"), f"--port={port}", "--connections=64",
                f"--warmup={WARMUP_S}", f"--duration={seconds}", f"--watch=server={server.pid}",
            ]  # fmt: skip
            load = subprocess.Popen(load_argv, stdout=subprocess.PIPE, text=True)
            time.sleep(WARMUP_S)
            before = _collected(stats)
            stdout, _ = load.communicate(timeout=seconds + 60)
            after = _collected(stats)
        finally:
            server.stop()
    result = json.loads(stdout)
    orders = result["rps"] * seconds
    (spent, counts), (spent_after, counts_after) = before, after
    return {
        "settings": "Python's defaults" if defaults else "settled (as shipped)",
        "rps": result["rps"],
        "cpu_ms": 1000 * result["cpu"]["server"] / result["rps"],
        "gc_ms": 1000 * (spent_after - spent) / orders,
        "collections": [b - a for a, b in zip(counts, counts_after, strict=True)],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds measured")
    args = parser.parse_args()
    runs: list[dict[str, Any]] = []
    for number in range(1, args.rounds + 1):
        for defaults in (True, False):
            run = measure(defaults, args.duration)
            runs.append(run)
            print(
                f"round {number}: {run['settings']:22} {run['rps']:7.0f} orders/s  "
                f"server CPU {run['cpu_ms']:.3f} ms/order  collecting {run['gc_ms']:.3f} "
                f"ms/order  collections by generation {run['collections']}",
                flush=True,
            )
    for settings in ("Python's defaults", "settled (as shipped)"):
        mine = [r for r in runs if r["settings"] == settings]
        print(
            f"median, {settings}: {median([r['rps'] for r in mine]):.0f} orders/s, "
            f"server CPU {median([r['cpu_ms'] for r in mine]):.3f} ms/order, collecting "
            f"{median([r['gc_ms'] for r in mine]):.3f} ms/order"
        )


if __name__ == "__main__":
    main()

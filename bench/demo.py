"""Benchmark: ``orderguard demo`` as ``make demo`` runs it — the storm, its throughput and
how long orders take to be resolved.

Runs ``orderguard demo --json --seed S`` (1000 checkouts, SQLite, the sandbox's storm
profile in its own process, the compressed recovery schedule the report states) for
``ctx.rounds`` seeds and reports each run's figures: checkouts per second while shoppers
were checking out, wall time until every order was resolved, time to resolution
(p50/p99/max, from the order's creation to its final state or review flag) and whether
every invariant held. There is no baseline to divide by: these are the demo's own figures,
the proof that the default run fits in its two minutes on this machine.
"""

from __future__ import annotations

import json
import subprocess
import time
from typing import Any

from _common import VENV_BIN, Context

TITLE = "The demo: 1000 checkouts through the storm (SQLite, sandbox storm profile)"
SEEDS = (42, 1, 2, 3, 4)  # 42: what `make demo` runs


def _demo(ctx: Context, seed: int) -> subprocess.CompletedProcess[str]:
    """``orderguard demo --json`` for ``seed``. Stopped or timed out, the demo gets SIGTERM
    and the time to stop its own sandbox and API (``subprocess.run`` would SIGKILL it and
    leave them running: they are sessions of their own)."""
    argv = [str(VENV_BIN / "orderguard"), "demo", "--json", "--seed", str(seed)]
    env = ctx.env(f"sqlite:///{ctx.workdir / 'unused.db'}")
    with subprocess.Popen(
        argv, env=env, cwd=ctx.workdir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as proc:
        try:
            out, err = proc.communicate(timeout=900)
        except BaseException:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
            raise
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


def run(ctx: Context) -> list[dict[str, Any]]:
    results = []
    for seed in SEEDS[: max(1, ctx.rounds)]:
        t0 = time.monotonic()
        done = _demo(ctx, seed)
        wall = time.monotonic() - t0
        report: dict[str, Any] = json.loads(done.stdout)
        report["wall_s"] = wall
        report["exit"] = done.returncode
        ctx.log(
            f"demo seed {seed}: exit {done.returncode} in {wall:.0f}s, "
            f"{report['orders_per_s']} checkouts/s, resolution {report['resolution_seconds']}"
        )
        results.append(report)
    return results


def render(results: list[dict[str, Any]]) -> str:
    schedule = results[0]["schedule"]
    lines = [
        f"## {TITLE}",
        "",
        "`orderguard demo --json --seed S`: 1000 simulated shoppers (96 at a time) against "
        "`orderguard serve` with its worker on a fresh SQLite file and `orderguard "
        "sandbox-provider` with the storm profile (answers held "
        f"{schedule['sandbox_hold_s']} s, outages {schedule['sandbox_outage_s']} s); janitor "
        f"schedule scaled by {schedule['recheck_scale']} ({schedule['janitor_schedule_full_s']} s"
        f" → {schedule['janitor_schedule_demo_s']} s), client timeout "
        f"{schedule['client_timeout_s']} s, payment budget {schedule['payment_time_budget_s']} s.",
        "",
        "| seed | exit | whole run (s) | checkouts/s | all resolved after (s) "
        "| resolution p50 / p99 / max (s) | acknowledged | invariants broken |",
        "|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    for r in results:
        res = r["resolution_seconds"]
        lines.append(
            f"| {r['seed']} | {r['exit']} | {r['wall_s']:.0f} | {r['orders_per_s']:.1f} | "
            f"{r['resolved_in_s']:.0f} | {res['p50']:.1f} / {res['p99']:.1f} / {res['max']:.1f} | "
            f"{r['acknowledged']} | {sum(r['invariants'].values())} |"
        )
    return "\n".join(lines)


def section(ctx: Context) -> str:
    results = run(ctx)
    (ctx.workdir / "demo.json").write_text(json.dumps(results))
    return render(results)

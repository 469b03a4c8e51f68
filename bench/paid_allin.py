"""Server CPU per paid order all in: the request, and the webhooks the provider sends after.

``python bench/paid_allin.py --webhooks`` runs the load of ``bench/paid.py``'s headline (64
shoppers, every order charged with ``pm_card_visa`` at an ``orderguard sandbox-provider``
in its own process) on a fresh database, with the sandbox also sending each charge's
webhooks to ``serve`` (three events per card charge, as a Stripe account subscribed to them
does). The sandbox delivers at most 8 at once, so under load they lag the orders; this
waits until every one was processed and divides ``serve``'s CPU time since it started
serving (``/proc``, user + system) by the orders placed. Without ``--webhooks`` the same
without any (the headline's setting); ``--intake`` orders without a payment.

Not a section of docs/benchmarks.md: a tool to compare two versions of the code back to
back (run it with ``PYTHONPATH`` pointing at each one's ``src``). Prints one JSON object.
Uses the database ``BENCH_PG_DB`` (default ``og_bench``), dropped and recreated.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    BENCH,
    PYTHON,
    VENV_BIN,
    Context,
    free_port,
    migrated_database,
    pg_scalar,
    start_sandbox,
    start_server,
)

API_KEY = "sk_test_bench"
WEBHOOK_SECRET = "whsec_bench"
#: Webhooks the sandbox sends for one succeeded card charge.
EVENTS_PER_CHARGE = 3


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` so far, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(*, webhooks: bool, intake: bool, seconds: float, connections: int) -> dict[str, object]:
    """One run from scratch; its figures."""
    with tempfile.TemporaryDirectory(prefix="og-allin-") as scratch:
        ctx = Context(
            rounds=1, warmup=0, duration=0, connections=0, pool_size=None,
            workdir=Path(scratch), log=print,
        )  # fmt: skip
        url = migrated_database(ctx)
        env = ctx.env(url)
        port = free_port()
        sandbox = None
        if not intake:
            hooks = None
            if webhooks:
                hooks = (f"http://127.0.0.1:{port}/v1/webhooks/stripe", WEBHOOK_SECRET)
                env["ORDERGUARD_STRIPE_WEBHOOK_SECRET"] = WEBHOOK_SECRET
            sandbox = start_sandbox(ctx, "sandbox", ctx.workdir / "ledger.db", webhooks=hooks)
            env["ORDERGUARD_STRIPE_API_KEY"] = API_KEY
            env["ORDERGUARD_STRIPE_BASE_URL"] = f"http://127.0.0.1:{sandbox.port}"
        env["ORDERGUARD_PUBLIC_URL"] = f"http://127.0.0.1:{port}"
        argv = [
            str(VENV_BIN / "orderguard"), "serve", "--processes=1", "--host=127.0.0.1",
            f"--port={port}",
        ]  # fmt: skip
        server = start_server("serve", argv, env, ctx.workdir, port)
        try:
            started, cpu_before = time.monotonic(), cpu_seconds(server.pid)
            load = [
                PYTHON, str(BENCH / "_loadgen.py"), f"--port={port}",
                f"--connections={connections}", "--warmup=1", f"--duration={seconds}",
                f"--watch=server={server.pid}",
            ]  # fmt: skip
            if not intake:
                load += ["--payment=pm_card_visa", "--expect-state=paid"]
            done = subprocess.run(load, capture_output=True, text=True, check=True)
            result = json.loads(done.stdout)
            orders = int(pg_scalar("SELECT COUNT(*) FROM orders", url))
            drained = None
            if webhooks:
                deadline = time.monotonic() + 120
                while time.monotonic() < deadline:
                    processed = int(
                        pg_scalar("SELECT COUNT(processed_at) FROM webhook_events", url)
                    )
                    if processed >= EVENTS_PER_CHARGE * orders:
                        drained = round(time.monotonic() - started, 1)
                        break
                    time.sleep(0.5)
            cpu = cpu_seconds(server.pid) - cpu_before
            received = int(pg_scalar("SELECT COUNT(*) FROM webhook_events", url))
        finally:
            server.stop()
            if sandbox is not None:
                sandbox.stop()
    return {
        "orders": orders,
        "errors": result.get("errors"),
        "per_second": round(result["rps"], 1),
        "server_cpu_ms_per_order_window": round(result["cpu"]["server"] / result["rps"] * 1000, 2),
        "server_cpu_ms_per_order_all_in": round(cpu / orders * 1000, 2),
        "webhooks": received,
        "drained_after_s": drained,
        "machine_busy_cores": round(result["cpu"]["machine"], 2),
    }


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

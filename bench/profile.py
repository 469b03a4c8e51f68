"""Flame graphs of ``orderguard serve`` under the intake and paid-order loads (issue 20).

``python bench/profile.py intake --out docs/profiles/intake.svg`` starts one ``serve``
process (``--processes 1``) on a fresh PostgreSQL database, samples it with py-spy (a
sampling profiler attached from outside: the server runs unmodified) while the load
generator of ``bench/intake.py`` drives it, and writes an SVG flame graph.

Modes: ``intake`` (orders without a payment), ``paid`` (every order charged with
``pm_card_visa`` at an ``orderguard sandbox-provider`` in its own process, as in
``bench/paid.py``'s headline), ``paid-webhooks`` (the same, the sandbox also sending each
charge's webhooks to serve, as Stripe does to a subscribed endpoint) and ``paid-inprocess``
(the default in-process sandbox, a thread of serve, sampled too). py-spy is a dev tool
(``pip install py-spy``), not a dependency.

Uses the database ``BENCH_PG_DB`` (default ``og_bench``), dropped and recreated.
"""

from __future__ import annotations

import argparse
import json
import shutil
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
    start_sandbox,
    start_server,
)

MODES = ("intake", "paid", "paid-webhooks", "paid-inprocess")
API_KEY = "sk_test_bench"
WEBHOOK_SECRET = "whsec_bench"


def _context(workdir: Path) -> Context:
    return Context(
        rounds=1, warmup=0, duration=0, connections=0, pool_size=None, workdir=workdir, log=print
    )


def profile(
    mode: str, out: Path, *, seconds: float, connections: int, rate: int, fmt: str = "flamegraph"
) -> dict[str, object]:
    """Run ``mode``'s load against a fresh serve sampled by py-spy; the load's summary."""
    spy = shutil.which("py-spy") or str(VENV_BIN / "py-spy")
    with tempfile.TemporaryDirectory(prefix="og-profile-") as scratch:
        ctx = _context(Path(scratch))
        url = migrated_database(ctx)
        env = ctx.env(url)
        sandbox = None
        port = free_port()
        if mode in ("paid", "paid-webhooks"):
            hooks = None
            if mode == "paid-webhooks":
                hooks = (f"http://127.0.0.1:{port}/v1/webhooks/stripe", WEBHOOK_SECRET)
                env["ORDERGUARD_STRIPE_WEBHOOK_SECRET"] = WEBHOOK_SECRET
            sandbox = start_sandbox(ctx, "sandbox", ctx.workdir / "ledger.db", webhooks=hooks)
            env["ORDERGUARD_STRIPE_API_KEY"] = API_KEY
            env["ORDERGUARD_STRIPE_BASE_URL"] = f"http://127.0.0.1:{sandbox.port}"
        elif mode == "paid-inprocess":
            env["ORDERGUARD_SANDBOX_FAULTS"] = "none"
            env["ORDERGUARD_SANDBOX_DB"] = str(ctx.workdir / "ledger.db")
        env["ORDERGUARD_PUBLIC_URL"] = f"http://127.0.0.1:{port}"
        argv = [
            str(VENV_BIN / "orderguard"), "serve", "--processes=1", "--host=127.0.0.1",
            f"--port={port}",
        ]  # fmt: skip
        server = start_server("serve", argv, env, ctx.workdir, port)
        try:
            warmup = 2.0
            spy_argv = [
                spy, "record", f"--pid={server.pid}", f"--format={fmt}", f"--rate={rate}",
                f"--duration={int(seconds)}", "--nonblocking", f"--output={out}",
            ]  # fmt: skip
            load_argv = [
                PYTHON, str(BENCH / "_loadgen.py"), f"--port={port}",
                f"--connections={connections}", f"--warmup={warmup}", f"--duration={seconds}",
                f"--watch=server={server.pid}",
            ]  # fmt: skip
            if mode != "intake":
                load_argv += ["--payment=pm_card_visa", "--expect-state=paid"]
            load = subprocess.Popen(load_argv, stdout=subprocess.PIPE, text=True)
            time.sleep(warmup + 0.3)
            subprocess.run(spy_argv, check=True, capture_output=True)
            stdout, _ = load.communicate(timeout=seconds + 60)
        finally:
            server.stop()
            if sandbox is not None:
                sandbox.stop()
    result: dict[str, object] = json.loads(stdout)
    return {k: result[k] for k in ("rps", "p50", "p99", "errors", "cpu") if k in result}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("mode", choices=MODES)
    parser.add_argument("--out", type=Path, required=True, help="SVG to write")
    parser.add_argument("--seconds", type=float, default=15.0, help="seconds sampled")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument(
        "--format", default="flamegraph", choices=("flamegraph", "raw", "speedscope"),
        help="py-spy's output: an SVG flame graph, or collapsed stacks (raw) to compare",
    )  # fmt: skip
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    summary = profile(
        args.mode,
        args.out,
        seconds=args.seconds,
        connections=args.connections,
        rate=args.rate,
        fmt=args.format,
    )
    print(json.dumps(summary))


if __name__ == "__main__":
    main()

"""Benchmark: order intake while strangers flood the console's log-in with random names.

One ``orderguard serve`` on PostgreSQL (``og_bench``), as in the intake benchmark. Each
round measures intake p50 twice, interleaved: alone, then while a separate process keeps
:data:`FLOOD_CONNECTIONS` keep-alive connections posting ``/console/login`` with a fresh
random user name and password every time (each with a valid CSRF cookie and field, as a
browser would, so that every post reaches the password check). Intake is loaded by the
usual load generator (``bench/_loadgen.py``) with :data:`INTAKE_CONNECTIONS` connections.
The ratio of the two medians says how much a log-in flood slows checkout; the target is
≤ :data:`TARGET_RATIO` (with Argon2 on the event loop it was about 150).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import subprocess
import sys
import time
from typing import Any

from _common import (
    BENCH,
    PYTHON,
    VENV_BIN,
    Context,
    Server,
    bench_db_url,
    free_port,
    median,
    pg_execute,
    recreate_database,
    start_server,
)

TITLE = "Console log-in flood: intake latency while 8 connections post random log-ins"
#: Connections flooding the log-in form, as in the issue.
FLOOD_CONNECTIONS = 8
#: Connections placing orders while measured (a steady, unsaturated load).
INTAKE_CONNECTIONS = 4
#: Seconds the flood runs before intake is measured.
FLOOD_HEAD_START = 2.0
#: Target from the issue: intake p50 under the flood / intake p50 alone.
TARGET_RATIO = 1.5
TABLES = "orders, order_lines, payment_attempts, timeline, outbox, idempotency_keys"


# --------------------------------------------------------------------------- the flood


async def _flooder(port: int, until: float, stats: dict[str, Any]) -> None:
    """One keep-alive connection posting log-ins with random names until ``until``."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = _head(port)
    try:
        status, headers, _ = await _exchange(reader, writer, f"GET /console/login {head}\r\n")
        if status != 200:
            raise RuntimeError(f"GET /console/login answered {status}: the flood would not log in")
        cookie = headers["set-cookie"].split(";", 1)[0]  # og_csrf=TOKEN
        token = cookie.split("=", 1)[1]
        while time.monotonic() < until:
            form = f"csrf={token}&name={secrets.token_hex(8)}&password={secrets.token_hex(12)}"
            request = (
                f"POST /console/login {head}Cookie: {cookie}\r\n"
                "Content-Type: application/x-www-form-urlencoded\r\n"
                f"Content-Length: {len(form)}\r\n\r\n{form}"
            )
            t0 = time.perf_counter()
            status, _, _ = await _exchange(reader, writer, request)
            stats["latencies"].append(time.perf_counter() - t0)
            stats["statuses"][str(status)] = stats["statuses"].get(str(status), 0) + 1
    finally:
        writer.close()


def _head(port: int) -> str:
    """The request line's tail and the Host header the server answers for (its port too)."""
    return f"HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: str
) -> tuple[int, dict[str, str], bytes]:
    writer.write(request.encode())
    await writer.drain()
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    status = int(head[0].split()[1])
    headers: dict[str, str] = {}
    for line in head[1:]:
        if ":" in line:
            key, _, value = line.partition(":")
            headers.setdefault(key.strip().lower(), value.strip())
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return status, headers, body


async def _flood(port: int, connections: int, seconds: float) -> dict[str, Any]:
    stats: dict[str, Any] = {"latencies": [], "statuses": {}}
    until = time.monotonic() + seconds
    await asyncio.gather(*(_flooder(port, until, stats) for _ in range(connections)))
    latencies = sorted(stats["latencies"])
    return {
        "requests": len(latencies),
        "per_s": len(latencies) / seconds,
        "statuses": stats["statuses"],
        "p50_ms": 1000 * latencies[len(latencies) // 2] if latencies else float("nan"),
    }


# --------------------------------------------------------------------------- measuring


def _intake(ctx: Context, server: Server) -> dict[str, Any]:
    argv = [
        PYTHON,
        str(BENCH / "_loadgen.py"),
        f"--port={server.port}",
        f"--connections={INTAKE_CONNECTIONS}",
        f"--warmup={ctx.warmup}",
        f"--duration={ctx.duration}",
        f"--watch=server={server.pid}",
    ]
    done = subprocess.run(
        argv, capture_output=True, text=True, timeout=ctx.warmup + ctx.duration + 60, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"load generator failed: {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    for key in ("p50", "p95", "p99"):  # no request completed in the window: unbounded
        result[key] = float("inf") if result[key] is None else result[key]
    return result


def _flooded(ctx: Context, server: Server) -> tuple[dict[str, Any], dict[str, Any]]:
    """Intake measured while the flood runs (it starts first and outlasts the measurement)."""
    seconds = FLOOD_HEAD_START + ctx.warmup + ctx.duration + 1.0
    flood = subprocess.Popen(
        [PYTHON, __file__, "flood", f"--port={server.port}", f"--seconds={seconds}"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(FLOOD_HEAD_START)
        intake = _intake(ctx, server)
        out, _ = flood.communicate(timeout=seconds + 60)
    finally:
        if flood.poll() is None:
            flood.kill()
            flood.wait()
    if flood.returncode != 0:
        raise RuntimeError("the log-in flood failed")
    return intake, json.loads(out)


def run(ctx: Context) -> dict[str, Any]:
    """Measure; returns raw results (see ``render``)."""
    url = bench_db_url()
    recreate_database()
    env = ctx.env(url)
    subprocess.run(
        [str(VENV_BIN / "orderguard"), "migrate"],
        env=env,
        cwd=ctx.workdir,
        check=True,
        capture_output=True,
    )
    port = free_port()
    argv = [str(VENV_BIN / "orderguard"), "serve", "--host=127.0.0.1", f"--port={port}"]
    server = start_server("console-flood", argv, env, ctx.workdir, port)
    rounds: list[dict[str, Any]] = []
    try:
        for number in range(1, ctx.rounds + 1):
            outcome: dict[str, Any] = {}
            pg_execute(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE", url)
            outcome["alone"] = _intake(ctx, server)
            pg_execute(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE", url)
            outcome["flooded"], outcome["flood"] = _flooded(ctx, server)
            if server.proc.poll() is not None:
                raise RuntimeError(f"server died: {server.log.read_text()[-2000:]}")
            alone, flooded, flood = outcome["alone"], outcome["flooded"], outcome["flood"]
            ctx.log(
                f"console flood: round {number}/{ctx.rounds}: intake p50 alone "
                f"{alone['p50']:.1f} ms, flooded {flooded['p50']:.1f} ms; flood "
                f"{flood['per_s']:.1f} log-ins/s {flood['statuses']}"
            )
            rounds.append(outcome)
    finally:
        server.stop()
    return {"rounds": rounds}


# --------------------------------------------------------------------------- rendering


def render(ctx: Context, results: dict[str, Any]) -> str:
    """The markdown section."""
    rounds = results["rounds"]
    alone = median([r["alone"]["p50"] for r in rounds])
    flooded = median([r["flooded"]["p50"] for r in rounds])
    ratio = flooded / alone
    per_round = ", ".join(f"{r['flooded']['p50'] / r['alone']['p50']:.2f}" for r in rounds)
    statuses: dict[str, int] = {}
    for r in rounds:
        for status, n in r["flood"]["statuses"].items():
            statuses[status] = statuses.get(status, 0) + n
    stray = set(statuses) - {"401", "503"}  # refused log-ins, or the full hashing queue
    if stray or not statuses.get("401"):
        raise RuntimeError(f"the flood was not refused log-ins (answers {statuses})")
    out = [
        f"## {TITLE}",
        "",
        f"One `orderguard serve` on PostgreSQL. {ctx.rounds} rounds, each measuring intake "
        f"(`POST /v1/orders`, {INTAKE_CONNECTIONS} keep-alive connections, closed loop, "
        f"{ctx.warmup:g} s warm-up then {ctx.duration:g} s measured) twice: alone, then while "
        f"another process keeps {FLOOD_CONNECTIONS} keep-alive connections posting "
        "`/console/login` with a new random user name and password each time (valid CSRF "
        f"cookie and field, so every post reaches the password check; the flood starts "
        f"{FLOOD_HEAD_START:g} s before intake's warm-up). Figures are medians over rounds.",
        "",
        "| intake | req/s | p50 ms | p95 ms | p99 ms | server CPU (cores) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for key, label in (("alone", "alone"), ("flooded", "during the log-in flood")):
        out.append(
            f"| {label} | {median([r[key]['rps'] for r in rounds]):,.0f} "
            f"| {median([r[key]['p50'] for r in rounds]):.1f} "
            f"| {median([r[key]['p95'] for r in rounds]):.1f} "
            f"| {median([r[key]['p99'] for r in rounds]):.1f} "
            f"| {median([r[key]['cpu']['server'] for r in rounds]):.2f} |"
        )
    answered = ", ".join(f"{n} x HTTP {s}" for s, n in sorted(statuses.items()))
    out += [
        "",
        f"- **flooded p50 / alone p50** = {ratio:.2f} (per round: {per_round})",
        f"- the flood: {median([r['flood']['per_s'] for r in rounds]):.1f} log-ins answered "
        f"per second, p50 {median([r['flood']['p50_ms'] for r in rounds]):.0f} ms; answers: "
        f"{answered}",
        "",
        "**Target**",
        "",
        f"- ratio ≤ {TARGET_RATIO:g}: {ratio:.2f} → "
        f"**{'MET' if ratio <= TARGET_RATIO else 'NOT MET'}**",
        "",
        "Every log-in costs one Argon2 check (a dummy one for an unknown or locked name), run "
        "in the console's one password-hashing thread (one lane, resting as long as each hash "
        "took), with at most 16 more waiting and at most 2 places per client address; a log-in "
        "refused for a full queue is answered 503 after a 1 s wait that costs no CPU, so a "
        "client flooding as fast as it can is slowed to the pace of its answers: the flood "
        "gets at most half a core, and order intake keeps the event loop.",
        "",
    ]
    return "\n".join(out)


def section(ctx: Context) -> str:
    """Run the benchmark and return its markdown section."""
    results = run(ctx)
    (ctx.workdir / "console_flood.json").write_text(json.dumps(results, indent=1))
    return render(ctx, results)


def main() -> None:
    """``python bench/console_flood.py flood --port P --seconds S``: the flood alone, as a
    child process; prints its statistics as JSON."""
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["flood"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--connections", type=int, default=FLOOD_CONNECTIONS)
    args = parser.parse_args()
    result = asyncio.run(_flood(args.port, args.connections, args.seconds))
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()

"""Runs every benchmark in bench/ and rewrites docs/benchmarks.md.

With ``--only NAME`` (repeatable) only those benchmarks run, and only their sections of an
existing docs/benchmarks.md are replaced (the others, and the header, stay as they were).

``make bench`` runs ``.venv/bin/python bench/run.py``. A benchmark is a module in bench/
listed in ``SECTIONS`` with ``TITLE`` and ``section(ctx: Context) -> str`` returning its
markdown (starting with a ``## `` heading); add later ones (paid orders end to end, janitor,
reconcile) to ``SECTIONS``.

Needs PostgreSQL on 127.0.0.1:5432 with trust auth for user ``postgres`` (override with
``BENCH_PG_ADMIN_URL``); the database ``og_bench`` is dropped and recreated.
"""

from __future__ import annotations

import argparse
import importlib
import shlex
import signal
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import ROOT, Context, machine

#: Benchmark modules, in the order their sections appear.
SECTIONS = [
    "intake", "paid", "stripe_client", "wallet_paid", "janitor", "wallet_janitor", "drain",
    "reconcile", "console_flood", "demo", "growth",
]  # fmt: skip


def _unwind(signum: int, _frame: object) -> None:
    for stop in (signal.SIGTERM, signal.SIGHUP):  # a second signal must not cut the clean-up
        signal.signal(stop, signal.SIG_IGN)
    raise SystemExit(128 + signum)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", action="append", choices=SECTIONS, help="run only these")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (median)")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds before measuring")
    parser.add_argument("--duration", type=float, default=12.0, help="seconds measured")
    parser.add_argument("--connections", type=int, default=64, help="concurrent connections")
    parser.add_argument(
        "--pool-size", type=int, default=None, help="ORDERGUARD_DB_POOL_SIZE (default: product's)"
    )
    parser.add_argument(
        "--output", type=Path, default=ROOT / "docs" / "benchmarks.md", help="markdown to write"
    )
    args = parser.parse_args()
    # a stop (kill, a closed terminal) unwinds like an error: every section's `finally`
    # stops the servers and sandboxes it started, none is left running into the next run
    for stop in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(stop, _unwind)
    started = time.monotonic()

    def log(message: str) -> None:
        print(f"[{time.monotonic() - started:6.1f}s] {message}", flush=True)

    argv = " ".join(shlex.quote(a) for a in sys.argv[1:])
    command = f".venv/bin/python bench/run.py{' ' + argv if argv else ''}"
    sections: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="og-bench-") as scratch:
        ctx = Context(
            rounds=args.rounds,
            warmup=args.warmup,
            duration=args.duration,
            connections=args.connections,
            pool_size=args.pool_size,
            workdir=Path(scratch),
            log=log,
            command=command,
            started=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        )
        for name in args.only or SECTIONS:
            module = importlib.import_module(name)
            log(f"{name}: {module.TITLE}")
            sections[name] = module.section(ctx).strip("\n")
            if args.only:
                sections[name] = dated(sections[name], command, ctx.started)
    elapsed = time.monotonic() - started
    args.output.parent.mkdir(parents=True, exist_ok=True)
    if args.only and args.output.is_file():
        document = splice(args.output.read_text(), sections)
    else:
        document = _header(command, elapsed) + "\n\n".join(sections.values()) + "\n"
    args.output.write_text(document)
    log(f"wrote {args.output}")


def dated(section: str, command: str, when: str) -> str:
    """``section`` saying which command measured it and when, right under its heading,
    unless it says so itself: with ``--only`` the file's header names an older run."""
    if "Measured by `" in section or "Measured " + when in section:
        return section
    heading, _, body = section.partition("\n")
    return f"{heading}\n\nMeasured by `{command}` on {when}.\n{body}"


def splice(document: str, sections: dict[str, str]) -> str:
    """``document`` with each of ``sections`` (by module name) put in place of the section
    with the same ``## `` heading (its first line); a section the document lacks goes before
    the next one of ``SECTIONS`` it has (else at the end). ``--only`` keeps every other
    section as it was. A section runs from its heading to the next ``## `` line (or the end).
    """
    lines = document.rstrip("\n").split("\n")
    for name, text in sections.items():
        heading = text.split("\n", 1)[0]
        start = next((i for i, line in enumerate(lines) if line == heading), None)
        if start is None:
            later = [f"## {importlib.import_module(n).TITLE}" for n in _after(name)]
            at = next((i for i, line in enumerate(lines) if line in later), len(lines))
            lines[at:at] = [*text.split("\n"), ""] if at < len(lines) else ["", *text.split("\n")]
            continue
        end = next(
            (i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines)
        )
        tail = [""] if end < len(lines) else []
        lines[start:end] = [*text.split("\n"), *tail]
    return "\n".join(lines) + "\n"


def _after(name: str) -> list[str]:
    """The benchmarks whose sections come after ``name``'s."""
    return SECTIONS[SECTIONS.index(name) + 1 :]


def _header(command: str, elapsed: float) -> str:
    facts = machine()
    rows = "\n".join(f"| {k} | {v} |" for k, v in facts.items())
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"""# Benchmarks

Generated by `make bench` (i.e. `{command}`) on {when}; the run took {elapsed:.0f} s.
This file is rewritten on every run: do not edit it by hand, edit `bench/` instead.

Server, baselines, load generator and PostgreSQL all run on the machine below, each in its
own process; the machine is shared and noisy, so compare figures measured in the same run
(the rounds interleave the variants for that reason) rather than across runs.

| machine | |
|---|---|
{rows}

"""


if __name__ == "__main__":
    main()

"""``python -m examples.shop`` (``make shop``): the whole example on this machine.

Starts the Stripe sandbox (``orderguard sandbox-provider``), ``orderguard serve`` on
SQLite pointed at it (development mode, with its worker), makes the shop's API key with
``orderguard keys create``, then serves the shop on 127.0.0.1 and prints its URL. Ctrl-C
or SIGTERM stops all three. Everything is kept in ``--dir`` (a new temporary directory by
default).
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import uvicorn

from examples.shop.app import MODULE, create_app

ORDERGUARD = str(Path(sys.executable).with_name("orderguard"))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def process(args: list[str], env: dict[str, str], log: Path, health: str) -> Iterator[None]:
    """A child process, running until ``health`` answers 200, stopped afterwards."""
    with log.open("wb") as out:
        child = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while not _answers(health):
            if child.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"{args[1]} did not start; see {log}")
            time.sleep(0.1)
        yield
    finally:
        child.terminate()
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def orderguard(*args: str, env: dict[str, str]) -> str:
    done = subprocess.run([ORDERGUARD, *args], env=env, capture_output=True, text=True, check=True)
    return done.stdout


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m examples.shop", description=__doc__)
    parser.add_argument("--port", type=int, default=8080, help="the shop's port (0: any)")
    parser.add_argument("--dir", type=Path, default=None, help="where databases and logs go")
    parser.add_argument(
        "--recheck-scale",
        default="0.2",
        help="orderguard's janitor waits, scaled (a demo does not wait minutes)",
    )
    options = parser.parse_args(argv)
    if not MODULE.exists():
        raise SystemExit(f"{MODULE} is not built: run `make js-test` first")
    work = options.dir or Path(tempfile.mkdtemp(prefix="orderguard-shop-"))
    work.mkdir(parents=True, exist_ok=True)
    shop_port = options.port or free_port()
    og_port, box_port = free_port(), free_port()
    og_url, box_url = f"http://127.0.0.1:{og_port}", f"http://127.0.0.1:{box_port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORDERGUARD_")}
    box_db = str(work / "sandbox.db")
    config = orderguard(
        "sandbox-provider", "--print-config", "--port", str(box_port), "--db", box_db, env=env
    )
    settings = dict(line.split("=", 1) for line in config.split())
    env |= settings | {
        "ORDERGUARD_DATABASE_URL": f"sqlite:///{work / 'orderguard.db'}",
        "ORDERGUARD_PUBLIC_URL": og_url,
        "ORDERGUARD_RECHECK_SCALE": options.recheck_scale,
        "PYTHONUNBUFFERED": "1",
    }
    sandbox = [
        ORDERGUARD,
        "sandbox-provider",
        "--port",
        str(box_port),
        "--db",
        box_db,
        "--webhook-url",
        f"{og_url}/webhooks/stripe",
        "--webhook-secret",
        settings["ORDERGUARD_STRIPE_WEBHOOK_SECRET"],
    ]
    # SIGTERM unwinds from here on, stopping whatever was started: from before the first
    # child starts (a SIGTERM that came before this line ends the shop alone), and through
    # uvicorn, which stops on SIGTERM and then raises it again with the handler it found,
    # where the default would end the process at once and leave the children running
    signal.signal(signal.SIGTERM, _unwind)
    with ExitStack() as stack:
        stack.enter_context(process(sandbox, env, work / "sandbox.log", f"{box_url}/ledger"))
        serve = [ORDERGUARD, "serve", "--port", str(og_port)]
        stack.enter_context(process(serve, env, work / "serve.log", f"{og_url}/healthz"))
        created = orderguard("keys", "create", "example-shop", env=env)
        key = created.split("secret:", 1)[1].split()[0]
        print(f"orderguard: {og_url}  (database {work / 'orderguard.db'})", flush=True)
        print(f"sandbox:    {box_url}  (its ledger: {box_url}/ledger)", flush=True)
        app = create_app(og_url, key)
        served = uvicorn.Config(app, host="127.0.0.1", port=shop_port, log_level="warning")
        _Announcing(served, f"shop:       http://127.0.0.1:{shop_port}/").run()


class _Announcing(uvicorn.Server):
    """uvicorn's server, which prints ``line`` once it accepts connections (not before: a
    shopper, or a script, who opens the address at once must find the shop there)."""

    def __init__(self, config: uvicorn.Config, line: str) -> None:
        super().__init__(config)
        self.line = line

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            print(self.line, flush=True)


def _unwind(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


if __name__ == "__main__":
    main()

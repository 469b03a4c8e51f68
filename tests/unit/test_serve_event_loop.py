"""Every way ``orderguard serve`` runs serves on the same event loop: ``uvicorn.run`` (one
process) picks uvloop, and the processes of ``--processes N`` and a process with a metrics
port, which run their servers themselves, must not fall back to asyncio's slower loop.

Each also settles its heap before it serves (``gc.freeze`` and rarer young collections):
without it the garbage collector took about a tenth of the server's CPU per order."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import urllib.request
from pathlib import Path

import pytest

uvloop = pytest.importorskip("uvloop")

#: A process of ``serve --processes N`` in small: ``serve_sockets`` on an inherited
#: listening socket, with an app that names its event loop and then asks to be stopped.
CHILD = textwrap.dedent(
    """
    import asyncio, gc, os, signal, socket, sys
    from orderguard.api.server import serve_sockets

    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                kind = message["type"].replace("startup", "startup.complete")
                kind = kind.replace("shutdown", "shutdown.complete")
                await send({"type": kind})
                if message["type"] == "lifespan.shutdown":
                    return
        loop = type(asyncio.get_running_loop())
        heap = f"{gc.get_freeze_count()} {gc.get_threshold()[0]}"
        body = f"{loop.__module__}.{loop.__qualname__} {heap}".encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})
        os.kill(os.getpid(), signal.SIGTERM)

    listener = socket.socket(fileno=int(sys.argv[1]))
    serve_sockets(app, listener, drain_s=1.0, started=lambda: print("ready", flush=True))
    """
)


def test_a_process_of_serve_processes_runs_on_uvloop() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(listener.fileno())],
        pass_fds=(listener.fileno(),),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as answer:
            loop, frozen, young = answer.read().decode().split()
        assert loop == "uvloop.Loop", f"served on {loop}"
        # what start-up left alive is out of the collector's sight, young passes are rare
        assert int(frozen) > 10_000, f"only {frozen} objects frozen"
        assert int(young) == 10_000
        # it drained and stopped (uvicorn raises the signal it caught again once it is done)
        assert child.wait(timeout=20) in (0, -signal.SIGTERM)
    finally:
        child.kill()
        child.wait()
        assert child.stdout is not None
        child.stdout.close()
        listener.close()


#: ``orderguard serve`` with one process, or ``orderguard worker``, started for real on
#: SQLite up to where it would serve or work: ``uvicorn.run`` replaced by one that runs the
#: app's start-up (its lifespan opens the container and the worker) and ``Worker.run`` by one
#: that returns at once; each prints the garbage collector's state at that moment, and
#: whether the container (serve) or the worker (worker) is still in the collector's sight.
UP_TO_THE_LOOP = textwrap.dedent(
    """
    import asyncio, gc, sys, uvicorn
    from orderguard.worker import Worker

    def seen(thing):
        return any(o is thing for o in gc.get_objects())

    def report(thing):
        print("heap", gc.get_freeze_count(), gc.get_threshold()[0], seen(thing), flush=True)

    def run(app, **options):
        async def started():
            async with app.router.lifespan_context(app):
                report(app.state.container)
        asyncio.run(started())

    async def work(self, stop=None):
        report(self)

    uvicorn.run, Worker.run = run, work
    from orderguard.cli import main

    sys.argv = ["orderguard", *sys.argv[1:]]
    main()
    """
)


@pytest.mark.parametrize(
    "command", [["serve", "--host", "127.0.0.1", "--port", "1"], ["worker"]], ids=str
)
def test_a_one_process_serve_and_a_worker_settle_their_heap_once_started(
    tmp_path: Path, command: list[str]
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORDERGUARD_")} | {
        "ORDERGUARD_DATABASE_URL": f"sqlite:///{tmp_path / 'og.db'}"
    }
    if command == ["worker"]:  # the worker does not migrate; serve does on SQLite
        subprocess.run(
            [sys.executable, "-m", "orderguard", "migrate"], env=env, cwd=tmp_path, check=True
        )
    done = subprocess.run(
        [sys.executable, "-c", UP_TO_THE_LOOP, *command],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("heap ")]
    assert lines, done.stdout + done.stderr
    _, frozen, young, seen = lines[0].split()
    # what start-up left alive (tens of thousands of objects) is out of the collector's
    # sight, the objects opened last (the container, the worker) included
    assert int(frozen) > 20_000, f"only {frozen} objects frozen"
    assert seen == "False", "what was opened last is still walked by every collection"
    assert int(young) == 10_000

"""Every way ``orderguard serve`` runs serves on the same event loop: ``uvicorn.run`` (one
process) picks uvloop, and the processes of ``--processes N`` and a process with a metrics
port, which run their servers themselves, must not fall back to asyncio's slower loop."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import textwrap
import urllib.request

import pytest

uvloop = pytest.importorskip("uvloop")

#: A process of ``serve --processes N`` in small: ``serve_sockets`` on an inherited
#: listening socket, with an app that names its event loop and then asks to be stopped.
CHILD = textwrap.dedent(
    """
    import asyncio, os, signal, socket, sys
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
        body = f"{loop.__module__}.{loop.__qualname__}".encode()
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
            loop = answer.read().decode()
        assert loop == "uvloop.Loop", f"served on {loop}"
        # it drained and stopped (uvicorn raises the signal it caught again once it is done)
        assert child.wait(timeout=20) in (0, -signal.SIGTERM)
    finally:
        child.kill()
        child.wait()
        assert child.stdout is not None
        child.stdout.close()
        listener.close()

"""One process of ``orderguard serve --processes N``, started by :mod:`.supervisor` (never by
hand): ``python -m orderguard.cli.child api ...`` serves the API on the listening socket it
inherited and says when it is ready; ``... worker`` runs the worker. Either dies with the
supervisor, however the supervisor dies."""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import os
import signal
import socket
import sys
from typing import TYPE_CHECKING

import click

from orderguard import links
from orderguard.cli import common
from orderguard.observability.logs import configure_logging
from orderguard.storage.errors import StorageError

if TYPE_CHECKING:
    from orderguard.api.accepting import AcceptBoard

#: ``prctl``'s option that sends the process a signal when its parent dies (Linux).
_PR_SET_PDEATHSIG = 1


def die_with(parent: int) -> None:
    """Be killed when the supervisor ``parent`` dies (on Linux: even if it is SIGKILLed; an
    orphan would keep the port and the worker's leases). Exits at once if it already did."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:
        os._exit(1)


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m orderguard.cli.child")
    parser.add_argument("role", choices=["api", "worker"])
    parser.add_argument("--parent", type=int, required=True)
    parser.add_argument("--fd", type=int, help="the listening socket of the API")
    parser.add_argument("--ops-fd", type=int, help="the listening socket of /metrics")
    parser.add_argument("--ready-fd", type=int, help="written to once the API serves")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--drain", type=float, default=30.0)
    parser.add_argument("--board-fd", type=int, help="the accept board the API processes share")
    parser.add_argument("--slot", type=int, default=0, help="this process's slot on it")
    return parser.parse_args(argv)


def serve_api(args: argparse.Namespace) -> None:
    """The API without a worker on the inherited socket (``--fd``), and ``/metrics`` on its
    own (``--ops-fd``) when the supervisor bound one; ``--ready-fd`` hears ``ready`` once
    both accept requests."""
    from orderguard.api.app import create_metrics_app
    from orderguard.api.server import proxy_options, serve_sockets
    from orderguard.bootstrap import build_app

    settings = links.linked_to_bind(common.settings(), args.host, args.port)
    app = build_app(
        settings=settings, worker=False, metrics_apart=args.ops_fd is not None, settle=True
    )
    ops = None
    if args.ops_fd is not None:
        ops = (
            create_metrics_app(app, production=settings.production),
            socket.socket(fileno=args.ops_fd),
        )

    def ready() -> None:
        if args.ready_fd is not None:
            os.write(args.ready_fd, b"ready\n")
            os.close(args.ready_fd)

    serve_sockets(
        app,
        socket.socket(fileno=args.fd),
        ops=ops,
        proxies=proxy_options(settings),
        drain_s=args.drain,
        started=ready,
        sharing=(_board(args.board_fd, args.slot), args.slot),
    )


def _board(fd: int | None, slot: int) -> AcceptBoard | None:
    """The accept board on ``fd`` when ``slot`` is on it (else accept without one)."""
    from orderguard.api.accepting import AcceptBoard

    if fd is None:
        return None
    opened = AcceptBoard(fd)
    return opened if slot < opened.slots else None


def main(argv: list[str] | None = None) -> None:
    """Run the role the supervisor named."""
    args = _arguments(argv)
    die_with(args.parent)
    configure_logging()
    try:
        if args.role == "worker":
            from orderguard.bootstrap import work_alone

            asyncio.run(work_alone(common.settings()))
        else:
            serve_api(args)
    except StorageError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()

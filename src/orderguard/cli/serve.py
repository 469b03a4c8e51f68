"""``orderguard serve`` (the HTTP API with a worker, built by ``bootstrap.build_app``; on
PostgreSQL several API processes under a supervisor, :mod:`.supervisor`) and
``orderguard worker``."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path
from types import FrameType

import click

from orderguard import links
from orderguard.cli import common
from orderguard.cli.startup import warn_unverifiable_webhooks
from orderguard.config import Settings
from orderguard.services import api_keys
from orderguard.storage.budget import Deployment
from orderguard.storage.errors import StorageError

log = logging.getLogger("orderguard")
#: The most API processes ``serve --processes`` runs.
MAX_PROCESSES = 64


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--no-worker", is_flag=True, help="Do not run a worker in this process.")
@click.option(
    "--metrics-host",
    default="127.0.0.1",
    show_default=True,
    help="Address of the metrics server (with --metrics-port).",
)
@click.option(
    "--metrics-port",
    default=None,
    type=int,
    help="Serve /metrics, /docs and /openapi.json on this port instead of the main one.",
)
@click.option(
    "--processes",
    type=click.IntRange(1, MAX_PROCESSES),
    default=None,
    help="API processes sharing the port, under a supervisor (PostgreSQL only; default: "
    "the number of cores on PostgreSQL, 1 on SQLite).",
)
@click.option(
    "--drain-timeout",
    type=click.FloatRange(0, 3600),
    default=30.0,
    show_default=True,
    help="Seconds requests in flight get to finish on SIGTERM (or when a reload replaces "
    "a process).",
)
def serve(
    host: str,
    port: int,
    no_worker: bool,
    metrics_host: str,
    metrics_port: int | None,
    processes: int | None,
    drain_timeout: float,
) -> None:
    """Run the HTTP API and a worker (SQLite is migrated on start; PostgreSQL must be
    migrated first). With more than one process (PostgreSQL only) a supervisor runs the API
    in each on one port and the worker in its own; SIGHUP replaces them one at a time,
    SIGTERM drains."""
    import uvicorn

    from orderguard.api.app import create_metrics_app
    from orderguard.api.server import proxy_options, serve_beside, settle_heap
    from orderguard.bootstrap import build_app

    settings = common.settings()
    sqlite = settings.database_url.startswith("sqlite")
    count = process_count(processes, sqlite=sqlite)  # refused before the database is opened
    common.checked_for_production(settings)
    pools = Deployment(processes=count, worker_beside_api=not no_worker, spare=0)
    common.checked_connections(settings, pools.sized(settings.db_pool_size))
    warn_unverifiable_webhooks(settings)
    settings = links.linked_to_bind(settings, host, port)
    if (disagreement := links.disagreement(settings, host, port)) is not None:
        log.warning("%s", disagreement)
    keys = common.run(lambda s: api_keys.keys_required(s))
    if not keys:
        if not _is_loopback(host):
            raise click.ClickException(
                f"refusing to listen on {host} without an API key: create one with "
                "`orderguard keys create NAME`, or bind to 127.0.0.1"
            )
        log.warning(
            "no API key configured: accepting requests without a key, on loopback only; "
            "create one with `orderguard keys create NAME`"
        )
    if count > 1:
        status = _supervise(
            settings,
            count,
            worker=not no_worker,
            main_at=(host, port),
            ops_at=None if metrics_port is None else (metrics_host, metrics_port),
            drain_s=drain_timeout,
        )
        sys.exit(status)
    if sqlite:
        log.info("SQLite has one writer: serving from this one process (API and worker)")
    # SIGHUP's default would end the only process; a reload needs a second one to serve
    if hasattr(signal, "SIGHUP"):  # not on Windows
        signal.signal(signal.SIGHUP, _no_reload)
    app = build_app(
        settings=settings,
        worker=not no_worker,
        metrics_apart=metrics_port is not None,
        settle=True,
    )
    if metrics_port is not None:
        ops = create_metrics_app(app, production=settings.production)
        serve_beside(
            app,
            ops,
            main_at=(host, port),
            ops_at=(metrics_host, metrics_port),
            proxies=proxy_options(settings),
            drain_s=drain_timeout,
        )
        return
    settle_heap()  # as every other way serve runs does (run_event_loop)
    # Our logging: ORDERGUARD_LOG_LEVEL decides for uvicorn's loggers too (access lines at info).
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level=None,
        log_config=None,
        timeout_graceful_shutdown=max(int(drain_timeout), 1),
        **proxy_options(settings),
    )


def _no_reload(signum: int, frame: FrameType | None) -> None:
    """SIGHUP to a single-process ``serve``: nothing to replace it with while it serves, so
    it keeps serving and says so (by default the signal would have ended it)."""
    log.warning(
        "SIGHUP ignored: this serve runs one process, which cannot be replaced while it "
        "serves; reloads need --processes 2 or more (PostgreSQL), or restart it"
    )


def cores() -> int:
    """The cores this process may run on (its CPU affinity where the system tells it, as
    in a container limited to some cores), else the machine's."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def process_count(asked: int | None, *, sqlite: bool) -> int:
    """How many API processes ``serve`` runs: ``asked``, or by default one per core
    (:func:`cores`) on PostgreSQL and one on SQLite, which has one writer (more is refused)."""
    if asked is None:
        return 1 if sqlite else min(cores(), MAX_PROCESSES)
    if sqlite and asked > 1:
        raise click.UsageError(
            f"--processes {asked}: SQLite has one writer, so serve runs in one process on it; "
            "use PostgreSQL (ORDERGUARD_DATABASE_URL=postgresql://...) to serve from several"
        )
    return asked


def _listening(at: tuple[str, int]) -> socket.socket:
    """A socket listening on ``at``, which the supervisor's processes inherit."""
    host, port = at
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        return socket.create_server((host, port), family=family, backlog=2048)
    except OSError as exc:
        raise click.ClickException(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}"
        ) from None


#: The start of the name of a supervisor's private metrics folder (then its pid and ``-``).
METRICS_PREFIX = "orderguard-metrics-"


def _remove_abandoned_folders() -> None:
    """Remove the private metrics folders of supervisors that died without removing theirs
    (killed): this user's folders, not links, whose supervisor is no longer running."""
    base = Path(tempfile.gettempdir())
    for found in base.glob(f"{METRICS_PREFIX}*-*"):
        pid = found.name.removeprefix(METRICS_PREFIX).split("-", 1)[0]
        try:
            if found.is_symlink() or not found.is_dir() or found.stat().st_uid != os.getuid():
                continue
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(found, ignore_errors=True)
        except (ValueError, OSError):
            continue


def _supervise(
    settings: Settings,
    count: int,
    *,
    worker: bool,
    main_at: tuple[str, int],
    ops_at: tuple[str, int] | None,
    drain_s: float,
) -> int:
    """Run ``count`` API processes (and a worker process) under a supervisor on sockets
    bound here; its exit status. Without a provider account, the development sandbox runs
    here, one for every process. Metrics go to ``PROMETHEUS_MULTIPROC_DIR``, or to a
    private folder made for this run and removed after it."""
    from orderguard.api.accepting import AcceptBoard
    from orderguard.cli.supervisor import Supervisor
    from orderguard.observability.metrics import forget_process
    from orderguard.providers import labs, registry

    listeners = [_listening(main_at)] + ([_listening(ops_at)] if ops_at else [])
    given_folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not given_folder:
        _remove_abandoned_folders()
    folder = given_folder or tempfile.mkdtemp(prefix=f"{METRICS_PREFIX}{os.getpid()}-")  # 0700
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": folder}
    host, port = main_at

    def close() -> None:
        for sock in listeners:
            sock.close()

    with ExitStack() as resources:
        resources.callback(close)
        if not given_folder:
            resources.callback(shutil.rmtree, folder, ignore_errors=True)
        if not registry.has_real_account(settings):
            env.update(labs.start_shared_sandbox(settings, resources, settings.public_url))

        board = AcceptBoard.create(slots=2 * count + 2)  # room for reloads' extra process
        resources.callback(board.close)

        def command(
            role: str, ready: int | None, slot: int | None
        ) -> tuple[list[str], tuple[int, ...]]:
            argv = [
                sys.executable,
                "-m",
                "orderguard.cli.child",
                role,
                "--parent",
                str(os.getpid()),
            ]
            if role == "worker" or ready is None:
                return argv, ()
            argv += ["--fd", str(listeners[0].fileno()), "--ready-fd", str(ready)]
            argv += ["--host", host, "--port", str(port), "--drain", str(drain_s)]
            argv += ["--board-fd", str(board.fileno()), "--slot", str(slot or 0)]
            if len(listeners) > 1:
                argv += ["--ops-fd", str(listeners[1].fileno())]
            return argv, (*(sock.fileno() for sock in listeners), ready, board.fileno())

        supervisor = Supervisor(
            processes=count,
            worker=worker,
            command=command,
            env=env,
            drain_s=drain_s,
            exited=lambda pid: forget_process(pid, folder),
            closing=close,
            board=board,
        )
        return supervisor.run()


@click.command()
def worker() -> None:
    """Run the background worker: janitor, waiting charges, expiries (until SIGTERM)."""
    from orderguard.bootstrap import work_alone

    settings = common.settings()
    common.checked_for_production(settings)
    pools = Deployment(api_hosts=0, worker_hosts=1, spare=0)
    common.checked_connections(settings, pools.sized(settings.db_pool_size))
    try:
        asyncio.run(work_alone(settings))
    except StorageError as exc:
        raise click.ClickException(str(exc)) from None


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return all(
            ipaddress.ip_address(info[4][0]).is_loopback for info in socket.getaddrinfo(host, None)
        )

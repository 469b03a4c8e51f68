"""Running the API inside an asyncio program (the demo, tests, benchmarks), and beside its
metrics app on a second address (``serve --metrics-port``)."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import gc
import logging
import secrets
import socket
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Literal

import uvicorn
from starlette.types import ASGIApp

from orderguard.api.accepting import AcceptBoard, SharedAcceptor
from orderguard.config import Settings

log = logging.getLogger("orderguard")

#: A collection of the youngest generation once this many more container objects were
#: allocated than freed (Python's default is 700). A request's objects are freed as it ends
#: (by reference counting), so at 700 the collector ran several times a second over objects
#: about to be freed anyway; at this figure it runs when objects really pile up.
YOUNG_COLLECTION_THRESHOLD = 10_000


def settle_heap() -> None:
    """Before a long-running process (``serve``, its API processes, the worker) starts to
    serve: collect what start-up left, then move every object still alive (modules, the
    application, its routes and schemas) out of the garbage collector's sight for good
    (``gc.freeze``), and collect the youngest generation less often.

    Without it, the collector's full passes walked those hundreds of thousands of objects
    again and again, and its young passes ran every few requests: together about 14 % of
    the server's CPU per order (``bench/gc_cost.py``, ``docs/profiles/README.md``). Objects
    made later are collected as before, cycles among them a little later; an object frozen
    here that later joins a reference cycle is never freed. Call it again once the
    long-lived objects made after start-up exist (pools, clients, the worker): freezing twice
    freezes what is new.
    """
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, middle, old)
    log.debug(
        "heap settled: %d objects left out of garbage collection, young collections after "
        "%d allocations",
        gc.get_freeze_count(),
        YOUNG_COLLECTION_THRESHOLD,
    )


def proxy_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's proxy options: ``X-Forwarded-For``/``-Proto`` are believed only from the
    addresses in ``ORDERGUARD_TRUSTED_PROXIES`` (none by default, whatever the peer: a
    client could otherwise give itself a fresh address on every console log-in)."""
    trusted = [a.strip() for a in settings.trusted_proxies.split(",") if a.strip()]
    if not trusted:
        return {"proxy_headers": False}
    return {"proxy_headers": True, "forwarded_allow_ips": trusted}


#: A host and port to listen on.
Address = tuple[str, int]


#: The kernel's range of ephemeral ports (Linux): where it picks a port for any process's
#: bind to port 0 and for every outgoing connection.
EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
#: :func:`free_port` looks between this port and the ephemeral range's first ...
LOWEST_CHOSEN_PORT = 10_000
#: ... when that band holds at least this many ports, trying at most this many of them.
_BAND_AT_LEAST = 1_000
_TRIES = 64
#: Ports :func:`free_port` gave lately, not given again: a caller may take several before
#: binding any (a server's port, then its metrics port, then a balancer's).
_RECENT: collections.deque[int] = collections.deque(maxlen=256)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody holds right now, for a server in another process to bind (in this
    process, :func:`reserve_port` holds it until served on).

    Until that process binds it, the port is only unused, not held: any process may take
    it. So it is chosen, at random, below the kernel's range of ephemeral ports (on Linux),
    where the kernel never puts anyone's bind to port 0 or outgoing connection: only another
    such deliberate choice could land on it. Where that range cannot be read, or no port of
    the band below it is free, the kernel picks one (which another process's bind to port 0
    could then take before the server binds it)."""
    band = _chosen_band()
    if band is not None:
        low, high = band
        for _ in range(_TRIES):
            port = low + secrets.randbelow(high - low)  # not `random`: tests seed it alike
            if port not in _RECENT and _unheld(host, port):
                _RECENT.append(port)
                return port
    with _tcp_socket(host) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _chosen_band() -> tuple[int, int] | None:
    """Ports ``[low, high)`` below the ephemeral range, or ``None``."""
    try:
        first = int(EPHEMERAL_RANGE.read_text(encoding="ascii").split()[0])
    except (OSError, ValueError, IndexError):
        return None
    if first - LOWEST_CHOSEN_PORT < _BAND_AT_LEAST:
        return None
    return LOWEST_CHOSEN_PORT, first


def _unheld(host: str, port: int) -> bool:
    """Whether ``port`` can be bound on ``host`` now: no listener, no connection, not even
    one closing (no ``SO_REUSEADDR`` here: stricter than the server's own bind)."""
    with _tcp_socket(host) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _tcp_socket(host: str) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets that say so
    return socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)


#: Sockets bound by :func:`reserve_port`, by address, until :func:`running_server` serves
#: on them.
_RESERVED: dict[tuple[str, int], socket.socket] = {}


def reserve_port(host: str = "127.0.0.1") -> int:
    """A free TCP port, held by a socket bound to it until :func:`running_server` serves on
    it in this process: no other process can take it meanwhile, as it could between
    :func:`free_port` and the server's own bind."""
    sock = _tcp_socket(host)
    try:
        sock.bind((host, 0))
    except OSError:
        sock.close()
        raise
    port = int(sock.getsockname()[1])
    _RESERVED[(host, port)] = sock
    return port


@asynccontextmanager
async def running_server(
    app: ASGIApp,
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    settings: Settings | None = None,
) -> AsyncIterator[str]:
    """Serve ``app`` with uvicorn on this event loop; yields its base URL. ``port``: one
    :func:`reserve_port` holds (served on the socket that holds it), or one to bind; by
    default a port reserved here. Forwarding headers are believed only from
    ``settings.trusted_proxies`` (by default from no one)."""
    port = port or reserve_port(host)
    held = _RESERVED.pop((host, port), None)
    # The process's logging stays its own: no uvicorn handlers, no levels set on its loggers
    # (they are global; a test or the demo would lose, or leak, every later access line).
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        log_level=None,
        lifespan="on",
        **proxy_options(settings or Settings()),
    )
    server = uvicorn.Server(config)
    try:
        task = asyncio.create_task(server.serve(sockets=[held] if held else None))
        try:
            while not server.started:
                if task.done():
                    task.result()
                    raise RuntimeError("the server stopped before it started")
                await asyncio.sleep(0.02)
            yield f"http://{host}:{port}"
        finally:
            server.should_exit = True
            await task
    finally:
        if held is not None:
            held.close()


def serve_beside(
    main: ASGIApp,
    ops: ASGIApp,
    *,
    main_at: Address,
    ops_at: Address,
    proxies: dict[str, Any] | None = None,
    drain_s: float | None = None,
) -> None:
    """Serve ``main`` and ``ops`` on their own addresses in this process until a signal
    (or either server stopping) stops both; ``main``'s lifespan opens the shared wiring.
    ``proxies`` are uvicorn's proxy options (:func:`proxy_options`); on a signal, requests
    in flight get ``drain_s`` seconds to finish (``None``: as long as they take)."""
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how a developer stops it
        run_event_loop(
            _serve_all(
                [(main, main_at, "on", None), (ops, ops_at, "off", None)],
                proxies=proxies,
                drain_s=drain_s,
            )
        )


def serve_sockets(
    main: ASGIApp,
    listener: socket.socket,
    *,
    ops: tuple[ASGIApp, socket.socket] | None = None,
    proxies: dict[str, Any] | None = None,
    drain_s: float | None = None,
    started: Callable[[], None] = lambda: None,
    sharing: Sharing = (None, 0),
) -> None:
    """Serve ``main`` on an already listening socket (one a supervisor shares among its
    processes), and ``ops`` on its own, until a signal; ``started`` is called once both
    accept requests (``main``'s lifespan, which opens the wiring, has run). ``main``'s
    socket is accepted from as :mod:`orderguard.api.accepting` says, with the board and
    slot of ``sharing``. On a signal the sockets stop accepting and requests in flight get
    ``drain_s`` seconds to finish."""
    served: list[Served] = [(main, listener, "on", sharing)]
    if ops is not None:
        served.append((ops[0], ops[1], "off", None))
    run_event_loop(_serve_all(served, proxies=proxies, drain_s=drain_s, started=started))


def run_event_loop(main: Coroutine[Any, Any, None]) -> None:
    """Run ``main`` on the event loop ``uvicorn.run`` serves a single process on: uvloop
    where it is installed (Linux and macOS: a dependency), else asyncio's own. Every way
    ``serve`` runs (one process, one process with a metrics port, each process of
    ``--processes N``) pays the same per request, and settles its heap first
    (:func:`settle_heap`)."""
    settle_heap()
    try:
        import uvloop
    except ImportError:  # Windows: uvloop does not exist there
        factory = None
    else:
        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(main)


#: The longest a stopping server waits for the requests of connections it accepted just
#: before it closed its socket (:class:`_Draining`).
FRESH_WAIT_S = 2.0


#: How an API process shares its listening socket with the others: the board they post
#: their connections on (``None``: no board) and its slot there.
Sharing = tuple[AcceptBoard | None, int]


class _Draining(uvicorn.Server):
    """uvicorn's server, which stops accepting before it shuts its connections, and first
    lets the connections that sent no request yet send it: uvicorn closes at once a
    connection without a request, and one accepted from a shared socket just before the
    stop would lose the request its client is sending. With ``sharing``, it accepts from
    the socket it is given as :class:`~orderguard.api.accepting.SharedAcceptor` does."""

    def __init__(self, config: uvicorn.Config, *, sharing: Sharing | None = None) -> None:
        super().__init__(config)
        self._sharing = sharing

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        if self._sharing is None or not sockets or self.config.ssl is not None:
            await super().startup(sockets)  # (TLS: uvicorn's own server, which wraps it)
            return
        await super().startup([])  # the lifespan, and no server of uvicorn's own
        if not self.started:
            return
        config, state, app_state = self.config, self.server_state, self.lifespan.state

        def protocol() -> asyncio.Protocol:
            return config.http_protocol_class(  # type: ignore[call-arg]
                config=config, server_state=state, app_state=app_state
            )

        board, slot = self._sharing
        self.servers = [
            SharedAcceptor(listener, protocol, state.connections, board=board, slot=slot)  # type: ignore[misc]
            for listener in sockets
        ]

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:
            server.close()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + FRESH_WAIT_S
        while loop.time() < deadline and any(
            getattr(connection, "cycle", False) is None
            for connection in self.server_state.connections
        ):
            await asyncio.sleep(0.02)
        await super().shutdown(sockets)


#: An app, where it listens, whether its lifespan runs, and how it shares its socket.
Served = tuple[ASGIApp, Address | socket.socket, Literal["on", "off"], Sharing | None]


async def _serve_all(
    served: list[Served],
    *,
    proxies: dict[str, Any] | None,
    drain_s: float | None,
    started: Callable[[], None] = lambda: None,
) -> None:
    """Each app on its address or socket (with its lifespan on or off) until a signal
    reaches one of them or one stops; then all stop."""

    def server(
        app: ASGIApp, lifespan: Literal["on", "off"], sharing: Sharing | None
    ) -> uvicorn.Server:
        # our logging decides for uvicorn's loggers too (access lines at info)
        return _Draining(
            uvicorn.Config(
                app,
                log_config=None,
                log_level=None,
                lifespan=lifespan,
                timeout_graceful_shutdown=None if drain_s is None else max(int(drain_s), 1),
                **(proxies or {"proxy_headers": False}),
            ),
            sharing=sharing,
        )

    servers: list[uvicorn.Server] = []
    tasks: list[asyncio.Task[None]] = []
    for app, where, lifespan, sharing in served:
        one = server(app, lifespan, sharing)
        if isinstance(where, socket.socket):
            tasks.append(asyncio.create_task(one.serve(sockets=[where])))
        else:
            one.config.host, one.config.port = where
            tasks.append(asyncio.create_task(one.serve()))
        servers.append(one)
    while not all(one.started for one in servers):
        if any(task.done() for task in tasks):
            break
        await asyncio.sleep(0.02)
    else:
        started()
    await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    for one in servers:  # a signal reaches one server; the other follows it
        one.should_exit = True
    await asyncio.gather(*tasks)

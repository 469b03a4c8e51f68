"""Which requests reach the service at all: the ``Host`` they name, and, for a request that
changes an order, the ``Origin`` it comes from and the media type of its body.

The public URL's host and port (``ORDERGUARD_PUBLIC_URL``) are always accepted; in
development so are the loopback names with the port the server is bound to, which is how a
developer, the demo and the tests reach it. Anything else is a request meant for another
site (a mistyped proxy rule, DNS rebinding) and is refused before any route runs. A request
must carry exactly one ``Host`` header: with two, each reader (this check, the router, the
key check) could believe another one.

The metrics app (``serve --metrics-port``) has a check of its own: the address the
request reached (the bind address, or the interface of a wildcard bind) and the loopback
names, with its port.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from functools import lru_cache
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.types import Scope

from orderguard.api.ports import Wired, wired
from orderguard.api.problems import ProblemError
from orderguard.config import Settings

#: The names a developer reaches a local server by (hosts as ``urlsplit`` gives them).
LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1"})
#: The port a URL or Host header means when it names none.
DEFAULT_PORTS = {"http": 80, "https": 443}
#: The only body a request that changes an order may carry.
JSON = "application/json"

Authority = tuple[str, int]


@lru_cache(maxsize=256)  # every request asks; few distinct answers
def authority(text: str, *, default_port: int) -> Authority | None:
    """``host[:port]`` as (lower-case host without brackets, port); ``None`` if malformed."""
    if not text or any(c in text for c in "@/\\?# ") or len(text) > 300:
        return None
    try:
        parts = urlsplit("//" + text)
        port = parts.port
    except ValueError:
        return None
    if not parts.hostname:
        return None
    return parts.hostname, port or default_port


def public_origin(settings: Settings) -> tuple[str, Authority]:
    """The public URL's scheme and authority."""
    return _origin_of(settings.public_url)


@lru_cache(maxsize=8)
def _origin_of(url: str) -> tuple[str, Authority]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower() or "http"
    return scheme, ((parts.hostname or "").lower(), parts.port or DEFAULT_PORTS.get(scheme, 80))


def accepted_hosts(settings: Settings, bound_port: int | None) -> frozenset[Authority]:
    """The authorities a request may name: the public URL's, and in development the
    loopback names with the port the server is bound to."""
    return _accepted(settings.public_url, settings.production, bound_port)


@lru_cache(maxsize=8)
def _accepted(public_url: str, production: bool, port: int | None) -> frozenset[Authority]:
    public = _origin_of(public_url)[1]
    if production or port is None:
        return frozenset({public})
    return frozenset({public, *((name, port) for name in LOOPBACK_NAMES)})


def is_loopback_host(host: str) -> bool:
    """Whether ``host`` (a name or address, without port) is this machine's loopback."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def bound_port(scope: Scope) -> int | None:
    """The port the server that received the request listens on (``None`` on a socket)."""
    server = scope.get("server")
    port = server[1] if server else None
    return port if isinstance(port, int) else None


def host_headers(scope: Scope) -> list[str]:
    """Every ``Host`` header the request carries, in order."""
    return [value.decode("latin-1") for name, value in scope.get("headers", []) if name == b"host"]


def host_of(scope: Scope, settings: Settings) -> Authority | None:
    """The authority the request's ``Host`` header names (``None``: missing or malformed)."""
    named = host_headers(scope)
    scheme = public_origin(settings)[0]
    return authority(named[0], default_port=DEFAULT_PORTS.get(scheme, 80)) if named else None


def public_hosts(scope: Scope) -> tuple[Authority | None, frozenset[Authority]]:
    """The main app's view: the authority named, and those it answers at."""
    found: Wired = scope["app"].state.container
    settings = found.settings
    return host_of(scope, settings), accepted_hosts(settings, bound_port(scope))


def metrics_hosts(scope: Scope) -> tuple[Authority | None, frozenset[Authority]]:
    """The metrics app's view: the authority named, and the address the request reached
    and the loopback names, with the port it listens on."""
    named = host_headers(scope)
    host = authority(named[0], default_port=DEFAULT_PORTS["http"]) if named else None
    server = scope.get("server")
    if not server or not isinstance(server[1], int):
        return host, frozenset()
    reached, port = str(server[0]).lower(), server[1]
    return host, frozenset((name, port) for name in {reached, *LOOPBACK_NAMES})


#: What a Host check asks of a request: the authority it names, and those accepted.
HostRule = Callable[[Scope], tuple[Authority | None, frozenset[Authority]]]


def host_refusal(scope: Scope, rule: HostRule) -> ProblemError | None:
    """Why the request must be refused before any route: not exactly one ``Host`` header
    (400), or one ``rule`` does not accept (421); ``None`` when it may go on."""
    if len(host_headers(scope)) != 1:
        return _ambiguous_host
    named, accepted = rule(scope)
    return None if named in accepted else _misdirected


_ambiguous_host = ProblemError(
    400,
    "ambiguous-host",
    "Exactly one Host header",
    "A request must carry exactly one Host header naming the site it is meant for.",
)
_misdirected = ProblemError(
    421,
    "misdirected-request",
    "Misdirected request",
    "The Host header names a site this service does not answer for; it answers "
    "at its public URL (ORDERGUARD_PUBLIC_URL).",
)


async def check_write(request: Request) -> None:
    """A request that changes an order: 403 when its ``Origin`` is another site's, 415
    when its body is not declared ``application/json`` (which no HTML form can send)."""
    settings = wired(request).settings
    origin = request.headers.get("origin")
    if origin is not None and not _own_origin(origin, settings, bound_port(request.scope)):
        raise ProblemError(
            403,
            "foreign-origin",
            "Foreign origin",
            "Requests that change orders are accepted only from the service's own origin "
            "(ORDERGUARD_PUBLIC_URL); send them from your back-end, without an Origin header.",
        )
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != JSON:
        raise ProblemError(
            415,
            "unsupported-media-type",
            "Unsupported media type",
            f"Send the body as {JSON}, not {media_type or 'no content type'} "
            "(an empty body or {} where the action takes no fields).",
        )


def _own_origin(origin: str, settings: Settings, port: int | None) -> bool:
    parts = urlsplit(origin.strip())
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or parts.path or parts.query or parts.username:
        return False
    named = authority(parts.netloc, default_port=DEFAULT_PORTS[scheme])
    own_scheme, own = public_origin(settings)
    if (scheme, named) == (own_scheme, own):
        return True
    loopback = {(name, port) for name in LOOPBACK_NAMES} if port is not None else set()
    return not settings.production and named in loopback

"""Merchant authentication: ``Authorization: Bearer <key>`` once any key was created, and
the key's scopes checked per route.

Until a key exists the API answers without one, and only in development, only to a request
from this machine (its peer address) addressed to a loopback name (its ``Host``) that
carries no header a proxy adds (``Forwarded``, ``X-Forwarded-*``, ``X-Real-IP``, ``Via``):
a reverse proxy on the same host is refused even when it passes ``Host: 127.0.0.1`` on,
as is every request in production. (A proxy that adds none of those headers cannot be
told from a local client: create a key before publishing the service through one.)

Answers are cached for :data:`KEY_CACHE_SECONDS` so a request costs no extra database
round trip; a new or revoked key takes effect within that window. When the answer to
"is any key required?" expires, one query refreshes it while the requests arriving
meanwhile wait for that query instead of each running their own.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from starlette.requests import Request

from orderguard.api.doors import DEFAULT_PORTS, authority, is_loopback_host
from orderguard.api.ports import wired
from orderguard.api.problems import ProblemError
from orderguard.config import Settings
from orderguard.services import api_keys
from orderguard.services.api_keys import KeyScope, grants, hash_secret

#: Requests made while no key exists share this idempotency scope (loopback only).
LOCAL_SCOPE = "local"
#: The actor on the timeline for changes requested without a key (development, loopback).
LOCAL_ACTOR = "api:local"
#: Headers a reverse proxy adds: a request carrying one came from elsewhere, through it.
PROXY_HEADERS = frozenset({"forwarded", "x-real-ip", "via"})
#: Every header starting so is a proxy's too (``X-Forwarded-For``, ``-Host``, ``-Proto``...).
PROXY_HEADER_PREFIX = "x-forwarded-"
#: Seconds an answer about keys is reused.
KEY_CACHE_SECONDS = 5.0
#: Most secrets remembered at once (a flood of wrong keys cannot grow memory).
KEY_CACHE_SIZE = 1024


@dataclass(frozen=True, slots=True)
class Caller:
    """Who sent an API request: a key (its id and scopes), or nobody, on loopback."""

    key_id: str | None
    scopes: tuple[str, ...]

    @property
    def idempotency_scope(self) -> str:
        """Idempotency keys are remembered per API key (``local`` without one)."""
        return self.key_id or LOCAL_SCOPE

    @property
    def actor(self) -> str:
        """Who is named on the timeline entries the request causes: the key's id."""
        return self.key_id or LOCAL_ACTOR


#: The caller while no key exists (development, loopback only): it may do everything.
LOCAL_CALLER = Caller(None, (KeyScope.ADMIN.value,))


def allowed(needed: KeyScope) -> Callable[[Request], Awaitable[Caller]]:
    """A dependency: the authenticated caller, 403 unless its key has ``needed``."""

    async def caller_with_scope(request: Request) -> Caller:
        who = await caller(request)
        if not grants(who.scopes, needed):
            raise ProblemError(
                403,
                "missing-scope",
                "Missing scope",
                f"This API key lacks the scope {needed.value}; create a key with "
                f"`orderguard keys create NAME --scope {needed.value}`.",
            )
        return who

    return caller_with_scope


async def caller(request: Request) -> Caller:
    """The authenticated caller: its key, or :data:`LOCAL_CALLER` when no key exists and
    the request may go without one."""
    header = request.headers.get("authorization", "")
    if not header and not await _keys_required(request):
        _check_keyless(request)
        return LOCAL_CALLER
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise _unauthorized("Send Authorization: Bearer <API key>.")
    found = await _key(request, secret.strip())
    if found is None:
        raise _unauthorized("The API key is unknown or revoked.")
    return found


def _check_keyless(request: Request) -> None:
    """Without keys: development only, and only from and to this machine's loopback."""
    settings: Settings = wired(request).settings
    create = "create one with `orderguard keys create NAME`"
    if settings.production:
        raise _unauthorized(f"No API key exists, and production requires one: {create}.")
    peer = request.client.host if request.client else ""
    host = authority(request.headers.get("host", ""), default_port=DEFAULT_PORTS["http"])
    if not (is_loopback_host(peer) and host is not None and is_loopback_host(host[0])):
        raise _unauthorized(
            "No API key exists yet, so the API answers only requests from this machine "
            f"addressed to 127.0.0.1, localhost or [::1]; {create} and send it as "
            "Authorization: Bearer <API key>."
        )
    proxied = sorted(name for name in request.headers.keys() if _is_proxy_header(name))
    if proxied:
        raise _unauthorized(
            f"No API key exists yet, and this request came through a proxy ({proxied[0]}): "
            f"without a key the API answers only requests made on this machine; {create} "
            "and send it as Authorization: Bearer <API key>."
        )


def _is_proxy_header(name: str) -> bool:
    return name in PROXY_HEADERS or name.startswith(PROXY_HEADER_PREFIX)


async def _keys_required(request: Request) -> bool:
    state = request.app.state
    cached: tuple[float, bool] | None = getattr(state, "keys_required", None)
    now = time.monotonic()
    if cached is not None and now - cached[0] <= KEY_CACHE_SECONDS:
        return cached[1]
    refresh: asyncio.Future[bool] | None = getattr(state, "keys_required_refresh", None)
    if refresh is None:
        refresh = asyncio.ensure_future(api_keys.keys_required(wired(request).storage))
        state.keys_required_refresh = refresh

        def remember(done: asyncio.Future[bool]) -> None:
            state.keys_required_refresh = None
            if not done.cancelled() and done.exception() is None:
                state.keys_required = (now, done.result())

        refresh.add_done_callback(remember)
    return await asyncio.shield(refresh)  # one waiter giving up does not cancel the others


async def _key(request: Request, secret: str) -> Caller | None:
    """The active key with this secret, as a caller (cached by the secret's hash)."""
    state = request.app.state
    cache: dict[str, tuple[float, Caller | None]] = state.__dict__.setdefault("key_cache", {})
    digest, now = hash_secret(secret), time.monotonic()
    hit = cache.get(digest)
    if hit is not None and now - hit[0] <= KEY_CACHE_SECONDS:
        return hit[1]
    key = await api_keys.authenticate(wired(request).storage, secret)
    if len(cache) >= KEY_CACHE_SIZE:
        cache.clear()
    cache[digest] = (now, Caller(key.id, key.scopes) if key else None)
    return cache[digest][1]


def _unauthorized(detail: str) -> ProblemError:
    return ProblemError(
        401, "unauthorized", "Unauthorized", detail, headers={"WWW-Authenticate": "Bearer"}
    )

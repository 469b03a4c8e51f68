"""Merchant authentication: ``Authorization: Bearer <key>`` once any key was created.

Answers are cached for :data:`KEY_CACHE_SECONDS` so a request costs no extra database
round trip; a new or revoked key takes effect within that window. When the answer to
"is any key required?" expires, one query refreshes it while the requests arriving
meanwhile wait for that query instead of each running their own.
"""

from __future__ import annotations

import asyncio
import time

from starlette.requests import Request

from orderguard.api.problems import ProblemError
from orderguard.services import api_keys
from orderguard.services.api_keys import hash_secret

#: Requests made while no key exists share this idempotency scope (loopback only).
LOCAL_SCOPE = "local"
#: Seconds an answer about keys is reused.
KEY_CACHE_SECONDS = 5.0
#: Most secrets remembered at once (a flood of wrong keys cannot grow memory).
KEY_CACHE_SIZE = 1024


async def merchant_scope(request: Request) -> str:
    """The caller's idempotency scope: its key id, or ``local`` when no key exists."""
    header = request.headers.get("authorization", "")
    if not header and not await _keys_required(request):
        return LOCAL_SCOPE
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise _unauthorized("Send Authorization: Bearer <API key>.")
    key_id = await _key_id(request, secret.strip())
    if key_id is None:
        raise _unauthorized("The API key is unknown or revoked.")
    return key_id


async def _keys_required(request: Request) -> bool:
    state = request.app.state
    cached: tuple[float, bool] | None = getattr(state, "keys_required", None)
    now = time.monotonic()
    if cached is not None and now - cached[0] <= KEY_CACHE_SECONDS:
        return cached[1]
    refresh: asyncio.Future[bool] | None = getattr(state, "keys_required_refresh", None)
    if refresh is None:
        refresh = asyncio.ensure_future(api_keys.keys_required(state.container.storage))
        state.keys_required_refresh = refresh

        def remember(done: asyncio.Future[bool]) -> None:
            state.keys_required_refresh = None
            if not done.cancelled() and done.exception() is None:
                state.keys_required = (now, done.result())

        refresh.add_done_callback(remember)
    return await asyncio.shield(refresh)  # one waiter giving up does not cancel the others


async def _key_id(request: Request, secret: str) -> str | None:
    """The id of the active key with this secret (cached by the secret's hash)."""
    state = request.app.state
    cache: dict[str, tuple[float, str | None]] = state.__dict__.setdefault("key_cache", {})
    digest, now = hash_secret(secret), time.monotonic()
    hit = cache.get(digest)
    if hit is not None and now - hit[0] <= KEY_CACHE_SECONDS:
        return hit[1]
    key = await api_keys.authenticate(state.container.storage, secret)
    if len(cache) >= KEY_CACHE_SIZE:
        cache.clear()
    cache[digest] = (now, key.id if key else None)
    return cache[digest][1]


def _unauthorized(detail: str) -> ProblemError:
    return ProblemError(
        401, "unauthorized", "Unauthorized", detail, headers={"WWW-Authenticate": "Bearer"}
    )

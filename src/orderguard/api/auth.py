"""Merchant authentication: ``Authorization: Bearer <key>`` once any key exists."""

from __future__ import annotations

import time

from starlette.requests import Request

from orderguard.api.problems import ProblemError
from orderguard.services import api_keys

#: Requests made while no key exists share this idempotency scope (loopback only).
LOCAL_SCOPE = "local"
#: Seconds a "keys exist?" answer is reused; a new or revoked key counts within this.
KEY_CACHE_SECONDS = 5.0


async def merchant_scope(request: Request) -> str:
    """The caller's idempotency scope: its key id, or ``local`` when no key is configured."""
    wiring = request.app.state.container
    header = request.headers.get("authorization", "")
    if not header and not await _keys_required(request):
        return LOCAL_SCOPE
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise _unauthorized("Send Authorization: Bearer <API key>.")
    key = await api_keys.authenticate(wiring.storage, secret.strip())
    if key is None:
        raise _unauthorized("The API key is unknown or revoked.")
    return key.id


async def _keys_required(request: Request) -> bool:
    state = request.app.state
    cached: tuple[float, bool] | None = getattr(state, "keys_required", None)
    now = time.monotonic()
    if cached is None or now - cached[0] > KEY_CACHE_SECONDS:
        cached = (now, await api_keys.keys_required(state.container.storage))
        state.keys_required = cached
    return cached[1]


def _unauthorized(detail: str) -> ProblemError:
    return ProblemError(
        401, "unauthorized", "Unauthorized", detail, headers={"WWW-Authenticate": "Bearer"}
    )

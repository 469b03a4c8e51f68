"""Stripe SDK exceptions mapped onto the provider-neutral errors of :mod:`.base`.

The question that matters (G3) is whether a request may have reached Stripe. The SDK wraps
every transport failure in ``APIConnectionError`` raised *from* the client's exception
(aiohttp's, :mod:`.transport`; the charge's own, :mod:`.connections`), so the cause tells:
a failed connect (refused, DNS, TLS handshake, no connection within the connect timeout)
never sent anything; a read timeout, a reset or a disconnect after sending leaves the
outcome unknown, and so does any cause not known to be safe.

Stripe may also say outright whether a repeat is safe, in the ``Stripe-Should-Retry``
response header (https://docs.stripe.com/error-low-level): ``true`` makes any error safe to
repeat with the same idempotency key, ``false`` makes none; without it the status decides.
An idempotency error (the key was first used with other parameters) is not a rejection: the
request first sent with that key was ours and may have charged.
"""

from __future__ import annotations

from collections.abc import Mapping

import aiohttp
import stripe

from orderguard.providers.base import (
    ProviderBusy,
    ProviderError,
    ProviderKeyConflict,
    ProviderOutcomeUnknown,
    ProviderRateLimited,
    ProviderRejected,
    ProviderServerError,
    ProviderUnavailable,
)
from orderguard.providers.stripe.connections import RequestNotSent

#: Failures that happen before a single byte of the request left this process:
#: no connection (refused, DNS, proxy, TLS handshake), none within the connect timeout
#: (which covers waiting for one of the pool's), or a URL it would not send to.
NOT_SENT = (
    # the charge's own client (:mod:`.connections`): no connection, none in time, a header
    # refused, a connection whose close was read before anything was written
    RequestNotSent,
    aiohttp.ClientConnectorError,
    aiohttp.ConnectionTimeoutError,
    aiohttp.InvalidURL,
    aiohttp.NonHttpUrlClientError,
)
#: The response header in which Stripe says whether repeating the request is safe.
SHOULD_RETRY_HEADER = "stripe-should-retry"
#: Error code of a request sent while another with the same idempotency key is in flight.
KEY_IN_USE = "idempotency_key_in_use"


def _message(exc: stripe.StripeError) -> str:
    cause = exc.__cause__
    detail = f" ({type(cause).__name__})" if cause is not None else ""
    return f"stripe {type(exc).__name__}{detail}: {exc.user_message or exc}"


def should_retry(headers: Mapping[str, str] | None) -> bool | None:
    """Stripe's own word on repeating the request: ``True``, ``False`` or ``None`` (silent)."""
    said = {key.lower(): value for key, value in (headers or {}).items()}.get(SHOULD_RETRY_HEADER)
    return {"true": True, "false": False}.get((said or "").strip().lower())


def transport_error(exc: stripe.APIConnectionError, *, mutating: bool) -> ProviderError:
    """A connection failure: unavailable if nothing was sent, else unknown for writes.

    A read (``mutating=False``) changes nothing at Stripe, so a lost answer to it is as
    harmless as one never sent and is reported as :class:`ProviderUnavailable`.
    """
    if isinstance(exc.__cause__, NOT_SENT) or not mutating:
        return ProviderUnavailable(_message(exc))
    return ProviderOutcomeUnknown(_message(exc))


def provider_error(exc: stripe.StripeError, *, mutating: bool) -> ProviderError:
    """The neutral error for an SDK exception (card declines are handled by the caller)."""
    if isinstance(exc, stripe.APIConnectionError):
        return transport_error(exc, mutating=mutating)
    return _answered_error(exc)(_message(exc), safe_to_retry=should_retry(exc.headers))


def _answered_error(exc: stripe.StripeError) -> type[ProviderError]:
    """The error class for an answer Stripe gave, by its status, type and code."""
    status = exc.http_status or 0
    if status == 429 or isinstance(exc, stripe.RateLimitError):
        return ProviderRateLimited
    if status == 409 or _code(exc) == KEY_IN_USE:
        return ProviderBusy
    if isinstance(exc, stripe.IdempotencyError):
        return ProviderKeyConflict
    if status >= 500 or status < 400:
        return ProviderServerError
    return ProviderRejected


def _code(exc: stripe.StripeError) -> str | None:
    """The ``code`` of the error body (the SDK leaves ``exc.code`` empty for some types)."""
    return exc.code or (exc.error.code if exc.error is not None else None)

"""Stripe SDK exceptions mapped onto the provider-neutral errors of :mod:`.base`.

The question that matters (G3) is whether a request may have reached Stripe. The SDK wraps
every transport failure in ``APIConnectionError`` raised *from* the httpx exception, so the
cause tells: a failed connect never sent anything; a read timeout or a reset after sending
leaves the outcome unknown.
"""

from __future__ import annotations

import httpx
import stripe

from orderguard.providers.base import (
    ProviderBusy,
    ProviderError,
    ProviderOutcomeUnknown,
    ProviderRateLimited,
    ProviderRejected,
    ProviderServerError,
    ProviderUnavailable,
)

#: httpx failures that happen before a single byte of the request left this process.
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)


def _message(exc: stripe.StripeError) -> str:
    cause = exc.__cause__
    detail = f" ({type(cause).__name__})" if cause is not None else ""
    return f"stripe {type(exc).__name__}{detail}: {exc.user_message or exc}"


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
    status = exc.http_status or 0
    if status == 429 or isinstance(exc, stripe.RateLimitError):
        return ProviderRateLimited(_message(exc))
    if status == 409:
        return ProviderBusy(_message(exc))
    if status >= 500 or status < 400:
        return ProviderServerError(_message(exc))
    return ProviderRejected(_message(exc))

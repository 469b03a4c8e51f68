"""WeChat Pay's answers and transport failures mapped onto the neutral errors of :mod:`.base`.

WeChat Pay answers an error with an HTTP status and ``{"code": ..., "message": ...}``. A
few codes are answers, not trouble, and the adapter turns them into results before this
module sees them: ``ORDER_NOT_EXIST`` to a query (the trade is not created yet),
``ORDERPAID`` and ``ORDER_CLOSED`` to a close or a repeated order (the trade as it stands).
What is left says whether the same request may be sent again: ``out_trade_no`` and
``out_refund_no`` make a repeat of the same order or refund harmless at WeChat Pay.
"""

from __future__ import annotations

import httpx

from orderguard.providers.base import (
    ProviderError,
    ProviderKeyConflict,
    ProviderOutcomeUnknown,
    ProviderRateLimited,
    ProviderRejected,
    ProviderServerError,
    ProviderUnavailable,
)

#: httpx failures that happen before a single byte of the request left this process.
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)

#: The trade does not exist (404): to a query, the shopper has not scanned or opened it yet.
ORDER_NOT_EXIST = "ORDER_NOT_EXIST"
#: The refund does not exist (404 to a refund query): it was never made.
RESOURCE_NOT_EXISTS = "RESOURCE_NOT_EXISTS"
#: The trade is paid (a close, or an order repeated after payment).
ORDERPAID = "ORDERPAID"
#: The trade is closed (an order repeated after its close).
ORDER_CLOSED = "ORDER_CLOSED"
#: The ``out_trade_no`` was first used for an order with other parameters.
OUT_TRADE_NO_USED = "OUT_TRADE_NO_USED"
#: Codes of a refusal that a repeat may overcome.
TRANSIENT = frozenset({"SYSTEM_ERROR", "SYSTEMERROR", "BANK_ERROR", "FREQUENCY_LIMITED"})


class UnverifiedResponse(ProviderOutcomeUnknown):
    """A 2xx answer whose signature does not verify: it may not be WeChat Pay's, so what
    it says is not believed and the request's outcome is unknown."""


def answered(status: int, code: str, message: str) -> ProviderError:
    """The neutral error for an error answer (status and WeChat Pay's ``code``)."""
    text = f"wechatpay {status} {code}: {message}"
    if status == 429 or code == "FREQUENCY_LIMITED":
        return ProviderRateLimited(text)
    if code == OUT_TRADE_NO_USED:
        return ProviderKeyConflict(text)
    if status >= 500 or code in TRANSIENT:
        return ProviderServerError(text)
    return ProviderRejected(text)


def transport(exc: httpx.HTTPError, *, mutating: bool) -> ProviderError:
    """A failure with no answer: unavailable if nothing was sent (or it was only a read),
    else the outcome is unknown."""
    text = f"wechatpay {type(exc).__name__}: {exc}"
    if isinstance(exc, NOT_SENT) or not mutating:
        return ProviderUnavailable(text)
    return ProviderOutcomeUnknown(text)

"""The gateway's answers and transport failures mapped onto :mod:`..base`'s errors.

Alipay answers HTTP 200 with a ``code``: ``10000`` success, ``20000`` service unavailable,
``40001``/``40002`` missing or invalid parameters (``isv.invalid-signature`` among them),
``40003`` conditions not met, ``40004`` a business failure named by ``sub_code``
(``ACQ.TRADE_NOT_EXIST``, ``ACQ.SYSTEM_ERROR``, ...), ``40006`` no permission. Callers
handle the sub_codes that are answers (a trade that does not exist yet, a close refused
because the trade is paid); what remains is trouble, typed here by whether a repeat is
safe. Reads change nothing, so trouble on a read is :class:`ProviderUnavailable`; writes
(close, refund) are repeatable with the same ``out_trade_no`` / ``out_request_no``, which
Alipay de-duplicates, so their trouble says ``safe_to_retry=True``.
"""

from __future__ import annotations

from collections.abc import Mapping

import httpx

from orderguard.providers.base import (
    ProviderError,
    ProviderOutcomeUnknown,
    ProviderRateLimited,
    ProviderRejected,
    ProviderUnavailable,
    UnreadableAmount,
)

#: Success.
SUCCESS = "10000"
#: The gateway itself is unavailable (``isp.unknow-error``): the request may not have run.
UNAVAILABLE = "20000"
#: A business failure; ``sub_code`` names it.
BUSINESS_FAILED = "40004"

#: The trade does not exist (yet): the shopper has not opened the cashier.
TRADE_NOT_EXIST = "ACQ.TRADE_NOT_EXIST"
#: Alipay's own trouble; the outcome is unknown until the trade is queried.
SYSTEM_ERROR = "ACQ.SYSTEM_ERROR"
#: The trade's state does not allow the call (closing a paid trade, refunding an unpaid one).
TRADE_STATUS_ERROR = "ACQ.TRADE_STATUS_ERROR"
#: A refund on a finished trade (past its refund period).
TRADE_HAS_FINISHED = "ACQ.TRADE_HAS_FINISHED"
#: The refund amount is not valid: the refunds would exceed what was paid.
REFUND_FEE_ERROR = "ACQ.REASON_TRADE_REFUND_FEE_ERR"
#: A refund without ``out_request_no`` whose amount is not the trade's (never sent here).
REFUND_AMOUNT_NOT_TOTAL = "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL"
#: Calls refused for their rate.
RATE_LIMITED = ("aop.ACQ.SYSTEM_ERROR.LIMIT", "isp.rate-limit", "ACQ.REQUEST_LIMIT")

#: httpx failures that happen before a byte of the request left this process.
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)


class AmountMismatch(UnreadableAmount):
    """Alipay reports another amount or currency than the payment asked for: what was
    charged cannot be matched with the order, so the outcome counts as unknown."""


class UnknownTradeStatus(ProviderOutcomeUnknown):
    """Alipay reports a ``trade_status`` this package does not know: never guessed."""


class UnverifiedAnswer(ProviderOutcomeUnknown):
    """A gateway answer whose signature does not verify with Alipay's public key (or that
    carries none): nothing it says is believed."""


def transport_error(exc: httpx.HTTPError, *, method: str, mutating: bool) -> ProviderError:
    """A connection failure: unavailable when nothing was sent or it was a read, else
    unknown (and repeatable: Alipay de-duplicates on the request's own number)."""
    message = f"alipay {method}: {type(exc).__name__}"
    if isinstance(exc, NOT_SENT) or not mutating:
        return ProviderUnavailable(message)
    return ProviderOutcomeUnknown(message, safe_to_retry=True)


def http_error(status: int, *, method: str, mutating: bool) -> ProviderError:
    """A non-200 HTTP answer from the gateway (a proxy's 5xx, a 429)."""
    message = f"alipay {method}: HTTP {status}"
    if status == 429:
        return ProviderRateLimited(message)
    if status >= 500:
        if mutating:
            return ProviderOutcomeUnknown(message, safe_to_retry=True)
        return ProviderUnavailable(message)
    return ProviderRejected(message)


def answer_error(body: Mapping[str, object], *, method: str, mutating: bool) -> ProviderError:
    """The error for a gateway answer whose ``code`` is not success (and that the caller
    did not take as an answer)."""
    code, sub_code = str(body.get("code") or ""), str(body.get("sub_code") or "")
    message = f"alipay {method}: {code} {sub_code} {body.get('sub_msg') or body.get('msg') or ''}"
    if sub_code in RATE_LIMITED:
        return ProviderRateLimited(message.strip())
    if code == UNAVAILABLE or sub_code == SYSTEM_ERROR or sub_code.startswith("isp."):
        if mutating:
            return ProviderOutcomeUnknown(message.strip(), safe_to_retry=True)
        return ProviderUnavailable(message.strip())
    return ProviderRejected(message.strip())

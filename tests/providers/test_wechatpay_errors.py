"""WeChat Pay's error answers and transport failures: is a repeat safe?"""

from __future__ import annotations

import httpx
import pytest

from orderguard.providers.base import (
    ProviderError,
    ProviderKeyConflict,
    ProviderOutcomeUnknown,
    ProviderRateLimited,
    ProviderRejected,
    ProviderServerError,
    ProviderUnavailable,
)
from orderguard.providers.wechatpay.errors import answered, transport


@pytest.mark.parametrize(
    ("status", "code", "kind", "safe"),
    [
        (500, "SYSTEM_ERROR", ProviderServerError, True),
        (502, "", ProviderServerError, True),
        (429, "FREQUENCY_LIMITED", ProviderRateLimited, True),
        (403, "FREQUENCY_LIMITED", ProviderRateLimited, True),
        (403, "OUT_TRADE_NO_USED", ProviderKeyConflict, False),
        (400, "PARAM_ERROR", ProviderRejected, False),
        (401, "SIGN_ERROR", ProviderRejected, False),
        (403, "NO_AUTH", ProviderRejected, False),
        (404, "RESOURCE_NOT_EXISTS", ProviderRejected, False),
        (400, "INVALID_REQUEST", ProviderRejected, False),
        (403, "BANK_ERROR", ProviderServerError, True),
    ],
)
def test_an_error_answer_says_whether_a_repeat_is_safe(
    status: int, code: str, kind: type[ProviderError], safe: bool
) -> None:
    error = answered(status, code, "message")
    assert type(error) is kind
    assert error.safe_to_retry is safe


def test_a_failed_connect_never_sent_anything() -> None:
    error = transport(httpx.ConnectError("refused"), mutating=True)
    assert type(error) is ProviderUnavailable


def test_a_read_timeout_leaves_an_order_unknown_but_a_query_merely_unavailable() -> None:
    assert type(transport(httpx.ReadTimeout("slow"), mutating=True)) is ProviderOutcomeUnknown
    assert type(transport(httpx.ReadTimeout("slow"), mutating=False)) is ProviderUnavailable

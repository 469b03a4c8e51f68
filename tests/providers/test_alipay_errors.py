"""Gateway answers and transport failures typed by whether a repeat is safe."""

from __future__ import annotations

import httpx
import pytest

from orderguard.providers.alipay import errors
from orderguard.providers.base import (
    ProviderError,
    ProviderOutcomeUnknown,
    ProviderRateLimited,
    ProviderRejected,
    ProviderUnavailable,
)


@pytest.mark.parametrize(
    ("code", "sub_code", "mutating", "kind", "safe"),
    [
        ("40004", "ACQ.SYSTEM_ERROR", False, ProviderUnavailable, True),
        ("40004", "ACQ.SYSTEM_ERROR", True, ProviderOutcomeUnknown, True),
        ("20000", "isp.unknow-error", False, ProviderUnavailable, True),
        ("20000", "isp.unknow-error", True, ProviderOutcomeUnknown, True),
        ("40002", "isv.invalid-signature", False, ProviderRejected, False),
        ("40002", "isv.invalid-app-id", True, ProviderRejected, False),
        ("40004", "ACQ.INVALID_PARAMETER", True, ProviderRejected, False),
        ("40004", "ACQ.TRADE_STATUS_ERROR", True, ProviderRejected, False),
        ("40004", "ACQ.REASON_TRADE_REFUND_FEE_ERR", True, ProviderRejected, False),
        ("40006", "isv.insufficient-isv-permissions", False, ProviderRejected, False),
        ("40004", "isp.rate-limit", False, ProviderRateLimited, True),
    ],
)
def test_an_answer_that_is_not_success_is_typed_by_its_codes(
    code: str, sub_code: str, mutating: bool, kind: type[ProviderError], safe: bool
) -> None:
    error = errors.answer_error({"code": code, "sub_code": sub_code}, method="m", mutating=mutating)
    assert type(error) is kind
    assert error.safe_to_retry is safe
    assert sub_code in str(error)


@pytest.mark.parametrize(
    ("exc", "mutating", "kind"),
    [
        (httpx.ConnectError("refused"), True, ProviderUnavailable),
        (httpx.ConnectTimeout("slow"), True, ProviderUnavailable),
        (httpx.ReadTimeout("lost"), False, ProviderUnavailable),
        (httpx.ReadTimeout("lost"), True, ProviderOutcomeUnknown),
        (httpx.RemoteProtocolError("reset"), True, ProviderOutcomeUnknown),
    ],
)
def test_a_lost_answer_to_a_write_is_unknown_and_anything_else_unavailable(
    exc: httpx.HTTPError, mutating: bool, kind: type[ProviderError]
) -> None:
    error = errors.transport_error(exc, method="alipay.trade.refund", mutating=mutating)
    assert type(error) is kind
    assert error.safe_to_retry  # out_request_no / out_trade_no make every repeat safe


@pytest.mark.parametrize(
    ("status", "mutating", "kind"),
    [
        (500, False, ProviderUnavailable),
        (502, True, ProviderOutcomeUnknown),
        (429, False, ProviderRateLimited),
        (404, False, ProviderRejected),
    ],
)
def test_an_http_error_status_is_typed(
    status: int, mutating: bool, kind: type[ProviderError]
) -> None:
    assert type(errors.http_error(status, method="m", mutating=mutating)) is kind

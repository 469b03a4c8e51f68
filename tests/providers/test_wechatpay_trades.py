"""The sandbox's book of trades and refunds, without HTTP: WeChat Pay's rules with a clock
the test moves."""

from __future__ import annotations

from typing import Any

import pytest

from orderguard.providers.wechatpay.sandbox.trades import ApiError, Book

MCHID, APPID = "1900009191", "wxsandbox0000001"
NOW = 1_790_000_000.0  # 2026-09-21T22:13:20+08:00


def _book() -> tuple[Book, list[float]]:
    now = [NOW]
    return Book(MCHID, APPID, lambda: now[0]), now


def _order(no: str = "att_000001", total: int = 1000, **extra: Any) -> dict[str, Any]:
    return {
        "appid": APPID,
        "mchid": MCHID,
        "description": "Order ord_1",
        "out_trade_no": no,
        "notify_url": "https://shop.test/hooks",
        "time_expire": "2026-09-22T00:13:20+08:00",  # two hours after NOW
        "amount": {"total": total, "currency": "CNY"},
        **extra,
    }


def _paid(book: Book, no: str = "att_000001", total: int = 1000) -> None:
    trade = book.place(_order(no, total), "NATIVE")
    book.shopper(trade, "scan")
    book.shopper(trade, "pay")


def _code(call: Any, *args: Any) -> tuple[int, str]:
    with pytest.raises(ApiError) as caught:
        call(*args)
    return caught.value.status, caught.value.code


def test_a_prepay_is_invisible_to_the_query_until_scanned() -> None:
    book, _ = _book()
    trade = book.place(_order(), "NATIVE")
    assert _code(book.query, "att_000001", MCHID) == (404, "ORDER_NOT_EXIST")
    book.shopper(trade, "scan")
    assert book.query("att_000001", MCHID)["trade_state"] == "NOTPAY"


def test_as_at_wechat_pay_an_accepted_order_can_be_shown_notpay_before_the_scan() -> None:
    book, _ = _book()
    book.visible_before_scan = True
    book.place(_order(), "NATIVE")
    assert book.query("att_000001", MCHID)["trade_state"] == "NOTPAY"
    assert _code(book.query, "att_never1", MCHID) == (404, "ORDER_NOT_EXIST")


def test_a_paid_trade_shows_its_transaction_and_payer_total() -> None:
    book, _ = _book()
    _paid(book, total=1234)
    found = book.query("att_000001", MCHID)
    assert found["trade_state"] == "SUCCESS"
    assert found["amount"] == {
        "total": 1234,
        "currency": "CNY",
        "payer_total": 1234,
        "payer_currency": "CNY",
    }
    assert found["success_time"] == "2026-09-21T22:13:20+08:00"


def test_the_shopper_cannot_pay_after_the_expiry() -> None:
    book, now = _book()
    trade = book.place(_order(), "NATIVE")
    book.shopper(trade, "scan")
    now[0] += 2 * 3600
    with pytest.raises(ApiError, match="EXPIRED"):
        book.shopper(trade, "pay")


def test_an_abandoned_trade_stays_notpay() -> None:
    book, _ = _book()
    trade = book.place(_order(), "MWEB")
    book.shopper(trade, "open")
    book.shopper(trade, "abandon")
    assert book.query("att_000001", MCHID)["trade_state"] == "NOTPAY"


def test_an_order_repeated_with_another_amount_or_type_is_refused() -> None:
    book, _ = _book()
    book.place(_order(), "NATIVE")
    assert _code(book.place, _order(total=999), "NATIVE") == (403, "OUT_TRADE_NO_USED")
    assert _code(book.place, _order(), "MWEB") == (403, "OUT_TRADE_NO_USED")
    later = _order(time_expire="2026-09-22T01:00:00+08:00")
    assert book.place(later, "NATIVE").out_trade_no == "att_000001"


def test_close_rules() -> None:
    book, _ = _book()
    _paid(book, "att_paid01")
    book.place(_order("att_open01"), "NATIVE")
    assert _code(book.close, "att_paid01", MCHID) == (403, "ORDERPAID")
    assert _code(book.close, "att_nothing", MCHID) == (404, "ORDER_NOT_EXIST")
    book.close("att_open01", MCHID)
    book.close("att_open01", MCHID)
    assert book.query("att_open01", MCHID)["trade_state"] == "CLOSED"
    assert _code(book.place, _order("att_open01"), "NATIVE") == (400, "ORDER_CLOSED")
    assert _code(book.place, _order("att_paid01"), "NATIVE") == (403, "ORDERPAID")


def _refund(no: str, refund: int, total: int = 1000, trade: str = "att_000001") -> dict[str, Any]:
    return {
        "out_trade_no": trade,
        "out_refund_no": no,
        "amount": {"refund": refund, "total": total, "currency": "CNY"},
    }


def test_refund_rules() -> None:
    book, _ = _book()
    book.place(_order("att_unpaid"), "NATIVE")
    assert _code(book.refund, _refund("r0", 1, trade="att_unpaid")) == (404, "RESOURCE_NOT_EXISTS")
    _paid(book)
    assert _code(book.refund, _refund("r1", 100, total=999)) == (400, "INVALID_REQUEST")
    assert book.refund(_refund("r1", 600))["status"] == "PROCESSING"
    assert book.refund(_refund("r1", 600))["refund_id"] == book.refunds["r1"]["refund_id"]
    assert _code(book.refund, _refund("r1", 500)) == (400, "INVALID_REQUEST")
    assert _code(book.refund, _refund("r2", 401)) == (400, "INVALID_REQUEST")
    book.refund(_refund("r2", 400))
    book.settle_refund("r1")
    assert book.query("att_000001", MCHID)["trade_state"] == "REFUND"


def test_a_refund_that_ends_abnormal_gives_its_amount_back_to_refund() -> None:
    book, _ = _book()
    _paid(book)
    book.refund(_refund("r1", 1000))
    book.settle_refund("r1", "ABNORMAL")
    assert book.refund(_refund("r2", 1000))["amount"]["refund"] == 1000

"""WeChat Pay objects (plain JSON dicts) turned into provider-neutral results. Pure functions.

A transaction's ``trade_state`` decides the outcome (:data:`STATE_OUTCOMES`). Two notions
the neutral results lack travel in :attr:`PaymentResult.metadata`, under keys defined
here: the WeChat ``trade_state`` (:data:`TRADE_STATE`; :data:`NOT_YET_CREATED` when the
active query answered ``ORDER_NOT_EXIST``), and the next action of a new payment
(:data:`NEXT_ACTION`: ``qr`` with the ``code_url`` or ``redirect`` to the ``h5_url``, the
URL also in ``redirect_url``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from orderguard.providers.base import (
    AmountNotExact,
    PaymentOutcome,
    PaymentResult,
    RefundResult,
    UnreadableAmount,
    WebhookEvent,
)
from orderguard.providers.wechatpay import currencies

Json = Mapping[str, Any]

#: ``trade_state`` -> outcome. ``NOTPAY`` is the shopper still to scan or pay:
#: ACTION_REQUIRED, as a 3-D Secure step is; ``USERPAYING`` (entering the password) is
#: PENDING: the shopper acted and WeChat Pay is deciding. ``REFUND`` was paid (part or all
#: of it refunded since): succeeded, with :data:`TRADE_STATE` saying ``REFUND``; the
#: refunded amounts are the refunds' own (their notifications and ``retrieve_refund``),
#: never guessed from here.
STATE_OUTCOMES: dict[str, PaymentOutcome] = {
    "SUCCESS": PaymentOutcome.SUCCEEDED,
    "REFUND": PaymentOutcome.SUCCEEDED,
    "NOTPAY": PaymentOutcome.ACTION_REQUIRED,
    "USERPAYING": PaymentOutcome.PENDING,
    "CLOSED": PaymentOutcome.FAILED,
    "REVOKED": PaymentOutcome.FAILED,
    "PAYERROR": PaymentOutcome.FAILED,
}
#: Refund ``status`` (``refund_status`` in notifications) -> :attr:`RefundResult.status`.
REFUND_STATUSES: dict[str, str] = {
    "SUCCESS": "succeeded",
    "PROCESSING": "pending",
    "CLOSED": "failed",
    "ABNORMAL": "failed",
}

#: Metadata key of the WeChat ``trade_state`` on every payment result.
TRADE_STATE = "wechatpay_trade_state"
#: Its value when the trade does not exist (yet): the shopper has not scanned or opened
#: the page. ACTION_REQUIRED until the payment expires, never failed before.
NOT_YET_CREATED = "NOT_YET_CREATED"
#: Metadata keys of a new payment's next action: ``qr`` or ``redirect``, and its URL.
NEXT_ACTION = "wechatpay_next_action"
NEXT_ACTION_URL = "wechatpay_next_action_url"
#: Metadata key of WeChat Pay's own transaction id, once the shopper paid.
TRANSACTION_ID = "wechatpay_transaction_id"
#: China Standard Time, in which WeChat Pay writes its times.
CST = timezone(timedelta(hours=8))


def rfc3339(moment: datetime) -> str:
    """``moment`` as WeChat Pay writes times (``2026-12-03T15:04:05+08:00``)."""
    return moment.astimezone(CST).isoformat(timespec="seconds")


def parse_time(value: Any) -> datetime | None:
    """A WeChat Pay RFC 3339 time as an aware UTC datetime (``None`` when absent)."""
    if not value:
        return None
    return datetime.fromisoformat(str(value)).astimezone(UTC)


def attach(order_id: str) -> str:
    """The ``attach`` of a new order: the order id, given back in every query."""
    return json.dumps({"order_id": order_id}, separators=(",", ":"))


def attached_order(value: Any) -> str | None:
    """The order id an ``attach`` carries (``None`` when it is not ours)."""
    try:
        found = json.loads(str(value or ""))
    except ValueError:
        return None
    order = found.get("order_id") if isinstance(found, dict) else None
    return None if order is None else str(order)


def fen_amount(amount: Json | None) -> tuple[int, str]:
    """``amount.total`` (or ``refund``) as ISO minor units and the currency;
    :class:`UnreadableAmount` when it is not an integer number of fen of CNY."""
    amount = amount or {}
    value = amount.get("total")
    currency = str(amount.get("currency") or currencies.CURRENCY).upper()
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise UnreadableAmount(f"WeChat Pay reported the amount {value!r}")
    if currency != currencies.CURRENCY:
        raise UnreadableAmount(f"WeChat Pay reported an amount in {currency}, not CNY")
    try:
        return currencies.from_fen(value, currency), currency
    except AmountNotExact as exc:  # pragma: no cover - fen are ISO minor units
        raise UnreadableAmount(str(exc)) from exc


def payment_result(trade: Json) -> PaymentResult:
    """A transaction (query answer or decrypted notification) as a :class:`PaymentResult`."""
    state = str(trade.get("trade_state") or "")
    outcome = STATE_OUTCOMES.get(state, PaymentOutcome.PENDING)
    amount, currency = (None, None) if not trade.get("amount") else fen_amount(trade["amount"])
    if outcome is PaymentOutcome.SUCCEEDED and amount is None:
        raise UnreadableAmount(f"a {state} trade without its amount")
    meta = {TRADE_STATE: state}
    if trade.get("transaction_id"):
        meta[TRANSACTION_ID] = str(trade["transaction_id"])
    failed = outcome is PaymentOutcome.FAILED
    return PaymentResult(
        outcome=outcome,
        provider_ref=str(trade["out_trade_no"]),
        amount=amount,
        currency=currency,
        decline_code=state.lower() if failed else None,
        retry_with_other_method=failed,
        order_id=attached_order(trade.get("attach")),
        attempt_id=str(trade["out_trade_no"]),
        created_at=parse_time(trade.get("success_time")),
        metadata=meta,
    )


def not_yet_created(out_trade_no: str) -> PaymentResult:
    """The answer for a trade WeChat Pay does not know (yet): the shopper is still to
    scan or open the page (ACTION_REQUIRED), with the marker."""
    return PaymentResult(
        outcome=PaymentOutcome.ACTION_REQUIRED,
        provider_ref=out_trade_no,
        attempt_id=out_trade_no,
        metadata={TRADE_STATE: NOT_YET_CREATED},
    )


def is_not_yet_created(result: PaymentResult) -> bool:
    """Whether ``result`` says the trade does not exist at WeChat Pay yet."""
    return result.metadata.get(TRADE_STATE) == NOT_YET_CREATED


def awaiting_shopper(
    out_trade_no: str, *, order_id: str, amount: int, kind: str, url: str
) -> PaymentResult:
    """A new order: the shopper must scan the QR code or open the H5 page."""
    return PaymentResult(
        outcome=PaymentOutcome.ACTION_REQUIRED,
        provider_ref=out_trade_no,
        amount=amount,
        currency=currencies.CURRENCY,
        redirect_url=url,
        order_id=order_id,
        attempt_id=out_trade_no,
        metadata={TRADE_STATE: NOT_YET_CREATED, NEXT_ACTION: kind, NEXT_ACTION_URL: url},
    )


def refund_result(refund: Json) -> RefundResult:
    """A refund (answer, query or decrypted notification) as a :class:`RefundResult`;
    its ``metadata`` carries ``refund_id``: our ``out_refund_no``."""
    status = str(refund.get("status") or refund.get("refund_status") or "")
    amount = dict(refund.get("amount") or {})
    value, currency = fen_amount({"total": amount.get("refund"), **_currency(amount)})
    return RefundResult(
        refund_ref=str(refund.get("refund_id") or refund["out_refund_no"]),
        provider_ref=str(refund["out_trade_no"]),
        amount=value,
        currency=currency,
        status=REFUND_STATUSES.get(status, "pending"),
        failure_reason=status if status in ("CLOSED", "ABNORMAL") else None,
        metadata={"refund_id": str(refund["out_refund_no"])},
    )


def _currency(amount: Json) -> dict[str, Any]:
    return {"currency": amount["currency"]} if amount.get("currency") else {}


def webhook_event(notification: Json, resource: Json) -> WebhookEvent:
    """A notification and its decrypted resource as a :class:`WebhookEvent`."""
    kind = str(notification.get("event_type") or "")
    created = parse_time(notification.get("create_time")) or datetime.now(UTC)
    return WebhookEvent(
        event_id=str(notification["id"]),
        type=kind,
        created_at=created,
        payment=payment_result(resource) if kind.startswith("TRANSACTION.") else None,
        refund=refund_result(resource) if kind.startswith("REFUND.") else None,
    )

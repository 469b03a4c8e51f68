"""Alipay's trades, refunds and notifications turned into provider-neutral results. Pure.

``provider_ref`` is always the trade's ``out_trade_no`` (ours, known before the trade
exists at Alipay); Alipay's own ``trade_no`` travels in the metadata. Two notions the
neutral interface lacks travel as metadata markers (:data:`STATE`, :data:`NEXT_ACTION`):
a trade that does not exist yet, and a trade closed by a full refund.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote, unquote

from orderguard.providers.alipay import currencies
from orderguard.providers.alipay.errors import AmountMismatch, UnknownTradeStatus
from orderguard.providers.alipay.times import BEIJING as BEIJING
from orderguard.providers.alipay.times import TIME_FORMAT as TIME_FORMAT
from orderguard.providers.alipay.times import alipay_time as alipay_time
from orderguard.providers.alipay.times import beijing_time
from orderguard.providers.base import (
    Charge,
    PaymentOutcome,
    PaymentResult,
    UnreadableAmount,
    WebhookEvent,
)

#: Metadata key of the trade's state beyond the outcome; its values are below.
STATE = "alipay_state"
#: The trade does not exist at Alipay yet (the shopper has not opened the cashier):
#: ACTION_REQUIRED (the shopper is still to act) until the payment's expiry, never FAILED
#: before it.
NOT_CREATED = "not_created"
#: The trade was paid, then closed by refunds of its whole amount: SUCCEEDED (it was
#: charged), and refunded.
REFUNDED = "refunded"
#: Metadata key of what the shopper must do next, and its value for a cashier redirect.
NEXT_ACTION = "next_action"
REDIRECT = "redirect"
#: Metadata key of Alipay's own trade number.
TRADE_NO = "trade_no"

#: ``trade_status`` -> outcome (``TRADE_CLOSED`` after a payment is decided by :func:`_paid`).
#: ``WAIT_BUYER_PAY`` is the shopper still to pay at the cashier: ACTION_REQUIRED, as a
#: 3-D Secure step is, until the payment expires and the shop closes the trade.
TRADE_OUTCOMES: dict[str, PaymentOutcome] = {
    "WAIT_BUYER_PAY": PaymentOutcome.ACTION_REQUIRED,
    "TRADE_SUCCESS": PaymentOutcome.SUCCEEDED,
    "TRADE_FINISHED": PaymentOutcome.SUCCEEDED,
    "TRADE_CLOSED": PaymentOutcome.FAILED,
}
#: Decline code of a trade closed unpaid (expired, or closed by the shop).
CLOSED = "trade_closed"

Json = Mapping[str, object]


@dataclass(frozen=True, slots=True)
class Asked:
    """What a payment asked for (ISO minor units), to check Alipay's answer against."""

    amount: int
    currency: str


def fen(value: object, *, field: str) -> int:
    """A yuan field as fen; :class:`UnreadableAmount` when it is not exact."""
    try:
        return currencies.from_yuan(value)
    except ValueError as exc:
        raise UnreadableAmount(f"Alipay reported {field}={value!r}: {exc}") from exc


def _paid(trade: Json) -> bool:
    """Whether a closed trade had been paid (so a full refund closed it)."""
    return bool(trade.get("send_pay_date") or trade.get("gmt_payment") or trade.get("gmt_refund"))


def outcome(trade: Json) -> tuple[PaymentOutcome, str | None]:
    """The outcome of a trade and its :data:`STATE` marker, if any."""
    status = str(trade.get("trade_status") or "")
    if status == "TRADE_CLOSED" and _paid(trade):
        return PaymentOutcome.SUCCEEDED, REFUNDED
    return TRADE_OUTCOMES.get(status, PaymentOutcome.UNKNOWN), None


def _checked(amount: int, currency: str, asked: Asked | None, out_trade_no: str) -> None:
    if asked is not None and (amount, currency) != (asked.amount, asked.currency.upper()):
        raise AmountMismatch(
            f"Alipay reports {amount} {currency} for {out_trade_no}, "
            f"which asked for {asked.amount} {asked.currency}"
        )


def passback(order_id: str) -> str:
    """The ``passback_params`` of a payment: the order id, URL-encoded as Alipay wants it.
    Alipay gives it back in every notification (not in the query), so a notification names
    its order as a Stripe event's metadata does."""
    return quote(order_id, safe="")


def payment_result(trade: Json, *, asked: Asked | None = None) -> PaymentResult:
    """A trade (``alipay.trade.query``'s answer or a notification) as a result; a paid
    trade's amount is checked against ``asked`` (:class:`AmountMismatch`)."""
    out_trade_no = str(trade["out_trade_no"])
    found, marker = outcome(trade)
    if found is PaymentOutcome.UNKNOWN:
        raise UnknownTradeStatus(f"Alipay reported trade_status={trade.get('trade_status')!r}")
    currency = str(trade.get("trans_currency") or currencies.CURRENCY).upper()
    amount = None
    if trade.get("total_amount") not in (None, ""):
        amount = fen(trade["total_amount"], field="total_amount")
    if found is PaymentOutcome.SUCCEEDED:
        if amount is None:
            raise UnreadableAmount(f"Alipay reported a paid {out_trade_no} without total_amount")
        _checked(amount, currency, asked, out_trade_no)
    meta = {TRADE_NO: str(trade["trade_no"])} if trade.get("trade_no") else {}
    if marker:
        meta[STATE] = marker
    return PaymentResult(
        outcome=found,
        provider_ref=out_trade_no,
        amount=amount,
        currency=currency,
        decline_code=CLOSED if found is PaymentOutcome.FAILED else None,
        retry_with_other_method=found is PaymentOutcome.FAILED,
        order_id=unquote(str(trade["passback_params"])) if trade.get("passback_params") else None,
        created_at=beijing_time(trade.get("gmt_create")),
        metadata=meta,
    )


def not_created(out_trade_no: str, *, asked: Asked | None = None) -> PaymentResult:
    """The answer for a trade Alipay does not hold yet: ACTION_REQUIRED (the shopper has
    not opened the cashier), marked :data:`NOT_CREATED`."""
    return PaymentResult(
        outcome=PaymentOutcome.ACTION_REQUIRED,
        provider_ref=out_trade_no,
        amount=None if asked is None else asked.amount,
        currency=None if asked is None else asked.currency.upper(),
        metadata={STATE: NOT_CREATED},
    )


def refunded_charge(params: Json) -> Charge | None:
    """A refund notification's trade as a :class:`Charge` with its cumulative
    ``refund_fee`` as ``amount_refunded`` (Alipay tells the total refunded, not each
    refund's amount); ``None`` for a notification without a refund."""
    if params.get("refund_fee") in (None, ""):
        return None
    return Charge(
        provider_ref=str(params["out_trade_no"]),
        amount=fen(params.get("total_amount"), field="total_amount"),
        currency=currencies.CURRENCY,
        created_at=beijing_time(params.get("gmt_payment"))
        or beijing_time(params.get("gmt_create"))
        or datetime.now(UTC),
        amount_refunded=fen(params["refund_fee"], field="refund_fee"),
        metadata={"out_biz_no": str(params.get("out_biz_no") or "")},
    )


def webhook_event(params: Json, *, asked: Asked | None = None) -> WebhookEvent:
    """A notification (its form fields) as a :class:`WebhookEvent`; ``notify_id`` is its id.

    Its ``type`` is ``trade_status.<TRADE_STATUS>``, as Alipay names its notification
    kinds.
    """
    return WebhookEvent(
        event_id=str(params["notify_id"]),
        type=f"trade_status.{params['trade_status']}",
        created_at=beijing_time(params.get("notify_time")) or datetime.now(UTC),
        payment=payment_result(params, asked=asked),
        charge=refunded_charge(params),
    )

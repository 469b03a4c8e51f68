"""Notifications: a signed form ``POST`` to the trade's ``notify_url``, repeated on Alipay's
(shrunk) schedule until the answer's body is exactly ``success``; the fault profile's
delivery faults applied (:mod:`...wallet_courier`)."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import urlencode

import httpx
from cryptography.hazmat.primitives.asymmetric import rsa

from orderguard.providers.alipay import signing
from orderguard.providers.alipay.currencies import to_yuan
from orderguard.providers.alipay.sandbox.trades import Trade
from orderguard.providers.alipay.times import alipay_time
from orderguard.providers.wallet_courier import Courier
from orderguard.providers.wallet_faults import FaultInjector

#: The answer that stops the retries, byte for byte.
ACK = "success"


@dataclass
class Delivery:
    """One notification and how its attempts went."""

    notify_id: str
    out_trade_no: str
    trade_status: str
    url: str
    form: dict[str, str]
    attempts: int = 0
    delivered: bool = False
    answers: list[str] = field(default_factory=list)
    #: The delivery faults it met: ``dropped``, ``duplicated``, ``delayed Nms``, ``reordered``.
    faults: list[str] = field(default_factory=list)


def notification(
    trade: Trade,
    *,
    app_id: str,
    seller_id: str,
    now: datetime,
    key: rsa.RSAPrivateKey,
    refund_request_no: str | None = None,
) -> dict[str, str]:
    """The signed form fields of a notification about ``trade`` as it stands."""
    fields = {
        **trade.fields(),
        "notify_time": alipay_time(now),
        "notify_type": "trade_status_sync",
        "notify_id": secrets.token_hex(16),
        "app_id": app_id,
        "seller_id": seller_id,
        "charset": "utf-8",
        "version": "1.0",
        "sign_type": signing.SIGN_TYPE,
    }
    fields.pop("buyer_user_id", None)
    fields["buyer_id"] = "2088000000000002"
    if trade.passback_params:
        fields["passback_params"] = trade.passback_params
    if trade.paid_at is not None:
        fields["gmt_payment"] = alipay_time(trade.paid_at)
    if trade.closed_at is not None:
        fields["gmt_close"] = alipay_time(trade.closed_at)
    if refund_request_no is not None:
        fields["refund_fee"] = to_yuan(trade.refunded_fen)
        fields["out_biz_no"] = refund_request_no
        fields["gmt_refund"] = alipay_time(now)
    fields["sign"] = signing.sign(signing.notification_content(fields), key)
    return fields


class Notifier:
    """Sends each notification until acknowledged, on its own task."""

    def __init__(
        self,
        delays_s: tuple[float, ...],
        clock: Callable[[], datetime],
        injector: FaultInjector | None = None,
    ) -> None:
        self.delays_s = delays_s
        self.clock = clock
        self.deliveries: list[Delivery] = []
        self._courier = Courier(injector or FaultInjector())
        self._http: httpx.AsyncClient | None = None  # made at the first notification

    def send(self, trade: Trade, form: dict[str, str]) -> None:
        """Queue a notification (nothing when the trade has no ``notify_url``)."""
        if not trade.notify_url:
            return
        delivery = Delivery(
            form["notify_id"], trade.out_trade_no, form["trade_status"], trade.notify_url, form
        )
        self.deliveries.append(delivery)
        delivery.faults = self._courier.dispatch(
            delivery.notify_id, lambda: self._deliver(delivery)
        )

    async def _deliver(self, delivery: Delivery) -> None:
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=5.0)
        for delay in (0.0, *self.delays_s):
            await asyncio.sleep(delay)
            delivery.attempts += 1
            try:
                response = await self._http.post(
                    delivery.url,
                    content=urlencode(delivery.form).encode(),
                    headers={"content-type": "application/x-www-form-urlencoded; charset=utf-8"},
                )
                delivery.answers.append(response.text[:100])
                if response.status_code == 200 and response.text == ACK:
                    delivery.delivered = True
                    return
            except httpx.HTTPError as exc:
                delivery.answers.append(type(exc).__name__)

    async def aclose(self) -> None:
        await self._courier.aclose()
        if self._http is not None:
            await self._http.aclose()

    def ledger(self) -> list[dict[str, object]]:
        return [
            {
                "notify_id": d.notify_id,
                "out_trade_no": d.out_trade_no,
                "trade_status": d.trade_status,
                "refund_fee": d.form.get("refund_fee"),
                "attempts": d.attempts,
                "delivered": d.delivered,
                "answers": list(d.answers),
                "faults": list(d.faults),
            }
            for d in self.deliveries
        ]

"""Notifications: encrypted with the APIv3 key, signed like every answer, POSTed to the
order's (or refund's) ``notify_url`` and sent again on anything but a 2xx.

WeChat Pay retries over hours (15 s, 15 s, 30 s, 3 min, ...); the sandbox keeps the
order of things with much shorter delays (:data:`RETRY_DELAYS_S`). The fault profile's
delivery faults apply (:mod:`...wallet_courier`).
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Callable
from typing import Any

import httpx

from orderguard.providers.wallet_courier import Courier
from orderguard.providers.wallet_faults import FaultInjector
from orderguard.providers.wechatpay import resources
from orderguard.providers.wechatpay.mapping import rfc3339

Json = dict[str, Any]

#: Seconds before each new attempt after the first.
RETRY_DELAYS_S = (0.2, 0.5, 1.0, 2.0, 4.0)
#: The summary WeChat Pay writes per event type.
SUMMARIES = {
    "TRANSACTION.SUCCESS": "支付成功",
    "REFUND.SUCCESS": "退款成功",
    "REFUND.ABNORMAL": "退款异常",
    "REFUND.CLOSED": "退款关闭",
}


class Notifier:
    """Sends notifications in the background and records every attempt."""

    def __init__(
        self,
        apiv3_key: str,
        sign: Callable[[bytes], dict[str, str]],
        now: Callable[[], Any],
        delays: tuple[float, ...] = RETRY_DELAYS_S,
        *,
        courier: Courier | None = None,
    ) -> None:
        self._key, self._sign, self._now, self._delays = apiv3_key, sign, now, delays
        self._courier = courier or Courier(FaultInjector())
        self._client = httpx.AsyncClient(timeout=5.0)
        #: Every notification made, with its attempts (the ledger shows them).
        self.sent: list[Json] = []

    def notify(self, url: str, event_type: str, plain: Json) -> Json:
        """Encrypt ``plain`` into a notification of ``event_type`` and start sending it."""
        original = "transaction" if event_type.startswith("TRANSACTION.") else "refund"
        notification = {
            "id": f"EV-{secrets.token_hex(10).upper()}",
            "create_time": rfc3339(self._now()),
            "resource_type": "encrypt-resource",
            "event_type": event_type,
            "summary": SUMMARIES.get(event_type, event_type),
            "resource": resources.encrypt(
                self._key, plain, original_type=original, associated_data=original
            ),
        }
        record: Json = {
            "id": notification["id"],
            "event_type": event_type,
            "url": url,
            "out_trade_no": plain.get("out_trade_no"),
            "statuses": [],
            "delivered": False,
        }
        self.sent.append(record)
        body = json.dumps(notification, ensure_ascii=False, separators=(",", ":")).encode()
        record["faults"] = self._courier.dispatch(record["id"], lambda: self._deliver(record, body))
        return record

    async def _deliver(self, record: Json, body: bytes) -> None:
        for delay in (0.0, *self._delays):
            await asyncio.sleep(delay)
            headers = {"Content-Type": "application/json", **self._sign(body)}
            try:
                response = await self._client.post(record["url"], content=body, headers=headers)
                status: int | str = response.status_code
            except httpx.HTTPError as exc:
                status = type(exc).__name__
            record["statuses"].append(status)
            if isinstance(status, int) and 200 <= status < 300:
                record["delivered"] = True
                return

    async def stop(self) -> None:
        """Stop sending and close the client."""
        await self._courier.aclose()
        await self._client.aclose()

"""WeChat Pay API v3 over httpx, signed and verified here with ``cryptography``.

Each payment attempt is one WeChat Pay order whose ``out_trade_no`` is the attempt id
(:func:`reference`): known before the request is sent, the same on every repeat (WeChat
Pay answers a repeated order with the first one), and the key of the active query. Extra
to :class:`~orderguard.providers.base.PaymentProvider`: :meth:`close_payment` (the close on
expiry; :meth:`cancel_payment` is the same), :meth:`retrieve_refund`,
:meth:`download_bill` (the daily trade bill), and the markers of
:mod:`.mapping` (not yet created, next action). The order's ``time_expire`` is the
request's ``expires_at``.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx
from cryptography.hazmat.primitives.asymmetric import rsa

from orderguard.providers.base import (
    AmountNotExact,
    AmountRule,
    Charge,
    ChargeRequest,
    InvalidWebhook,
    PaymentOutcome,
    PaymentResult,
    ProviderError,
    ProviderRejected,
    RefundResult,
    UnchargeableAmount,
    UnreadableAmount,
    WebhookEvent,
)
from orderguard.providers.bills import BillFile, BillRefused, BillUnavailable, download
from orderguard.providers.wechatpay import bills, currencies, errors, mapping, methods, resources
from orderguard.providers.wechatpay.settings import DEFAULT_BASE_URL, is_live_key, is_sandbox_url
from orderguard.providers.wechatpay.signing import (
    DEFAULT_TOLERANCE_S,
    SignatureRefused,
    Verifier,
    authorization,
    load_private_key,
)

#: ``out_trade_no``: 6 to 32 of digits, letters, ``_-|*``; ``out_refund_no``: up to 64, and ``@``.
TRADE_NO = re.compile(r"[0-9A-Za-z_\-|*]{6,32}")
REFUND_NO = re.compile(r"[0-9A-Za-z_\-|*@]{1,64}")
#: How long a new payment may be paid when its request gives no expiry
#: (``ChargeRequest.expires_at``).
DEFAULT_PAYMENT_TTL = timedelta(hours=2)
#: ``ChargeRequest.metadata`` key read when present: the shopper's IP address (H5 orders
#: must carry it).
CLIENT_IP_KEY = "payer_client_ip"
TRADES = "/v3/pay/transactions/out-trade-no/"
REFUNDS = "/v3/refund/domestic/refunds"


def reference(request: ChargeRequest) -> str:
    """The ``out_trade_no`` of ``request``'s order: its attempt id."""
    if not TRADE_NO.fullmatch(request.attempt_id):
        raise ProviderRejected(f"attempt id {request.attempt_id!r} is not a valid out_trade_no")
    return request.attempt_id


@dataclass(frozen=True, slots=True)
class _Answer:
    status: int
    body: dict[str, Any]

    @property
    def code(self) -> str:
        return str(self.body.get("code") or "")

    def error(self) -> ProviderError:
        return errors.answered(self.status, self.code, str(self.body.get("message") or ""))


class WechatPayProvider:
    """:class:`~orderguard.providers.base.PaymentProvider` for WeChat Pay (or its sandbox)."""

    def __init__(
        self,
        *,
        mchid: str,
        appid: str,
        merchant_serial_no: str,
        private_key_pem: str,
        apiv3_key: str,
        verifying_keys: Mapping[str, rsa.RSAPublicKey],
        notify_url: str,
        base_url: str = DEFAULT_BASE_URL,
        name: str = "wechatpay",
        timeout_s: float = 10.0,
        connect_timeout_s: float = 3.0,
        payment_ttl: timedelta = DEFAULT_PAYMENT_TTL,
        tolerance_s: int = DEFAULT_TOLERANCE_S,
        clock: Callable[[], float] = time.time,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.name = name
        #: Whether this merchant moves real money (a real mchid at a non-sandbox address).
        self.livemode = is_live_key(mchid) and not is_sandbox_url(base_url)
        self._mchid, self._appid, self._serial = mchid, appid, merchant_serial_no
        self._key = load_private_key(private_key_pem)
        self._apiv3_key = apiv3_key
        resources.check_key(apiv3_key)
        self._verifier = Verifier(verifying_keys, tolerance_s, clock)
        self._notify_url, self._ttl, self._clock = notify_url, payment_ttl, clock
        self._http = httpx.AsyncClient(
            base_url=base_url,
            timeout=httpx.Timeout(timeout_s, connect=connect_timeout_s),
            transport=transport,
        )

    def amount_rules(self, currency: str) -> AmountRule:
        """CNY in fen from 1; nothing else (:mod:`.currencies`)."""
        return currencies.rule(currency)

    def to_provider_units(self, amount: int, currency: str) -> int:
        """ISO minor units -> fen."""
        return currencies.to_fen(amount, currency)

    def from_provider_units(self, amount: int, currency: str) -> int:
        """Fen -> ISO minor units."""
        return currencies.from_fen(amount, currency)

    def _fen(self, amount: int, currency: str) -> int:
        rule = self.amount_rules(currency)
        if not rule.supported or amount < rule.minimum or amount > (rule.maximum or amount):
            raise UnchargeableAmount(f"WeChat Pay cannot take {amount} of {currency}; not sent")
        try:
            return self.to_provider_units(amount, currency)
        except AmountNotExact as exc:  # pragma: no cover - fen are ISO minor units
            raise UnchargeableAmount(str(exc)) from exc

    async def _call(
        self, method: str, path: str, body: Mapping[str, Any] | None, *, mutating: bool
    ) -> _Answer:
        """Send one signed request; a 2xx answer must verify, any other is returned as is."""
        text = "" if body is None else json.dumps(body, ensure_ascii=False, separators=(",", ":"))
        request = self._http.build_request(
            method,
            path,
            content=text.encode() if body is not None else None,
            headers={"Accept": "application/json", "Content-Type": "application/json"},
        )
        request.headers["Authorization"] = authorization(
            mchid=self._mchid,
            serial_no=self._serial,
            private_key=self._key,
            method=method,
            url=request.url.raw_path.decode(),
            body=text,
        )
        try:
            response = await self._http.send(request)
        except httpx.HTTPError as exc:
            raise errors.transport(exc, mutating=mutating) from exc
        if 200 <= response.status_code < 300:
            try:
                self._verifier.verify(response.headers, response.content)
            except SignatureRefused as exc:
                raise errors.UnverifiedResponse(
                    f"wechatpay answer to {method} {path} does not verify: {exc}",
                    safe_to_retry=True,
                ) from exc
        return _Answer(response.status_code, _json_object(response.content))

    def _expiry(self, request: ChargeRequest) -> datetime:
        if request.expires_at is not None:
            return request.expires_at
        return datetime.fromtimestamp(self._clock(), UTC) + self._ttl

    def order_body(self, request: ChargeRequest) -> dict[str, Any]:
        """The JSON of ``request``'s Native or H5 order (what is signed and sent); its
        ``time_expire`` is ``request.expires_at`` (unset: now + the payment TTL)."""
        if request.method not in methods.ORDERS:
            raise ProviderRejected(f"WeChat Pay does not take the method {request.method!r}")
        body: dict[str, Any] = {
            "appid": self._appid,
            "mchid": self._mchid,
            "description": f"Order {request.order_id}"[:127],
            "out_trade_no": reference(request),
            "time_expire": mapping.rfc3339(self._expiry(request)),
            "attach": mapping.attach(request.order_id),
            "notify_url": self._notify_url,
            "amount": {
                "total": self._fen(request.amount, request.currency),
                "currency": currencies.CURRENCY,
            },
        }
        if request.method == methods.H5:
            ip = request.metadata.get(CLIENT_IP_KEY) or "127.0.0.1"
            body["scene_info"] = {"payer_client_ip": ip, "h5_info": {"type": "Wap"}}
        return body

    async def create_payment(self, request: ChargeRequest) -> PaymentResult:
        """Place the order; the answer is the QR code or the H5 page the shopper must use.

        Repeating it is safe (same ``out_trade_no``, same body). An order already paid or
        closed is answered with the trade as it stands.
        """
        body = self.order_body(request)
        path, field, kind = methods.ORDERS[request.method]
        answer = await self._call("POST", path, body, mutating=True)
        if answer.code in (errors.ORDERPAID, errors.ORDER_CLOSED):
            return await self.retrieve_payment(body["out_trade_no"])
        if answer.status != 200:
            raise answer.error()
        url = answer.body.get(field)
        if not url:
            raise errors.UnverifiedResponse(f"wechatpay order answer without {field}")
        return mapping.awaiting_shopper(
            body["out_trade_no"],
            order_id=request.order_id,
            amount=request.amount,
            kind=kind,
            url=str(url),
        )

    async def retrieve_payment(self, provider_ref: str) -> PaymentResult:
        """The active query by ``out_trade_no``; a trade not created yet is ACTION_REQUIRED with
        :data:`.mapping.NOT_YET_CREATED`."""
        path = f"{TRADES}{quote(provider_ref, safe='')}?mchid={quote(self._mchid, safe='')}"
        answer = await self._call("GET", path, None, mutating=False)
        if answer.status == 404 and answer.code == errors.ORDER_NOT_EXIST:
            return mapping.not_yet_created(provider_ref)
        if answer.status != 200:
            raise answer.error()
        if (
            answer.body.get("out_trade_no") != provider_ref
            or answer.body.get("mchid") != self._mchid
        ):
            raise errors.UnverifiedResponse(f"wechatpay answered another trade than {provider_ref}")
        return mapping.payment_result(answer.body)

    async def find_payments(self, order_id: str) -> list[PaymentResult]:
        """Not offered: WeChat Pay finds a trade by ``out_trade_no`` only (the attempt id;
        the profile does not declare ``find_by_order_id``)."""
        raise ProviderRejected("WeChat Pay cannot search by order id: query each attempt")

    async def close_payment(self, provider_ref: str) -> PaymentResult:
        """Close the trade (on expiry): FAILED when closed (again: closing is idempotent);
        the SUCCEEDED trade when the shopper paid in the meantime (``ORDERPAID``)."""
        path = f"{TRADES}{quote(provider_ref, safe='')}/close"
        answer = await self._call("POST", path, {"mchid": self._mchid}, mutating=True)
        if answer.code == errors.ORDERPAID:
            return await self.retrieve_payment(provider_ref)
        if answer.status != 204:
            raise answer.error()
        return PaymentResult(
            outcome=PaymentOutcome.FAILED,
            provider_ref=provider_ref,
            decline_code="closed",
            attempt_id=provider_ref,
            metadata={mapping.TRADE_STATE: "CLOSED"},
        )

    async def cancel_payment(self, provider_ref: str) -> PaymentResult:
        """The interface's cancel: :meth:`close_payment`."""
        return await self.close_payment(provider_ref)

    async def refund(
        self,
        provider_ref: str,
        *,
        amount: int | None,
        idempotency_key: str,
        metadata: Mapping[str, str] | None = None,
        currency: str | None = None,
    ) -> RefundResult:
        """Refund part (``amount``) or all of a paid trade; ``out_refund_no`` is our refund
        id (``metadata["refund_id"]``, else the idempotency key), so a repeat refunds once.

        WeChat Pay wants the trade's total with every refund: the trade is queried first
        (and must have been paid). ``amount=None`` refunds the total.
        """
        out_refund_no = (metadata or {}).get("refund_id") or idempotency_key
        if not REFUND_NO.fullmatch(out_refund_no):
            raise ProviderRejected(f"{out_refund_no!r} is not a valid out_refund_no")
        if currency is not None and currency.upper() != currencies.CURRENCY:
            raise UnchargeableAmount(f"WeChat Pay refunds CNY only, not {currency}")
        trade = await self.retrieve_payment(provider_ref)
        if trade.outcome is not PaymentOutcome.SUCCEEDED or trade.amount is None:
            raise ProviderRejected(f"{provider_ref} was not paid ({trade.metadata}); no refund")
        body = {
            "out_trade_no": provider_ref,
            "out_refund_no": out_refund_no,
            "notify_url": self._notify_url,
            "amount": {
                "refund": self._fen(trade.amount if amount is None else amount, "CNY"),
                "total": trade.amount,
                "currency": currencies.CURRENCY,
            },
        }
        answer = await self._call("POST", REFUNDS, body, mutating=True)
        if answer.status != 200:
            raise answer.error()
        return mapping.refund_result(answer.body)

    async def retrieve_refund(
        self,
        provider_ref: str,
        *,
        idempotency_key: str,
        metadata: Mapping[str, str] | None = None,
        refund_ref: str | None = None,
    ) -> RefundResult | None:
        """The interface's refund lookup, by the ``out_refund_no`` :meth:`refund` sent (our
        refund id, else the idempotency key); ``None`` when WeChat Pay has no such refund,
        or has it for another trade than ``provider_ref`` (then it is not this one)."""
        out_refund_no = (metadata or {}).get("refund_id") or idempotency_key
        found = await self.refund_by_number(out_refund_no)
        return found if found is not None and found.provider_ref == provider_ref else None

    async def refund_by_number(self, out_refund_no: str) -> RefundResult | None:
        """One refund as WeChat Pay sees it now (``GET /v3/refund/domestic/refunds/
        {out_refund_no}``, signed; the answer verified); ``None`` on 404
        ``RESOURCE_NOT_EXISTS``, the refund does not exist.

        Its ``status`` (the query: https://wechatpay.im/openapi/v3/refund/domestic/refunds/
        {out_refund_no}, and the service provider's page of the same call,
        https://pay.wechatpay.cn/doc/v3/partner/4012760530, which also advises querying
        every minute, then less and less often) is mapped by
        :data:`.mapping.REFUND_STATUSES`: ``SUCCESS`` succeeded, ``PROCESSING`` pending,
        ``CLOSED`` failed, ``ABNORMAL`` failed (the money did not reach the shopper's
        account; a person re-routes it at the merchant platform, so the order is
        flagged). 5xx, ``SYSTEM_ERROR`` and timeouts raise: unknown.
        """
        answer = await self._call(
            "GET", f"{REFUNDS}/{quote(out_refund_no, safe='')}", None, mutating=False
        )
        if answer.status == 404 and answer.code == errors.RESOURCE_NOT_EXISTS:
            return None
        if answer.status != 200:
            raise answer.error()
        return mapping.refund_result(answer.body)

    async def list_successful_charges(self, since: datetime, until: datetime) -> list[Charge]:
        """Not offered: WeChat Pay lists trades only in its daily bill (the profile does not
        declare ``list_recent_charges``)."""
        raise ProviderRejected("WeChat Pay lists trades only in its daily trade bill")

    async def download_bill(self, day: date) -> list[BillFile]:
        """``day``'s whole trade bill as WeChat Pay wrote it, once its SHA-1 checks
        (:mod:`.bills`): the answer giving the address must verify, the address must be on
        the API's host, the file's hash must be the answer's."""
        try:
            answer = await self._call("GET", bills.apply_path(day), None, mutating=False)
        except errors.UnverifiedResponse as exc:
            raise BillRefused(str(exc)) from exc
        except ProviderError as exc:
            raise BillUnavailable(f"wechatpay tradebill: {exc}") from exc
        base = str(self._http.base_url)
        url, sha1 = bills.download_address(answer.status, answer.body, day=day, base_url=base)
        request = self._http.build_request("GET", url)
        request.headers["Authorization"] = authorization(
            mchid=self._mchid,
            serial_no=self._serial,
            private_key=self._key,
            method="GET",
            url=request.url.raw_path.decode(),
            body="",
        )
        content = await download(self._http, request, what="wechatpay bill download")
        return [BillFile(bills.file_name(day), bills.check_file(content, sha1))]

    def parse_webhook(self, body: bytes, headers: Mapping[str, str]) -> WebhookEvent:
        """Verify the ``Wechatpay-*`` signature and its age, then decrypt and parse."""
        try:
            self._verifier.verify(headers, body)
        except SignatureRefused as exc:
            raise InvalidWebhook(f"wechatpay notification refused: {exc}") from exc
        return self.decode_webhook(body)

    def decode_webhook(self, body: bytes) -> WebhookEvent:
        """Decrypt and parse a notification verified on arrival (its signature unchecked)."""
        try:
            notification = json.loads(body)
            plain = resources.decrypt(self._apiv3_key, notification["resource"])
            return mapping.webhook_event(notification, plain)
        except (ValueError, KeyError, TypeError, AttributeError, UnreadableAmount) as exc:
            raise InvalidWebhook(f"malformed wechatpay notification: {exc}") from exc

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()


def _json_object(content: bytes) -> dict[str, Any]:
    try:
        found = json.loads(content) if content else {}
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}

"""Alipay (Open Platform, RSA2) as a :class:`~orderguard.providers.base.PaymentProvider`.

A payment is a redirect: :meth:`AlipayProvider.create_payment` makes the signed cashier URL
and calls nothing, so it cannot lose an answer. The trade exists at Alipay only once the
shopper opens the cashier; until then ``alipay.trade.query`` answers
``ACQ.TRADE_NOT_EXIST``, which is ACTION_REQUIRED (the shopper is still to act, as in a
3-D Secure step) marked ``not_created`` (:data:`.mapping.NOT_CREATED`), never a failure
before the payment's expiry (the URL carries ``time_expire``, the request's
``expires_at``, after which the cashier refuses it). The shop's cure for a lost
notification is the active query by ``out_trade_no``; for an expired order, closing the
trade (:meth:`AlipayProvider.close_payment`).

Beyond the interface: ``retrieve_payment(..., asked=)``, ``find_payments(..., references=)``,
``close_payment``, ``refund_status``, ``download_bill`` and :func:`reference`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from urllib.parse import parse_qsl

import httpx
from cryptography.hazmat.primitives.asymmetric import rsa

from orderguard.providers.alipay import bills, currencies, errors, mapping, methods, signing
from orderguard.providers.alipay.gateway import Gateway
from orderguard.providers.alipay.mapping import Asked
from orderguard.providers.alipay.settings import is_live_gateway
from orderguard.providers.base import (
    AmountNotExact,
    AmountRule,
    Charge,
    ChargeRequest,
    InvalidWebhook,
    PaymentOutcome,
    PaymentResult,
    ProviderKeyConflict,
    ProviderRejected,
    RefundResult,
    UnchargeableAmount,
    UnreadableAmount,
    WebhookEvent,
)
from orderguard.providers.bills import BillFile

#: How long a payment stays payable when its request gives no expiry
#: (``ChargeRequest.expires_at``; orderguard's ``action_expiry_minutes`` default).
DEFAULT_PAYMENT_TTL = timedelta(minutes=30)
#: What Alipay allows in ``out_trade_no``: letters, digits and underscores, 64 at most.
_OUT_TRADE_NO = re.compile(r"[A-Za-z0-9_]{1,64}")


def reference(idempotency_key: str) -> str:
    """The ``out_trade_no`` of an attempt: its idempotency key with every character Alipay
    does not take (``-``, ``.``, ...) written ``_``; refused when longer than 64."""
    ref = re.sub(r"[^A-Za-z0-9_]", "_", idempotency_key)
    if not _OUT_TRADE_NO.fullmatch(ref):
        raise ProviderRejected(f"{idempotency_key!r} cannot be an out_trade_no (1-64 chars)")
    return ref


class AlipayProvider:
    """Alipay's redirect payments, active query, close and refunds, for one app."""

    def __init__(
        self,
        *,
        app_id: str,
        app_private_key: rsa.RSAPrivateKey,
        alipay_public_key: rsa.RSAPublicKey,
        gateway_url: str,
        seller_id: str | None = None,
        notify_url: str | None = None,
        return_url: str | None = None,
        name: str = "alipay",
        timeout_s: float = 10.0,
        connect_timeout_s: float = 3.0,
        payment_ttl: timedelta = DEFAULT_PAYMENT_TTL,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.name = name
        #: Whether this app moves real money: only at the production gateway.
        self.livemode = is_live_gateway(gateway_url)
        self.app_id = app_id
        self.seller_id = seller_id
        self._alipay_key = alipay_public_key
        self._notify_url = notify_url
        self._return_url = return_url
        self._ttl = payment_ttl
        self._clock = clock
        timeout = httpx.Timeout(timeout_s, connect=connect_timeout_s)
        self._http = httpx.AsyncClient(timeout=timeout, transport=transport)
        self.gateway = Gateway(
            url=gateway_url,
            app_id=app_id,
            private_key=app_private_key,
            alipay_public_key=alipay_public_key,
            http=self._http,
            clock=clock,
        )
        #: What each payment made by this process asked for, to check paid amounts against.
        self._asked: dict[str, Asked] = {}

    def amount_rules(self, currency: str) -> AmountRule:
        """CNY from 0.01 to 100,000,000.00 (:mod:`.currencies`); nothing else."""
        return currencies.rule(currency)

    def to_provider_units(self, amount: int, currency: str) -> int:
        """Fen are ISO minor units: unchanged (the yuan string is made when sending)."""
        return self.amount_rules(currency).to_provider(amount)

    def from_provider_units(self, amount: int, currency: str) -> int:
        """Fen back to ISO minor units: unchanged."""
        return self.amount_rules(currency).from_provider(amount)

    def _yuan(self, amount: int, currency: str) -> str:
        """``amount`` as ``total_amount``/``refund_amount``; refused unless CNY in range."""
        rule = self.amount_rules(currency)
        if not rule.supported:
            raise UnchargeableAmount(f"Alipay charges CNY only, not {currency}; nothing was sent")
        if not rule.minimum <= amount <= (rule.maximum or amount):
            raise UnchargeableAmount(
                f"Alipay takes {rule.minimum}..{rule.maximum} fen; {amount} was not sent"
            )
        try:
            return currencies.to_yuan(self.to_provider_units(amount, currency))
        except AmountNotExact as exc:
            raise UnchargeableAmount(str(exc)) from exc

    async def create_payment(self, request: ChargeRequest) -> PaymentResult:
        """The signed cashier URL for the attempt: ACTION_REQUIRED, ``redirect_url`` set, marked
        ``next_action=redirect`` and ``alipay_state=not_created``. Nothing is sent: the
        trade is created when the shopper opens the URL, payable until ``request.expires_at``
        (when unset: now + the payment TTL), written as ``time_expire``.

        The same ``out_trade_no`` asked again for another amount or currency is
        :class:`ProviderKeyConflict` (as Stripe's reused key): the first URL may have been
        paid, so nothing new is made. (This process remembers what it asked; the cashier
        itself refuses another amount for a trade that exists, ``ACQ.CONTEXT_INCONSISTENT``.)
        """
        product = methods.PRODUCTS.get(request.method)
        if product is None:
            raise ProviderRejected(f"Alipay does not take the method {request.method!r}")
        out_trade_no = reference(request.idempotency_key)
        total = self._yuan(request.amount, request.currency)
        expiry = request.expires_at or self._clock() + self._ttl
        return_url = request.return_url or self._return_url
        biz: dict[str, object] = {
            "out_trade_no": out_trade_no,
            "total_amount": total,
            "subject": _subject(request),
            "product_code": product.product_code,
            "time_expire": mapping.alipay_time(expiry),
            "passback_params": mapping.passback(request.order_id),
        }
        if request.method == methods.WAP and return_url:
            biz["quit_url"] = return_url
        asked = Asked(request.amount, request.currency.upper())
        first = self._asked.setdefault(out_trade_no, asked)
        if first != asked:
            raise ProviderKeyConflict(
                f"alipay: out_trade_no {out_trade_no} was first asked for {first.amount} "
                f"{first.currency}, not {asked.amount} {asked.currency}; nothing was made"
            )
        url = self.gateway.page_url(
            product.api_method, biz, notify_url=self._notify_url, return_url=return_url
        )
        return PaymentResult(
            outcome=PaymentOutcome.ACTION_REQUIRED,
            provider_ref=out_trade_no,
            amount=request.amount,
            currency=asked.currency,
            redirect_url=url,
            order_id=request.order_id,
            attempt_id=request.attempt_id,
            created_at=self._clock(),
            metadata={mapping.NEXT_ACTION: mapping.REDIRECT, mapping.STATE: mapping.NOT_CREATED},
        )

    async def retrieve_payment(
        self, provider_ref: str, *, asked: Asked | None = None
    ) -> PaymentResult:
        """The trade by ``out_trade_no`` (``alipay.trade.query``); a trade that does not
        exist yet is ACTION_REQUIRED marked ``not_created``. A paid trade's amount must be what was
        asked (``asked``, or what this process asked for it), else :class:`AmountMismatch`."""
        asked = asked or self._asked.get(provider_ref)
        body = await self.gateway.call(
            "alipay.trade.query", {"out_trade_no": provider_ref}, mutating=False
        )
        if body.get("code") != errors.SUCCESS:
            if body.get("sub_code") == errors.TRADE_NOT_EXIST:
                return mapping.not_created(provider_ref, asked=asked)
            raise errors.answer_error(body, method="alipay.trade.query", mutating=False)
        return mapping.payment_result({"out_trade_no": provider_ref, **body}, asked=asked)

    async def find_payments(
        self, order_id: str, *, references: Sequence[str] = ()
    ) -> list[PaymentResult]:
        """The trades of an order's attempts, by their ``out_trade_no`` (``references``):
        Alipay has no search by order or metadata, so without references nothing is found.
        Trades not created yet are left out."""
        found = [await self.retrieve_payment(ref) for ref in references]
        return [r for r in found if r.metadata.get(mapping.STATE) != mapping.NOT_CREATED]

    async def close_payment(self, provider_ref: str) -> PaymentResult:
        """Close the trade (``alipay.trade.close``), for an expired order.

        FAILED when closed, or when there is no trade (``ACQ.TRADE_NOT_EXIST``: marked
        ``not_created``; the cashier refuses the URL after its ``time_expire``, so close
        only once the payment expired). A trade Alipay will not close because it was paid
        in the meantime is returned as it stands (SUCCEEDED); one closed already (by the
        shop, the shopper or its expiry) answers closed again, inviting no other method.
        """
        body = await self.gateway.call(
            "alipay.trade.close", {"out_trade_no": provider_ref}, mutating=True
        )
        if body.get("code") == errors.SUCCESS:
            return PaymentResult(
                outcome=PaymentOutcome.FAILED,
                provider_ref=provider_ref,
                decline_code=mapping.CLOSED,
                metadata={mapping.TRADE_NO: str(body.get("trade_no") or "")},
            )
        sub_code = body.get("sub_code")
        if sub_code == errors.TRADE_NOT_EXIST:
            return PaymentResult(
                outcome=PaymentOutcome.FAILED,
                provider_ref=provider_ref,
                decline_code=mapping.CLOSED,
                metadata={mapping.STATE: mapping.NOT_CREATED},
            )
        if sub_code == errors.TRADE_STATUS_ERROR:
            standing = await self.retrieve_payment(provider_ref)
            if standing.outcome is PaymentOutcome.FAILED:  # closed already: closed again
                return replace(standing, retry_with_other_method=False)
            return standing
        raise errors.answer_error(body, method="alipay.trade.close", mutating=True)

    async def cancel_payment(self, provider_ref: str) -> PaymentResult:
        """The interface's cancel: closing the trade (:meth:`close_payment`)."""
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
        """Refund part or all of a paid trade (``alipay.trade.refund``), ``out_request_no``
        being ``idempotency_key``: the same number twice is one refund at Alipay (the repeat
        answers ``fund_change=N``, and its amount is then checked with the refund query).

        ``amount=None`` refunds the trade's ``total_amount`` (read first): after a partial
        refund, Alipay refuses it; refund the rest by amount.
        """
        if len(idempotency_key) > 64:
            raise ProviderRejected(f"out_request_no {idempotency_key!r} is over 64 characters")
        currency = (currency or currencies.CURRENCY).upper()
        if amount is None:
            trade = await self.retrieve_payment(provider_ref)
            if trade.amount is None or trade.outcome is not PaymentOutcome.SUCCEEDED:
                raise ProviderRejected(f"{provider_ref} is not a paid trade; nothing to refund")
            amount = trade.amount
        biz = {
            "out_trade_no": provider_ref,
            "refund_amount": self._yuan(amount, currency),
            "out_request_no": idempotency_key,
        }
        body = await self.gateway.call("alipay.trade.refund", biz, mutating=True)
        if body.get("code") != errors.SUCCESS:
            raise errors.answer_error(body, method="alipay.trade.refund", mutating=True)
        if body.get("fund_change") == "N":
            await self._same_refund(provider_ref, idempotency_key, amount)
        return RefundResult(
            refund_ref=idempotency_key,
            provider_ref=provider_ref,
            amount=amount,
            currency=currencies.CURRENCY,
            status="succeeded",
            metadata={**(metadata or {}), "refund_fee": str(body.get("refund_fee") or "")},
        )

    async def _same_refund(self, provider_ref: str, refund_ref: str, amount: int) -> None:
        """A repeat (``fund_change=N``) answers the refund first made with that number:
        :class:`ProviderKeyConflict` unless it was for ``amount``."""
        made = await self.refund_status(provider_ref, refund_ref)
        if made is None or made.amount != amount:
            raise ProviderKeyConflict(
                f"alipay: out_request_no {refund_ref} was first used for "
                f"{'no refund' if made is None else made.amount} fen, not {amount}"
            )

    async def retrieve_refund(
        self,
        provider_ref: str,
        *,
        idempotency_key: str,
        metadata: Mapping[str, str] | None = None,
        refund_ref: str | None = None,
    ) -> RefundResult | None:
        """The interface's refund lookup: :meth:`refund_status` by ``out_trade_no`` and the
        ``out_request_no`` :meth:`refund` sent (the idempotency key, which is also the
        refund's ``refund_ref``)."""
        return await self.refund_status(provider_ref, refund_ref or idempotency_key)

    async def refund_status(self, provider_ref: str, refund_ref: str) -> RefundResult | None:
        """One refund as Alipay holds it (``alipay.trade.fastpay.refund.query``, signed
        request, verified answer); ``None`` when Alipay has no such refund.

        Alipay documents (https://opendocs.alipay.com/apis/api_1/alipay.trade.fastpay.refund.query,
        ``refund_status``): code ``10000`` only says the *query* worked; an answer carrying
        the refund (``refund_amount``) with ``refund_status`` ``REFUND_SUCCESS`` (or absent,
        for refunds made by the synchronous ``alipay.trade.refund``) is a refund made; no
        refund in the answer means it was not received or not made: resend it with the
        same ``out_request_no``. Any other ``refund_status`` is taken as still processing,
        never as failed. ``ACQ.SYSTEM_ERROR`` and timeouts raise (unknown).
        """
        body = await self.gateway.call(
            "alipay.trade.fastpay.refund.query",
            {"out_trade_no": provider_ref, "out_request_no": refund_ref},
            mutating=False,
        )
        if body.get("code") != errors.SUCCESS:
            raise errors.answer_error(
                body, method="alipay.trade.fastpay.refund.query", mutating=False
            )
        if body.get("refund_amount") in (None, ""):
            return None
        status = str(body.get("refund_status") or "REFUND_SUCCESS")
        return RefundResult(
            refund_ref=refund_ref,
            provider_ref=provider_ref,
            amount=mapping.fen(body["refund_amount"], field="refund_amount"),
            currency=currencies.CURRENCY,
            status="succeeded" if status == "REFUND_SUCCESS" else "pending",
        )

    async def list_successful_charges(self, since: datetime, until: datetime) -> list[Charge]:
        """Alipay has no listing of trades by time (its bills are daily files): none."""
        return []

    def parse_webhook(self, body: bytes, headers: Mapping[str, str]) -> WebhookEvent:
        """Verify a notification (form fields, RSA2 over all but ``sign``/``sign_type``),
        check it is for this app and seller, then parse it; ``notify_id`` is its id."""
        params = _form(body)
        if params.get("sign_type", signing.SIGN_TYPE) != signing.SIGN_TYPE:
            raise InvalidWebhook(f"sign_type {params.get('sign_type')!r} is not RSA2")
        signature = params.get("sign") or ""
        if not signing.verify(signing.notification_content(params), signature, self._alipay_key):
            raise InvalidWebhook("the notification's signature does not verify")
        if params.get("app_id") != self.app_id:
            raise InvalidWebhook(f"the notification is for app {params.get('app_id')!r}")
        if self.seller_id and params.get("seller_id") != self.seller_id:
            raise InvalidWebhook(f"the notification is for seller {params.get('seller_id')!r}")
        return self.decode_webhook(body)

    def decode_webhook(self, body: bytes) -> WebhookEvent:
        """Parse a notification verified on arrival, without checks."""
        params = _form(body)
        try:
            out_trade_no = str(params["out_trade_no"])
            return mapping.webhook_event(params, asked=self._asked.get(out_trade_no))
        except (KeyError, UnreadableAmount, errors.UnknownTradeStatus) as exc:
            raise InvalidWebhook(f"malformed notification: {exc!r}") from exc

    async def download_bill(self, day: date) -> list[BillFile]:
        """``day``'s trade bill, its detail file as Alipay wrote it (:mod:`.bills`)."""
        return await bills.download(self.gateway, self._http, day, live=self.livemode)

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()


def _subject(request: ChargeRequest) -> str:
    """The title the cashier shows: the snapshot's ``subject``, else the order id."""
    text = request.metadata.get("subject") or f"Order {request.order_id}"
    return text[:256]


def _form(body: bytes) -> dict[str, str]:
    try:
        return dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=True))
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidWebhook(f"the notification is not a UTF-8 form: {exc}") from exc

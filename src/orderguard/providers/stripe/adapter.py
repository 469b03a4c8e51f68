"""Stripe through its official SDK: PaymentIntents confirmed at creation, refunds, search.

Every call goes out once (``max_network_retries=0``): our own retry layer
(:mod:`.resilience`) decides what may be repeated, from the error type.

Amounts cross in Stripe's units (:mod:`.stripe_currencies`): converted from ISO 4217 minor
units on the way out and back on the way in, exactly or not at all.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Mapping
from datetime import datetime
from typing import Any, TypeVar

import stripe

from orderguard.providers.base import (
    AmountNotExact,
    AmountRule,
    Charge,
    ChargeRequest,
    InvalidWebhook,
    PaymentResult,
    ProviderRejected,
    RefundResult,
    UnchargeableAmount,
    UnreadableAmount,
    WebhookEvent,
)
from orderguard.providers.stripe import currencies as stripe_currencies
from orderguard.providers.stripe import mapping, transport, wire
from orderguard.providers.stripe.errors import provider_error
from orderguard.providers.stripe.settings import DEFAULT_BASE_URL, is_live_key
from orderguard.providers.stripe.signing import DEFAULT_TOLERANCE_S, SIGNATURE_HEADER, header_value

T = TypeVar("T")


def search_query(order_id: str) -> str:
    """Stripe Search Query Language for PaymentIntents whose metadata names ``order_id``."""
    escaped = order_id.replace("\\", "\\\\").replace("'", "\\'")
    return f"metadata['order_id']:'{escaped}'"


class StripeProvider:
    """:class:`~orderguard.providers.base.PaymentProvider` for Stripe (or the sandbox)."""

    def __init__(
        self,
        *,
        api_key: str,
        webhook_secret: str | None,
        base_url: str = DEFAULT_BASE_URL,
        name: str = "stripe",
        timeout_s: float = 10.0,
        connect_timeout_s: float = 3.0,
        webhook_tolerance_s: int = DEFAULT_TOLERANCE_S,
        page_size: int = 100,
    ) -> None:
        self.name = name
        #: Whether this account moves real money (a live key); its orders are not test mode.
        self.livemode = is_live_key(api_key)
        self._webhook_secret = webhook_secret
        self._tolerance_s = webhook_tolerance_s
        self._page_size = page_size
        self._http = transport.AioHttpClient(
            timeout_s=timeout_s, connect_timeout_s=connect_timeout_s
        )
        self._client = stripe.StripeClient(
            api_key,
            base_addresses={"api": base_url},
            http_client=self._http,
            max_network_retries=0,
        )
        self._wire = wire.ChargeWire(self._client, self._http, api_key=api_key)

    def amount_rules(self, currency: str) -> AmountRule:
        """Stripe's rule for ``currency`` (:mod:`.stripe_currencies`)."""
        return stripe_currencies.rule(currency)

    def to_provider_units(self, amount: int, currency: str) -> int:
        """ISO minor units -> Stripe's units (1000.00 MGA -> 1000, 5 ISK -> 500)."""
        return stripe_currencies.to_stripe(amount, currency)

    def from_provider_units(self, amount: int, currency: str) -> int:
        """Stripe's units -> ISO minor units."""
        return stripe_currencies.from_stripe(amount, currency)

    def _stripe_amount(self, amount: int, currency: str) -> int:
        """``amount`` in Stripe's units for a charge or refund; :class:`UnchargeableAmount`
        when Stripe cannot take it (not exact in its units, or not a whole multiple of its
        step, e.g. a KWD amount not ending in 0); such an amount is never sent."""
        rule = self.amount_rules(currency)
        try:
            sent = self.to_provider_units(amount, currency)
        except AmountNotExact as exc:
            raise UnchargeableAmount(
                f"{amount} minor units of {currency} cannot be written in Stripe's units "
                f"(Stripe counts {currency} with {rule.provider_exponent} decimals); "
                "nothing was sent"
            ) from exc
        if amount % rule.step:
            raise UnchargeableAmount(
                f"Stripe takes {currency} amounts only in multiples of {rule.step} minor units; "
                f"{amount} was not sent"
            )
        return sent

    async def _call(self, call: Awaitable[T], *, mutating: bool) -> T:
        try:
            return await call
        except stripe.StripeError as exc:
            raise provider_error(exc, mutating=mutating) from exc

    async def create_payment(self, request: ChargeRequest) -> PaymentResult:
        """Create and confirm a PaymentIntent; a card decline is a FAILED result."""
        meta = mapping.compact_metadata(
            request.metadata, order_id=request.order_id, attempt_id=request.attempt_id
        )
        amount = self._stripe_amount(request.amount, request.currency)
        # The SDK's request, built once (:mod:`.wire`): the same headers, form body and
        # errors (CardError, RateLimitError, ... from the status and body: what
        # provider_error classifies), without the SDK's per-request rebuilding and logging
        # on the hot path of every paid order.
        create = self._wire.create(
            {
                "amount": amount,
                "currency": request.currency.lower(),
                "payment_method": request.method,
                "confirm": True,
                "return_url": request.return_url,
            },
            meta,
            idempotency_key=request.idempotency_key,
        )
        try:
            answer = await create
        except stripe.CardError as exc:
            return mapping.declined_result(_error_json(exc))
        except stripe.StripeError as exc:
            raise provider_error(exc, mutating=True) from exc
        return mapping.payment_result(answer)

    async def retrieve_payment(self, provider_ref: str) -> PaymentResult:
        """The PaymentIntent as Stripe sees it now."""
        intent = await self._call(
            self._client.v1.payment_intents.retrieve_async(provider_ref), mutating=False
        )
        return mapping.payment_result(intent.to_dict())

    async def find_payments(self, order_id: str) -> list[PaymentResult]:
        """PaymentIntents found by Search (which may lag writes by seconds at real Stripe)."""
        params: dict[str, Any] = {"query": search_query(order_id), "limit": self._page_size}
        found: list[PaymentResult] = []
        while True:
            page = await self._call(
                self._client.v1.payment_intents.search_async(params),  # type: ignore[arg-type]
                mutating=False,
            )
            found += [mapping.payment_result(obj.to_dict()) for obj in page.data]
            if not page.has_more or not page.next_page:
                return found
            params["page"] = page.next_page

    async def cancel_payment(self, provider_ref: str) -> PaymentResult:
        """Cancel a PaymentIntent; one that can no longer be cancelled is returned as it stands.

        Stripe refuses to cancel a succeeded (or already canceled) intent with a 400
        ``payment_intent_unexpected_state`` carrying the intent: that is an answer, mapped to
        the intent's outcome (retrieved when the error does not embed it). The idempotency
        key is derived from the intent, so a repeat after a lost answer replays the first.
        """
        cancel = self._client.v1.payment_intents.cancel_async(
            provider_ref, options={"idempotency_key": f"cancel-{provider_ref}"}
        )
        try:
            intent = await cancel
        except stripe.InvalidRequestError as exc:
            if exc.code != mapping.UNEXPECTED_STATE:
                raise provider_error(exc, mutating=True) from exc
            embedded = mapping.error_intent(_error_json(exc))
            if embedded is None:
                return await self.retrieve_payment(provider_ref)
            return mapping.payment_result(embedded)
        except stripe.StripeError as exc:
            raise provider_error(exc, mutating=True) from exc
        return mapping.payment_result(intent.to_dict())

    async def refund(
        self,
        provider_ref: str,
        *,
        amount: int | None,
        idempotency_key: str,
        metadata: Mapping[str, str] | None = None,
        currency: str | None = None,
    ) -> RefundResult:
        """Refund all or part of a PaymentIntent's charge.

        A partial refund's ``amount`` (ISO minor units) is sent in Stripe's units, which
        depend on the payment's currency: given as ``currency``, or else read from the
        PaymentIntent first. ``metadata`` goes on the Refund and comes back in its
        ``refund.*`` events.
        """
        params: dict[str, Any] = {"payment_intent": provider_ref}
        if amount is not None:
            if currency is None:
                currency = (await self.retrieve_payment(provider_ref)).currency
            if not currency:  # never guess the units: MGA's would be off a hundredfold
                raise UnchargeableAmount(
                    f"the currency of {provider_ref} is not known, so a partial refund "
                    "cannot be written in Stripe's units; nothing was sent"
                )
            params["amount"] = self._stripe_amount(amount, currency)
        if metadata:
            params["metadata"] = dict(metadata)
        created = await self._call(
            self._client.v1.refunds.create_async(
                params,  # type: ignore[arg-type]
                options={"idempotency_key": idempotency_key},
            ),
            mutating=True,
        )
        return mapping.refund_result(created.to_dict(), provider_ref=provider_ref)

    async def retrieve_refund(
        self,
        provider_ref: str,
        *,
        idempotency_key: str,
        metadata: Mapping[str, str] | None = None,
        refund_ref: str | None = None,
    ) -> RefundResult | None:
        """The Refund as Stripe sees it now: ``GET /v1/refunds/{refund}`` by its id, else
        (its answer was lost) the PaymentIntent's refunds, ``GET /v1/refunds?payment_intent=``,
        the one whose metadata carries our ``refund_id``. Stripe keeps no lookup by
        idempotency key, so without either this raises :class:`ProviderRejected`.

        ``status`` is Stripe's own (``pending``, ``requires_action``, ``succeeded``,
        ``failed``, ``canceled``: the ``refund`` schema of the OpenAPI spec); a 404 is
        ``None``, the refund does not exist.
        """
        if refund_ref is not None:
            return await self._refund_by_id(refund_ref, provider_ref)
        refund_id = (metadata or {}).get("refund_id")
        if not refund_id:
            raise ProviderRejected(
                f"stripe: a refund of {provider_ref} without its id or a refund_id in its "
                "metadata cannot be looked up"
            )
        params: dict[str, Any] = {"payment_intent": provider_ref, "limit": self._page_size}
        while True:
            page = await self._call(
                self._client.v1.refunds.list_async(params),  # type: ignore[arg-type]
                mutating=False,
            )
            objs = [obj.to_dict() for obj in page.data]
            for obj in objs:
                if (obj.get("metadata") or {}).get("refund_id") == refund_id:
                    return mapping.refund_result(obj, provider_ref=provider_ref)
            if not page.has_more or not objs:
                return None
            params["starting_after"] = objs[-1]["id"]

    async def _refund_by_id(self, refund_ref: str, provider_ref: str) -> RefundResult | None:
        try:
            found = await self._client.v1.refunds.retrieve_async(refund_ref)
        except stripe.InvalidRequestError as exc:
            if exc.http_status == 404:
                return None
            raise provider_error(exc, mutating=False) from exc
        except stripe.StripeError as exc:
            raise provider_error(exc, mutating=False) from exc
        return mapping.refund_result(found.to_dict(), provider_ref=provider_ref)

    async def list_successful_charges(self, since: datetime, until: datetime) -> list[Charge]:
        """Succeeded charges created in ``[since, until)``, paging with ``starting_after``."""
        params: dict[str, Any] = {
            "created": {"gte": int(since.timestamp()), "lt": int(until.timestamp()) + 1},
            "limit": self._page_size,
        }
        charges: list[Charge] = []
        while True:
            page = await self._call(
                self._client.v1.charges.list_async(params),  # type: ignore[arg-type]
                mutating=False,
            )
            objs = [obj.to_dict() for obj in page.data]
            charges += [mapping.charge(o) for o in objs if o.get("status") == "succeeded"]
            if not page.has_more or not objs:
                return [c for c in charges if since <= c.created_at < until]
            params["starting_after"] = objs[-1]["id"]

    def parse_webhook(self, body: bytes, headers: Mapping[str, str]) -> WebhookEvent:
        """Verify ``Stripe-Signature`` with the SDK, then parse the event.

        Without a webhook secret every event is refused: nothing can prove who sent it.
        """
        if not self._webhook_secret:
            raise InvalidWebhook(f"no webhook secret is configured for {self.name}")
        header = header_value(headers, SIGNATURE_HEADER)
        try:
            stripe.WebhookSignature.verify_header(
                body, header, self._webhook_secret, self._tolerance_s
            )
            return mapping.webhook_event(json.loads(body))
        except (stripe.SignatureVerificationError, ValueError, KeyError) as exc:
            raise InvalidWebhook(f"webhook does not verify: {exc}") from exc
        except UnreadableAmount as exc:
            raise InvalidWebhook(f"webhook amount has no exact ISO 4217 value: {exc}") from exc

    def decode_webhook(self, body: bytes) -> WebhookEvent:
        """Parse an event verified on arrival, without checking its signature or age."""
        try:
            return mapping.webhook_event(json.loads(body))
        except (ValueError, KeyError, TypeError, AttributeError, UnreadableAmount) as exc:
            raise InvalidWebhook(f"malformed webhook body: {exc}") from exc

    async def aclose(self) -> None:
        """Close the connections: the SDK's (aiohttp) and the charge's own."""
        await self._http.close_async()
        if self._wire.direct is not None:
            await self._wire.direct.aclose()


def _error_json(exc: stripe.StripeError) -> dict[str, Any]:
    body = exc.json_body or {}
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, dict) else {}

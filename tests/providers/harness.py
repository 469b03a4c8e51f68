"""One harness per provider implementation, so the contract suite runs unchanged on each.

A harness gives the provider under test plus what only a test may do, in that provider's
own terms: have the shopper pay, decline or act on a payment, count charges and refunds in
the provider's own ledger, and sign a webhook the way that provider would. Where the
protocols differ in what they answer (a wallet's payment awaits the shopper; a call its
profile does not declare), the harness names the documented answer once (:mod:`.expect`).
The card harnesses are here; the wallets' are in :mod:`.alipay_harness` and
:mod:`.wechatpay_harness`.
"""

from __future__ import annotations

import secrets
import time
from typing import Any, ClassVar

import httpx
import stripe

from orderguard.providers.base import (
    ChargeRequest,
    InvalidWebhook,
    PaymentOutcome,
    PaymentProvider,
    PaymentResult,
    ProviderOutcomeUnknown,
    ProviderRejected,
    ProviderServerError,
    RefundResult,
)
from orderguard.providers.memory import InMemoryProvider
from orderguard.providers.profile import CARD_PROFILE, Capabilities
from orderguard.providers.stripe.adapter import StripeProvider
from orderguard.providers.stripe.plugin import PROFILE as STRIPE_PROFILE
from orderguard.providers.stripe.sandbox import objects
from orderguard.providers.stripe.sandbox.webhooks import signed_delivery
from tests.providers.expect import Expectation, Refusal

#: The webhook secret every harness signs with.
SECRET = "whsec_contract_secret"
#: An API key the sandbox accepts.
API_KEY = "sk_test_contract"

Signed = tuple[bytes, dict[str, str]]


class FakeClock:
    """Unix seconds a test can set; starts at the real time."""

    def __init__(self) -> None:
        self.now = float(int(time.time()))

    def __call__(self) -> float:
        return self.now


def charge_request(
    *, order_id: str | None = None, method: str = "pm_card_visa", amount: int = 2599, **fields: Any
) -> ChargeRequest:
    """A request for a fresh attempt (its own idempotency key) unless told otherwise."""
    attempt_id = fields.pop("attempt_id", f"att_{secrets.token_hex(6)}")
    order = order_id or f"ord_{secrets.token_hex(6)}"
    return ChargeRequest(
        attempt_id=attempt_id,
        order_id=order,
        amount=amount,
        currency=fields.pop("currency", "EUR"),
        method=method,
        return_url=fields.pop("return_url", "https://shop.test/orders/return"),
        idempotency_key=fields.pop("idempotency_key", f"pay-{attempt_id}"),
        metadata=fields.pop("metadata", {"items": "2", "country": "DE"}),
    )


class Harness:
    """What the contract asks of every provider, and the protocol facts it depends on."""

    provider: PaymentProvider
    clock: FakeClock
    #: What the provider's profile declares it can be asked.
    capabilities: Capabilities
    #: The currency its requests are made in.
    currency: str
    #: What ``create_payment`` answers for :meth:`request` before anyone else acts:
    #: SUCCEEDED for a good card; ACTION_REQUIRED for a wallet, until the shopper pays.
    new_outcome: PaymentOutcome
    #: The ``decline_code`` of :meth:`declined`'s payment, and of a cancelled payment.
    decline_code: str
    cancel_code: str
    #: The webhook ``type`` that says a payment succeeded.
    succeeded_event: str
    #: Whether a cancel's answer restates the payment (its order and amount): a card's
    #: does; a wallet's close answers the outcome alone (the query tells the rest).
    cancel_restates_payment: bool = False
    #: Metadata keys of the request that the payment carries back (the order snapshot).
    kept_metadata: tuple[str, ...] = ()
    #: Metadata keys a refund's answer adds to what it was made with.
    refund_metadata_added: frozenset[str] = frozenset()
    #: A reference this provider never issued, and what retrieving and cancelling it answer.
    unknown_ref: str
    unknown_retrieval: Expectation = Refusal(ProviderRejected)
    unknown_cancel: Expectation = Refusal(ProviderRejected)
    #: What a call the profile does not declare (search by order, listing) answers.
    unoffered: Expectation = Refusal(ProviderRejected)
    #: What parsing a verified webhook signed long ago (400 s) answers.
    stale_webhook: Expectation = Refusal(InvalidWebhook)

    def request(self, **fields: Any) -> ChargeRequest:
        """A payment that is paid once :meth:`pay` says so (a good card: at once)."""
        raise NotImplementedError

    def challenge_request(self, **fields: Any) -> ChargeRequest:
        """A payment that waits for the shopper (3-D Secure; any wallet payment)."""
        raise NotImplementedError

    async def pay(self, created: PaymentResult) -> PaymentResult:
        """The shopper pays ``created`` (nothing to do for a good card); the payment now."""
        raise NotImplementedError

    async def paid(self, **fields: Any) -> tuple[ChargeRequest, PaymentResult]:
        """A payment made and paid: its request and the payment as :meth:`pay` answers."""
        request = self.request(**fields)
        return request, await self.pay(await self.provider.create_payment(request))

    async def declined(self, **fields: Any) -> PaymentResult:
        """A payment the shopper's bank declined or the shopper gave up: the payment now."""
        raise NotImplementedError

    async def follow(self, created: PaymentResult) -> str:
        """The shopper follows ``created.redirect_url``: the reference it leads to."""
        raise NotImplementedError

    async def complete_action(self, created: PaymentResult, *, approved: bool) -> None:
        """The shopper completes (or refuses) the step ``created`` waits for; a payment
        closed meanwhile is refused by the provider's page, as it says."""
        raise NotImplementedError

    async def successful_charges(self, order_id: str) -> int:
        """Charges of ``order_id`` that succeeded, in the provider's own ledger."""
        raise NotImplementedError

    async def refunded(self, provider_ref: str) -> int:
        """What the provider's own ledger has refunded of one payment."""
        raise NotImplementedError

    async def refund_rest(self, provider_ref: str, *, left: int, key: str) -> RefundResult:
        """Refund what is left of a partly refunded payment (``amount=None`` where that
        means the rest)."""
        return await self.provider.refund(provider_ref, amount=None, idempotency_key=key)

    async def signed_webhook(self, provider_ref: str, *, timestamp: int) -> Signed:
        """The provider's webhook that ``provider_ref`` (paid) succeeded, signed at
        ``timestamp``."""
        raise NotImplementedError

    #: Whether a refund can stay ``pending`` at the provider (Alipay's synchronous refund
    #: is made or refused in its answer: its refunds look pending only when that is lost).
    refunds_wait: bool = True

    async def hold_refunds(self) -> None:
        """New refunds start ``pending`` at the provider until :meth:`end_refund`."""
        raise NotImplementedError

    async def end_refund(self, made: RefundResult, *, succeeded: bool) -> None:
        """The provider ends a pending refund; its notification is not delivered."""
        raise NotImplementedError

    async def break_lookups(self) -> None:
        """The next refund lookup answers the provider's server error (5xx, SYSTEM_ERROR)."""
        raise NotImplementedError

    async def slow_lookups(self) -> PaymentProvider:
        """An adapter of the same account whose next refund lookup times out (the
        provider answers after the adapter's read timeout)."""
        raise NotImplementedError

    async def mend(self) -> None:
        """No faults, and refunds end at once again."""
        raise NotImplementedError

    def tamper(self, body: bytes) -> bytes:
        """``body`` with its amount changed."""
        raise NotImplementedError

    def unsigned(self, body: bytes, headers: dict[str, str]) -> Signed:
        """The webhook without its signature."""
        raise NotImplementedError

    def badly_signed(self, body: bytes, headers: dict[str, str]) -> Signed:
        """The webhook with a signature that is not the provider's."""
        raise NotImplementedError

    async def aclose(self) -> None:
        await self.provider.aclose()


class CardHarness(Harness):
    """What Stripe's sandbox and the in-memory fake share: cards and 3-D Secure."""

    currency = "EUR"
    new_outcome = PaymentOutcome.SUCCEEDED
    decline_code = "generic_decline"
    cancel_code = "canceled"
    succeeded_event = "payment_intent.succeeded"
    kept_metadata = ("items", "country")
    cancel_restates_payment = True
    unknown_ref = "pi_does_not_exist"

    def request(self, **fields: Any) -> ChargeRequest:
        return charge_request(**fields)

    def challenge_request(self, **fields: Any) -> ChargeRequest:
        return charge_request(method="pm_card_authenticationRequired", **fields)

    async def pay(self, created: PaymentResult) -> PaymentResult:
        return created

    async def declined(self, **fields: Any) -> PaymentResult:
        request = charge_request(method="pm_card_chargeDeclined", **fields)
        return await self.provider.create_payment(request)

    async def follow(self, created: PaymentResult) -> str:
        ref, url = created.provider_ref, created.redirect_url
        assert url and ref and ref in url, (ref, url)
        return ref

    def tamper(self, body: bytes) -> bytes:
        return body.replace(b"100", b"999", 1)

    def unsigned(self, body: bytes, headers: dict[str, str]) -> Signed:
        return body, {}

    def badly_signed(self, body: bytes, headers: dict[str, str]) -> Signed:
        return body, {"Stripe-Signature": "t=1,v1=00"}


class HttpFaults:
    """The ``/_sandbox/faults`` switch every HTTP sandbox shares (the Stripe sandbox's
    shape, taken by the wallets' too)."""

    http: httpx.AsyncClient

    async def faults(self, **settings: Any) -> None:
        """Switch to ``settings`` over the profile ``none`` (nothing: no faults)."""
        response = await self.http.post("/_sandbox/faults", json=settings)
        assert response.status_code == 200, response.text

    async def break_lookups(self) -> None:
        await self.faults(**self.lookup_error)

    async def _late(self) -> None:
        await self.faults(latency=1, latency_ms=[LATE_MS, LATE_MS])

    #: The fault setting that makes a query answer a server error.
    lookup_error: ClassVar[dict[str, Any]] = {"error_before": 1}


#: How late a "slow" sandbox answers, and the read timeout of the impatient adapter.
LATE_MS = 1500
IMPATIENT_S = 0.3


class SandboxHarness(HttpFaults, CardHarness):
    """The sandbox over real HTTP, reached through :class:`StripeProvider`."""

    capabilities = STRIPE_PROFILE.capabilities

    def __init__(self, base_url: str, clock: FakeClock) -> None:
        self.base_url = base_url
        self.clock = clock
        self.provider = StripeProvider(
            api_key=API_KEY, webhook_secret=SECRET, base_url=base_url, timeout_s=5, page_size=2
        )
        self.http = httpx.AsyncClient(base_url=base_url)

    async def complete_action(self, created: PaymentResult, *, approved: bool) -> None:
        verb = "approve" if approved else "refuse"
        response = await self.http.post(f"/3ds/{created.provider_ref}/{verb}")
        if response.status_code == 409:  # the payment was cancelled: the page says so
            assert "cancelled" in response.text, response.text
            return
        assert response.status_code == 303, response.text

    async def ledger(self) -> dict[str, list[dict[str, Any]]]:
        response = await self.http.get("/ledger")
        response.raise_for_status()
        book: dict[str, list[dict[str, Any]]] = response.json()
        return book

    async def successful_charges(self, order_id: str) -> int:
        charges = (await self.ledger())["charges"]
        return sum(
            1
            for c in charges
            if c["status"] == "succeeded" and c["metadata"].get("order_id") == order_id
        )

    async def refunded(self, provider_ref: str) -> int:
        charges = (await self.ledger())["charges"]
        return sum(
            int(c["amount_refunded"]) for c in charges if c["payment_intent"] == provider_ref
        )

    async def signed_webhook(self, provider_ref: str, *, timestamp: int) -> Signed:
        auth = {"Authorization": f"Bearer {API_KEY}"}
        intent = (await self.http.get(f"/v1/payment_intents/{provider_ref}", headers=auth)).json()
        evt = objects.event("payment_intent.succeeded", intent, created=timestamp)
        return signed_delivery(evt, SECRET, timestamp=timestamp)

    async def hold_refunds(self) -> None:
        await self.faults(refund_pending=1)

    async def end_refund(self, made: RefundResult, *, succeeded: bool) -> None:
        body = {"status": "succeeded"} if succeeded else FAILED_REFUND
        response = await self.http.post(f"/_sandbox/refunds/{made.refund_ref}", json=body)
        assert response.status_code == 200, response.text

    async def slow_lookups(self) -> PaymentProvider:
        await self._late()
        return StripeProvider(
            api_key=API_KEY, webhook_secret=SECRET, base_url=self.base_url, timeout_s=IMPATIENT_S
        )

    async def mend(self) -> None:
        await self.faults()

    async def aclose(self) -> None:
        await self.provider.aclose()
        await self.http.aclose()


#: How the Stripe sandbox fails a pending refund.
FAILED_REFUND = {"status": "failed", "failure_reason": "expired_or_canceled_card"}


class MemoryHarness(CardHarness):
    """The in-memory fake."""

    capabilities = CARD_PROFILE.capabilities

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.fake = InMemoryProvider(webhook_secret=SECRET, clock=clock)
        self.provider = self.fake

    async def complete_action(self, created: PaymentResult, *, approved: bool) -> None:
        assert created.provider_ref is not None
        self.fake.complete_action(created.provider_ref, approved=approved)

    async def successful_charges(self, order_id: str) -> int:
        payments = self.fake.payments.values()
        return sum(1 for p in payments if p.charged_at and p.request.order_id == order_id)

    async def refunded(self, provider_ref: str) -> int:
        return self.fake.payments[provider_ref].refunded

    async def signed_webhook(self, provider_ref: str, *, timestamp: int) -> Signed:
        payment = self.fake.payments[provider_ref].result
        return self.fake.signed_webhook(
            "payment_intent.succeeded", timestamp=timestamp, payment=payment
        )

    async def hold_refunds(self) -> None:
        self.fake.hold_next_refund()

    async def end_refund(self, made: RefundResult, *, succeeded: bool) -> None:
        self.fake.settle_refund(made.refund_ref, "succeeded" if succeeded else "failed")

    async def break_lookups(self) -> None:
        self.fake.fail_next(ProviderServerError("memory: 500 on the refund lookup"))

    async def slow_lookups(self) -> PaymentProvider:
        self.fake.fail_next(ProviderOutcomeUnknown("memory: the refund lookup timed out"))
        return self.fake

    async def mend(self) -> None:
        self.fake.clear_faults()


class SyncHttpxClient(stripe.HTTPXClient):
    """The SDK's httpx client for tests that drive the sandbox with Stripe's own synchronous
    calls, sending form bodies as ``content=`` (httpx 0.28 deprecates the SDK's
    ``data=<str>``; the warning would fail strict runs)."""

    def __init__(self) -> None:
        super().__init__(allow_sync_methods=True)

    def _get_request_args_kwargs(
        self, method: str, url: str, headers: Any, post_data: Any
    ) -> list[Any]:
        args, kwargs = super()._get_request_args_kwargs(method, url, headers, post_data)
        if isinstance(kwargs.get("data"), str | bytes):
            kwargs["content"] = kwargs.pop("data")
        return [args, kwargs]

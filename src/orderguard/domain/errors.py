"""Domain errors. Each error's docstring is its message; the attributes carry the details."""

from __future__ import annotations


class DomainError(Exception):
    """A rule of the domain was broken."""

    def __init__(self, detail: str | None = None) -> None:
        self.detail = detail or (self.__doc__ or "").strip()
        super().__init__(self.detail)


class UnknownCurrency(DomainError):
    """The currency is not a payable ISO 4217 code."""

    def __init__(self, currency: str) -> None:
        self.currency = currency
        super().__init__(f"{currency!r} is not a payable ISO 4217 currency code")


class InvalidOrder(DomainError):
    """The order breaks a rule of the domain."""

    def __init__(self, errors: list[tuple[tuple[str | int, ...], str]]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{'.'.join(map(str, loc))}: {msg}" for loc, msg in errors))


class IllegalTransition(DomainError):
    """This state change is not allowed by the state machine."""

    def __init__(self, kind: str, source: str, target: str) -> None:
        self.kind, self.source, self.target = kind, source, target
        super().__init__(f"{kind} cannot move from {source!r} to {target!r}")


class OrderNotFound(DomainError):
    """No order has this id."""

    def __init__(self, order_id: str) -> None:
        self.order_id = order_id
        super().__init__(f"no order with id {order_id!r}")


class DuplicateMerchantReference(DomainError):
    """Another order already carries this merchant reference."""

    def __init__(self, merchant_reference: str, existing_order_id: str) -> None:
        self.merchant_reference = merchant_reference
        self.existing_order_id = existing_order_id
        super().__init__(
            f"merchant_reference {merchant_reference!r} already belongs to order "
            f"{existing_order_id}"
        )


class IdempotencyKeyReused(DomainError):
    """This Idempotency-Key was already used with a different request body."""


class IdempotencyKeyInFlight(DomainError):
    """A request with this Idempotency-Key is still being processed; retry shortly."""

    def __init__(self, retry_after: int) -> None:
        self.retry_after = retry_after
        super().__init__()


class PaymentNotAllowed(DomainError):
    """The order cannot be paid again in its current state."""

    def __init__(self, order_id: str, state: str) -> None:
        self.order_id, self.state = order_id, state
        super().__init__(
            f"order {order_id} is {state}: a new payment is possible only after a failed one "
            "or while the order waits for its first"
        )


class UnknownWebhookProvider(DomainError):
    """No configured payment provider has this name."""

    def __init__(self, provider: str) -> None:
        self.provider = provider
        super().__init__(f"no payment provider named {provider!r} is configured")


class InvalidWebhookSignature(DomainError):
    """The webhook's signature or timestamp does not verify; nothing was stored or applied."""


class RefundNotAllowed(DomainError):
    """The order cannot be refunded."""

    def __init__(self, order_id: str, reason: str) -> None:
        self.order_id, self.reason = order_id, reason
        super().__init__(f"order {order_id} cannot be refunded: {reason}")


class RefundExceedsRefundable(RefundNotAllowed):
    """The refund asks for more than is left to refund."""

    def __init__(self, order_id: str, *, amount: int, refundable: int, currency: str) -> None:
        self.amount, self.amount_refundable, self.currency = amount, refundable, currency
        super().__init__(
            order_id, f"{amount} {currency} asked, only {refundable} {currency} left to refund"
        )


class CancelNotAllowed(DomainError):
    """The order cannot be cancelled."""

    def __init__(self, order_id: str, reason: str) -> None:
        self.order_id, self.reason = order_id, reason
        super().__init__(f"order {order_id} cannot be cancelled: {reason}")


class ProviderUnreachable(DomainError):
    """The payment provider could not be asked now; nothing was changed, try again."""

    def __init__(self, provider: str, reason: str) -> None:
        self.provider, self.reason = provider, reason
        super().__init__(
            f"payment provider {provider} could not be asked ({reason}); nothing was changed "
            "here: try again (repeating is safe)"
        )


class RefundUnanswered(ProviderUnreachable):
    """A refund was asked and stored ``pending``, but the provider did not answer: it may
    have been made. Asking for a new refund could refund twice."""

    def __init__(self, provider: str, reason: str, *, refund_id: str, amount: str) -> None:
        self.provider, self.reason, self.refund_id = provider, reason, refund_id
        DomainError.__init__(
            self,
            f"payment provider {provider} did not answer refund {refund_id} of {amount} "
            f"({reason}). It is stored pending and is sent again automatically with the same "
            "key: do not ask for a new refund; repeat this request only with the same "
            "Idempotency-Key.",
        )

"""A Python client for orderguard's API, for shop back-ends: sync and async, typed, with
Idempotency-Keys and safe retries built in (see docs/client.md).

It imports nothing of the server: a back-end may install orderguard only for this.
"""

from orderguard.client.aio import AsyncOrderguardClient
from orderguard.client.calls import AfterAction, Placed, new_idempotency_key
from orderguard.client.errors import (
    AmountNotChargeableError,
    ApiError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    IdempotencyConflictError,
    IdempotencyKeyReusedError,
    InvalidRequestError,
    NoAnswerError,
    NotFoundError,
    OrderguardError,
    PaymentMethodNotAcceptedError,
    PermissionDeniedError,
    RateLimitedError,
    RequestInFlightError,
    ServerError,
    UnexpectedAnswerError,
    WebhookVerificationError,
)
from orderguard.client.models import (
    Address,
    Customer,
    FieldError,
    Item,
    NewOrder,
    Order,
    OrderDetail,
    OrderPage,
    OrderReceipt,
    OrderSummary,
    PaymentAttempt,
    QrCodeAction,
    RedirectAction,
    Refund,
    RefundResult,
    RefundSummary,
    WebhookEvent,
)
from orderguard.client.retry import NO_RETRIES, RetryPolicy
from orderguard.client.settlement import Settlement, SettlementOutcome
from orderguard.client.sync import OrderguardClient
from orderguard.client.webhooks import verify_webhook

__all__ = [
    "NO_RETRIES",
    "Address",
    "AfterAction",
    "AmountNotChargeableError",
    "ApiError",
    "AsyncOrderguardClient",
    "AuthenticationError",
    "BadRequestError",
    "ConflictError",
    "Customer",
    "FieldError",
    "IdempotencyConflictError",
    "IdempotencyKeyReusedError",
    "InvalidRequestError",
    "Item",
    "NewOrder",
    "NoAnswerError",
    "NotFoundError",
    "Order",
    "OrderDetail",
    "OrderPage",
    "OrderReceipt",
    "OrderSummary",
    "OrderguardClient",
    "OrderguardError",
    "PaymentAttempt",
    "PaymentMethodNotAcceptedError",
    "PermissionDeniedError",
    "Placed",
    "QrCodeAction",
    "RateLimitedError",
    "RedirectAction",
    "Refund",
    "RefundResult",
    "RefundSummary",
    "RequestInFlightError",
    "RetryPolicy",
    "ServerError",
    "Settlement",
    "SettlementOutcome",
    "UnexpectedAnswerError",
    "WebhookEvent",
    "WebhookVerificationError",
    "new_idempotency_key",
    "verify_webhook",
]

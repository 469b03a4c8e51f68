"""Typed errors: every problem+json answer (RFC 9457) becomes an :class:`ApiError`
subclass chosen by its ``type`` (then by its status), carrying the document's fields; a
request that got no answer is a :class:`NoAnswerError` holding the Idempotency-Key to
try again with."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from orderguard.client.models import FieldError

#: Members of a problem document that have their own attribute.
_MEMBERS = frozenset({"type", "title", "status", "detail", "errors", "order_id"})


class OrderguardError(Exception):
    """Anything the client raises."""


class NoAnswerError(OrderguardError):
    """No answer came back before the deadline (connection refused or reset, timeout).

    The request may have reached the server: for a request with an Idempotency-Key, send it
    again later with the same key (:attr:`idempotency_key`) to learn its outcome, never
    with a new one."""

    def __init__(self, message: str, *, idempotency_key: str | None, attempts: int) -> None:
        super().__init__(message)
        self.idempotency_key = idempotency_key
        self.attempts = attempts


class ApiError(OrderguardError):
    """The server answered with a problem document."""

    def __init__(
        self,
        document: Mapping[str, Any],
        *,
        status: int,
        request_id: str | None = None,
        retry_after: float | None = None,
        idempotency_key: str | None = None,
    ) -> None:
        self.status = status
        self.type = str(document.get("type", "about:blank"))
        self.title = str(document.get("title", ""))
        self.detail = str(document.get("detail", ""))
        self.errors = [FieldError.model_validate(e) for e in _field_errors(document)]
        found = document.get("order_id")
        self.order_id = found if isinstance(found, str) else None
        #: Further members (e.g. ``rule`` and ``nearest`` of amount-not-chargeable).
        self.extensions = {k: v for k, v in document.items() if k not in _MEMBERS}
        #: The server's ``X-Request-Id``: quote it to support.
        self.request_id = request_id
        self.retry_after = retry_after
        self.idempotency_key = idempotency_key
        super().__init__(f"{status} {self.type}: {self.detail or self.title}")

    @property
    def slug(self) -> str:
        """The problem's kind, e.g. ``validation-error`` for ``/problems/validation-error``."""
        return self.type.rsplit("/", 1)[-1]


class BadRequestError(ApiError):
    """400: malformed JSON or Idempotency-Key, an ambiguous Host."""


class AuthenticationError(ApiError):
    """401: no API key, or an unknown or revoked one."""


class PermissionDeniedError(ApiError):
    """403: the key lacks the route's scope, or the request came from another origin."""


class NotFoundError(ApiError):
    """404: no such order."""


class ConflictError(ApiError):
    """409: the order's state does not allow it (pay again, refund, cancel), or the
    merchant reference is taken (:attr:`order_id` names the existing order)."""


class IdempotencyConflictError(ApiError):
    """The Idempotency-Key is bound to another request or is still being served."""


class RequestInFlightError(IdempotencyConflictError, ConflictError):
    """409 request-in-flight: the first request with this key is still being served; it
    was retried until the deadline (:attr:`retry_after` says when to try again)."""


class IdempotencyKeyReusedError(IdempotencyConflictError):
    """422 idempotency-key-reused: the key was used for a different request. A caller bug:
    a new request needs a new key."""


class InvalidRequestError(ApiError):
    """413, 415, 422: the request cannot be taken as sent (:attr:`errors` lists every
    invalid value with its path)."""


class AmountNotChargeableError(InvalidRequestError):
    """422 amount-not-chargeable: the provider cannot charge this total (``rule``,
    ``nearest`` in :attr:`extensions`)."""


class PaymentMethodNotAcceptedError(InvalidRequestError):
    """422 payment-method-not-accepted: no configured provider takes the method."""


class RateLimitedError(ApiError):
    """429: too many requests; retried until the deadline."""


class ServerError(ApiError):
    """5xx: the server or its database or provider is unavailable; retried until the
    deadline. Nothing is lost: retry with the same Idempotency-Key."""


class WebhookVerificationError(OrderguardError):
    """A webhook delivery is not one orderguard signed with the given secret (or is too
    old or too new): do not act on it."""


_BY_SLUG: dict[str, type[ApiError]] = {
    "request-in-flight": RequestInFlightError,
    "idempotency-key-reused": IdempotencyKeyReusedError,
    "amount-not-chargeable": AmountNotChargeableError,
    "payment-method-not-accepted": PaymentMethodNotAcceptedError,
}
_BY_STATUS: dict[int, type[ApiError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    413: InvalidRequestError,
    415: InvalidRequestError,
    422: InvalidRequestError,
    429: RateLimitedError,
}


def error_class(status: int, slug: str) -> type[ApiError]:
    """The error raised for an answer with this status and problem slug."""
    if slug in _BY_SLUG:
        return _BY_SLUG[slug]
    if status >= 500:
        return ServerError
    return _BY_STATUS.get(status, ApiError)


def _field_errors(document: Mapping[str, Any]) -> list[Any]:
    """The ``errors`` member's well-formed entries (a proxy's error page has none)."""
    errors = document.get("errors")
    if not isinstance(errors, list):
        return []
    return [
        e
        for e in errors
        if isinstance(e, dict) and isinstance(e.get("loc"), list) and isinstance(e.get("msg"), str)
    ]


class UnexpectedAnswerError(OrderguardError):
    """A 2xx answer that is not the API's document (e.g. a proxy's page): the request's
    outcome is unknown; fetch the order, or retry with the same Idempotency-Key."""

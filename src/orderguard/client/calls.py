"""The API's routes as data: what to send and how to read the answer, with no I/O, so the
sync and async clients share every route and differ only in how they send and sleep."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ValidationError

from orderguard import __version__
from orderguard.client.errors import ApiError, NoAnswerError, UnexpectedAnswerError, error_class
from orderguard.client.models import (
    NewOrder,
    Order,
    OrderDetail,
    OrderPage,
    OrderReceipt,
    OrderSummary,
    Refund,
    RefundResult,
    RefundSummary,
)
from orderguard.client.retry import RetryPlan, retry_after_s

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)
#: What the server answers a caller that placed or paid for an order: the whole order with
#: ``orders:read``, a receipt without it.
Placed = Order | OrderReceipt
#: What recheck and cancel answer: the order's detail, or its outcome without ``orders:read``.
AfterAction = OrderDetail | OrderSummary


def new_idempotency_key() -> str:
    """A fresh Idempotency-Key (a random UUID). Make one per checkout and keep it: every
    retry of that checkout's order must send the same one."""
    return str(uuid.uuid4())


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    """One API request and the reader of its successful answer."""

    method: str
    path: str
    read: Callable[[httpx.Response], T]
    body: Mapping[str, Any] | None = None
    params: Mapping[str, str | int] | None = None
    idempotency_key: str | None = None
    #: May be sent again when its answer is lost (a GET; a POST with an Idempotency-Key).
    replay_safe: bool = False

    def headers(self) -> dict[str, str]:
        """The request's own headers."""
        return {"Idempotency-Key": self.idempotency_key} if self.idempotency_key else {}


def create_order(order: NewOrder | Mapping[str, Any], idempotency_key: str | None) -> Call[Placed]:
    """``POST /v1/orders`` once per key (a fresh key when none is given)."""
    body = order.body() if isinstance(order, NewOrder) else dict(order)
    key = idempotency_key or new_idempotency_key()
    return Call("POST", "/v1/orders", _placed, body, idempotency_key=key, replay_safe=True)


def pay_again(order_id: str, payment_method: str, idempotency_key: str | None) -> Call[Placed]:
    """``POST /v1/orders/{id}/payments``: a new payment attempt with another method."""
    key = idempotency_key or new_idempotency_key()
    body = {"payment": {"method": payment_method}}
    path = f"{_order_path(order_id)}/payments"
    return Call("POST", path, _placed, body, idempotency_key=key, replay_safe=True)


def refund(
    order_id: str, amount: int | None, reason: str | None, idempotency_key: str | None
) -> Call[RefundResult]:
    """``POST /v1/orders/{id}/refunds``: one refund per key; all that is left without
    ``amount``."""
    body: dict[str, Any] = {}
    if amount is not None:
        body["amount"] = amount
    if reason is not None:
        body["reason"] = reason
    key = idempotency_key or new_idempotency_key()
    path = f"{_order_path(order_id)}/refunds"
    return Call("POST", path, _refunded, body, idempotency_key=key, replay_safe=True)


def get_order(order_id: str) -> Call[OrderDetail]:
    """``GET /v1/orders/{id}``."""
    return Call("GET", _order_path(order_id), _model(OrderDetail), replay_safe=True)


def list_orders(
    *,
    state: str | None,
    created_after: datetime | None,
    created_before: datetime | None,
    limit: int,
    cursor: str | None,
) -> Call[OrderPage]:
    """``GET /v1/orders``: one page, newest first."""
    params: dict[str, str | int] = {"limit": limit}
    for name, value in (
        ("state", state),
        ("cursor", cursor),
        ("created_after", created_after.isoformat() if created_after else None),
        ("created_before", created_before.isoformat() if created_before else None),
    ):
        if value is not None:
            params[name] = value
    return Call("GET", "/v1/orders", _model(OrderPage), params=params, replay_safe=True)


def recheck(order_id: str) -> Call[AfterAction]:
    """``POST /v1/orders/{id}/recheck``: asking the provider again changes nothing twice,
    so it is replay-safe without a key."""
    path = f"{_order_path(order_id)}/recheck"
    return Call("POST", path, _outcome, {}, replay_safe=True)


def cancel(order_id: str) -> Call[AfterAction]:
    """``POST /v1/orders/{id}/cancel`` (sent again only if it never left)."""
    return Call("POST", f"{_order_path(order_id)}/cancel", _outcome, {})


def _order_path(order_id: str) -> str:
    """The order's path; the id is quoted so no id can reach another route."""
    return f"/v1/orders/{quote(order_id, safe='')}"


# --- reading answers ---------------------------------------------------------------------


def answer(response: httpx.Response, call: Call[T]) -> T:
    """The call's result, or the typed error of a problem answer."""
    if response.status_code >= 400:
        raise problem(response, call.idempotency_key)
    try:
        return call.read(response)
    except (ValueError, ValidationError) as exc:  # not JSON, or not the API's document
        raise UnexpectedAnswerError(
            f"{call.method} {call.path} answered {response.status_code} with a document "
            f"that is not the API's: {exc}"
        ) from exc


def problem(response: httpx.Response, idempotency_key: str | None = None) -> ApiError:
    """The typed error of an error answer (a body that is not problem+json, e.g. a proxy's
    error page, is kept as the detail)."""
    try:
        document = response.json()
    except ValueError:
        document = None
    if not isinstance(document, dict):
        document = {"title": response.reason_phrase, "detail": response.text[:200]}
    slug = str(document.get("type", "")).rsplit("/", 1)[-1]
    kind = error_class(response.status_code, slug)
    return kind(
        document,
        status=response.status_code,
        request_id=response.headers.get("x-request-id"),
        retry_after=retry_after_s(response.headers.get("retry-after")),
        idempotency_key=idempotency_key,
    )


def slug_of(response: httpx.Response) -> str:
    """The problem slug of an error answer ("" when it has none)."""
    if response.status_code < 400:
        return ""
    try:
        document = response.json()
    except ValueError:
        return ""
    return str(document.get("type", "")).rsplit("/", 1)[-1] if isinstance(document, dict) else ""


def _replayed(response: httpx.Response) -> bool:
    replayed: str = response.headers.get("idempotent-replayed", "")
    return replayed.lower() == "true"


def _document(response: httpx.Response) -> dict[str, Any]:
    document = response.json()
    if not isinstance(document, dict):
        raise ValueError("the answer is not a JSON object")
    return document


def _placed(response: httpx.Response) -> Placed:
    document = {**_document(response), "replayed": _replayed(response)}
    kind = Order if "items" in document else OrderReceipt
    return kind.model_validate(document)


def _outcome(response: httpx.Response) -> AfterAction:
    document = _document(response)
    kind = OrderDetail if "items" in document else OrderSummary
    return kind.model_validate(document)


def _refunded(response: httpx.Response) -> RefundResult:
    document = _document(response)
    refund_document = document.pop("refund", None)
    kind = OrderDetail if "items" in document else RefundSummary
    return RefundResult(
        refund=Refund.model_validate(refund_document),
        order=kind.model_validate(document),
        replayed=_replayed(response),
    )


def _model(kind: type[M]) -> Callable[[httpx.Response], M]:
    def read(response: httpx.Response) -> M:
        return kind.model_validate(_document(response))

    return read


def wait_after(plan: RetryPlan, response: httpx.Response) -> float | None:
    """Seconds to wait before sending again after ``response``; None: it is the answer."""
    if response.status_code < 400:
        return None
    retry_after = retry_after_s(response.headers.get("retry-after"))
    return plan.after_answer(response.status_code, slug_of(response), retry_after)


def no_answer(call: Call[Any], plan: RetryPlan, exc: httpx.TransportError) -> NoAnswerError:
    """The error of a request that got no answer in any of its tries."""
    return NoAnswerError(
        f"{call.method} {call.path}: no answer after {plan.tries} tries ({exc!r}); "
        + (
            f"send it again with Idempotency-Key {call.idempotency_key}"
            if call.idempotency_key
            else "its outcome is unknown: read the order before acting again"
        ),
        idempotency_key=call.idempotency_key,
        attempts=plan.tries,
    )


def client_headers(api_key: str | None) -> dict[str, str]:
    """Headers on every request: the API key, JSON, who is calling."""
    headers = {"Accept": "application/json", "User-Agent": f"orderguard-client/{__version__}"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    return headers

"""The client's hand-written models say what the API says: each has exactly the fields of
the server's document it reads or sends (so a field added or renamed on one side fails
here, not at a shop), and each problem answer becomes the error class documented for it."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from orderguard.api import problems, schemas
from orderguard.client import (
    AmountNotChargeableError,
    ApiError,
    ConflictError,
    IdempotencyConflictError,
    IdempotencyKeyReusedError,
    InvalidRequestError,
    PaymentMethodNotAcceptedError,
    RequestInFlightError,
    ServerError,
    models,
)
from orderguard.client.errors import error_class

#: Client model -> the server's document.
PAIRS: list[tuple[type[BaseModel], type[BaseModel]]] = [
    (models.Item, schemas.ItemIn),
    (models.Address, schemas.AddressIn),
    (models.Customer, schemas.CustomerIn),
    (models.LineItem, schemas.ItemOut),
    (models.ShippingAddress, schemas.AddressOut),
    (models.Shopper, schemas.CustomerOut),
    (models.PaymentAttempt, schemas.AttemptOut),
    (models.RedirectAction, schemas.NextAction),
    (models.QrCodeAction, schemas.ScanQrCode),
    (models.TimelineEntry, schemas.TimelineOut),
    (models.Flag, schemas.FlagOut),
    (models.Refund, schemas.RefundOut),
    (models.OrderSummary, schemas.OrderOutcomeOut),
    (models.OrderReceipt, schemas.OrderReceiptOut),
    (models.Order, schemas.OrderOut),
    (models.OrderDetail, schemas.OrderDetailOut),
    (models.OrderPage, schemas.OrderPageOut),
    (models.FieldError, problems.FieldError),
]
#: Fields the client adds itself (from headers), never read from a document.
CLIENT_ONLY = {"replayed"}


@pytest.mark.parametrize(("mine", "theirs"), PAIRS, ids=lambda m: m.__name__)
def test_each_model_has_the_servers_fields(mine: type[BaseModel], theirs: type[BaseModel]) -> None:
    assert set(mine.model_fields) - CLIENT_ONLY == set(theirs.model_fields)


def test_a_new_order_sends_the_servers_body() -> None:
    sent = set(models.NewOrder.model_fields) - {"payment_method"} | {"payment"}
    assert sent == set(schemas.PlaceOrderIn.model_fields)


def test_a_refund_answer_is_a_refund_and_the_order_after_it() -> None:
    assert set(models.RefundSummary.model_fields) - CLIENT_ONLY == set(
        schemas.RefundOutcomeOut.model_fields
    ) - {"refund"}
    assert set(schemas.RefundedOrderOut.model_fields) - {"refund"} == set(
        schemas.OrderDetailOut.model_fields
    )


@pytest.mark.parametrize(
    ("status", "slug", "kind"),
    [
        (409, "request-in-flight", RequestInFlightError),
        (422, "idempotency-key-reused", IdempotencyKeyReusedError),
        (422, "amount-not-chargeable", AmountNotChargeableError),
        (422, "payment-method-not-accepted", PaymentMethodNotAcceptedError),
        (422, "validation-error", InvalidRequestError),
        (409, "duplicate-merchant-reference", ConflictError),
        (409, "refund-exceeds-refundable", ConflictError),
        (503, "storage-unavailable", ServerError),
        (500, "internal-error", ServerError),
        (418, "teapot", ApiError),
    ],
)
def test_each_problem_has_its_error_class(status: int, slug: str, kind: type[ApiError]) -> None:
    assert error_class(status, slug) is kind


def test_both_idempotency_problems_are_idempotency_conflicts() -> None:
    assert issubclass(RequestInFlightError, IdempotencyConflictError)
    assert issubclass(RequestInFlightError, ConflictError)  # it is a 409
    assert issubclass(IdempotencyKeyReusedError, IdempotencyConflictError)


def test_a_problem_documents_fields_are_kept_on_the_error() -> None:
    error = AmountNotChargeableError(
        {
            "type": "/problems/amount-not-chargeable",
            "title": "Amount not chargeable",
            "status": 422,
            "detail": "too small",
            "errors": [{"loc": ["body", "items"], "msg": "too small"}, "junk"],
            "order_id": None,
            "rule": "minimum",
            "nearest": [{"amount": 50, "formatted": "0.50 EUR"}],
        },
        status=422,
        request_id="req_1",
    )
    assert (error.slug, error.detail, error.request_id) == (
        "amount-not-chargeable",
        "too small",
        "req_1",
    )
    assert [e.loc for e in error.errors] == [["body", "items"]]
    assert error.extensions == {
        "rule": "minimum",
        "nearest": [{"amount": 50, "formatted": "0.50 EUR"}],
    }

"""RFC 9457 problem details: every error the API answers is ``application/problem+json``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from pydantic import BaseModel, Field
from starlette.responses import Response

from orderguard.catalog import translate
from orderguard.domain.money import AmountNotChargeable, Money
from orderguard.services.providers import PaymentMethodNotTaken

#: The media type of every error response.
PROBLEM_JSON = "application/problem+json"


class FieldError(BaseModel):
    """One invalid value: where it is and what is wrong with it."""

    loc: list[str | int] = Field(description="Path to the value, e.g. ['items', 0, 'quantity']")
    msg: str


class NearestAmount(BaseModel):
    """An amount the provider can charge, in ISO 4217 minor units and written out."""

    amount: int
    formatted: str = Field(description="e.g. '1000.00 MGA'")


class Problem(BaseModel):
    """An RFC 9457 problem document."""

    type: str = Field(description="A URI reference naming the kind of problem")
    title: str
    status: int
    detail: str
    errors: list[FieldError] = Field(default_factory=list)
    order_id: str | None = Field(default=None, description="The order the problem is about")
    currency: str | None = Field(
        default=None,
        description="amount-not-chargeable, refund-exceeds-refundable: the currency of the amounts",
    )
    rule: str | None = Field(
        default=None,
        description="amount-not-chargeable: the rule the total breaks: "
        "unsupported_currency, minimum, maximum or granularity",
    )
    amount: int | None = Field(
        default=None, description="amount-not-chargeable: the order's total in minor units"
    )
    nearest: list[NearestAmount] | None = Field(
        default=None,
        description="amount-not-chargeable: the chargeable totals closest to it, lowest first",
    )
    amount_refundable: int | None = Field(
        default=None,
        description="refund-exceeds-refundable: the minor units that may still be refunded",
    )


class ProblemError(Exception):
    """Raised by routes to answer with a problem document."""

    def __init__(
        self,
        status: int,
        slug: str,
        title: str,
        detail: str,
        *,
        errors: Sequence[tuple[Sequence[str | int], str]] = (),
        headers: dict[str, str] | None = None,
        order_id: str | None = None,
        extensions: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status, self.slug, self.title, self.detail = status, slug, title, detail
        self.errors = [(list(loc), msg) for loc, msg in errors]
        self.headers = headers or {}
        self.order_id = order_id
        #: Further members of the problem document (RFC 9457 extension members).
        self.extensions = extensions or {}

    def response(self) -> Response:
        """This problem as an HTTP response."""
        body: dict[str, Any] = {
            "type": f"/problems/{self.slug}",
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "errors": [{"loc": loc, "msg": msg} for loc, msg in self.errors],
        }
        if self.order_id is not None:
            body["order_id"] = self.order_id
        body.update(self.extensions)
        return Response(
            orjson.dumps(body), self.status, headers=self.headers, media_type=PROBLEM_JSON
        )


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries documenting problem answers with these statuses."""
    return {
        status: {
            "description": _DESCRIPTIONS[status],
            "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for status in statuses
    }


_DESCRIPTIONS = {
    400: "Malformed JSON or a missing or malformed Idempotency-Key",
    401: "Missing or invalid API key",
    403: "The API key lacks the scope this route needs, or the Origin is another site's",
    404: "No such order",
    405: "Method not allowed",
    409: "A request with this key is in flight, or the merchant reference is taken",
    413: "Body larger than 64 KiB",
    415: "Content-Type is not application/json",
    422: "Invalid values (every field path listed), an Idempotency-Key reused, a total the "
    "payment provider cannot charge (amount-not-chargeable: currency, rule, nearest amounts), "
    "or a payment method no configured provider takes (payment-method-not-accepted)",
    503: "The database is unavailable; retry later",
}


def amount_problem(exc: AmountNotChargeable, language: str) -> ProblemError:
    """422 ``amount-not-chargeable``: the currency, the rule, the nearest chargeable totals."""
    refusal = exc.refusal
    nearest = [Money(a, refusal.currency) for a in refusal.nearest]
    joiner = "、" if language == "zh-CN" else ", "
    detail = translate(
        language,
        f"amount.{refusal.limit}",
        amount=Money(refusal.amount, refusal.currency).format(),
        currency=refusal.currency,
        nearest=joiner.join(m.format() for m in nearest) or translate(language, "amount.none"),
    )
    return ProblemError(
        422,
        "amount-not-chargeable",
        translate(language, "amount.title"),
        detail,
        errors=[(("body", "items"), detail)],
        extensions={
            "currency": refusal.currency,
            "rule": str(refusal.limit),
            "amount": refusal.amount,
            "nearest": [{"amount": m.amount, "formatted": m.format()} for m in nearest],
        },
    )


def method_problem(exc: PaymentMethodNotTaken, language: str) -> ProblemError:
    """422 ``payment-method-not-accepted``: no configured provider takes the method."""
    detail = translate(language, "method.not_taken", method=exc.method)
    return ProblemError(
        422,
        "payment-method-not-accepted",
        translate(language, "method.title"),
        detail,
        errors=[(("body", "payment", "method"), detail)],
        extensions={"method": exc.method},
    )

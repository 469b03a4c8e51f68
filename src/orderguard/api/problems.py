"""RFC 9457 problem details: every error the API answers is ``application/problem+json``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from pydantic import BaseModel, Field
from starlette.responses import Response

#: The media type of every error response.
PROBLEM_JSON = "application/problem+json"


class FieldError(BaseModel):
    """One invalid value: where it is and what is wrong with it."""

    loc: list[str | int] = Field(description="Path to the value, e.g. ['items', 0, 'quantity']")
    msg: str


class Problem(BaseModel):
    """An RFC 9457 problem document."""

    type: str = Field(description="A URI reference naming the kind of problem")
    title: str
    status: int
    detail: str
    errors: list[FieldError] = Field(default_factory=list)
    order_id: str | None = Field(default=None, description="The order the problem is about")
    amount_refundable: int | None = Field(
        default=None,
        description="For refund-exceeds-refundable: the minor units that may still be refunded",
    )
    currency: str | None = Field(
        default=None, description="For refund-exceeds-refundable: the currency of the amounts"
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
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        #: Further members of the problem document (e.g. ``amount_refundable``).
        self.extra = extra or {}
        self.status, self.slug, self.title, self.detail = status, slug, title, detail
        self.errors = [(list(loc), msg) for loc, msg in errors]
        self.headers = headers or {}
        self.order_id = order_id

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
        body.update(self.extra)
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
    422: "Invalid values (every field path listed), or an Idempotency-Key reused",
    503: "The database is unavailable; retry later",
}

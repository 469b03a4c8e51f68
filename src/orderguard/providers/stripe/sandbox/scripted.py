"""Scripted answers: the next API calls answer exactly the Stripe error a test asks for.

The random faults cover the network edge; these cover Stripe's own words: an
``idempotency_error``, a ``409 idempotency_key_in_use``, and the ``Stripe-Should-Retry``
header on any error. An answer is given before the call has any effect, or (``after``)
once the write happened, as when Stripe charged and the answer that came back was an error.
A ``saved`` answer is one Stripe itself gave and kept under the Idempotency-Key: a retry with
the same key replays it (with ``Stripe-Should-Retry: false`` for a 5xx) for 24 hours.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.responses import JSONResponse

from orderguard.providers.stripe.sandbox import objects
from orderguard.providers.stripe.sandbox.engine import Outcome

#: The header in which Stripe says whether repeating a request is safe.
SHOULD_RETRY = "Stripe-Should-Retry"
#: Fields a scripted answer may set.
FIELDS = frozenset({"status", "type", "code", "message", "should_retry", "after", "saved", "times"})


@dataclass(frozen=True, slots=True)
class ScriptedAnswer:
    """One error answer, as Stripe would give it."""

    status: int
    type: str
    message: str = "Scripted sandbox answer."
    code: str | None = None
    #: ``"true"``, ``"false"`` or ``None`` (no ``Stripe-Should-Retry`` header).
    should_retry: str | None = None
    #: Answer after the write took effect instead of before it.
    after: bool = False
    #: Save the answer under the write's Idempotency-Key, as Stripe keeps its own errors.
    saved: bool = False

    def body(self) -> dict[str, Any]:
        """The Stripe error body."""
        extra: dict[str, Any] = {} if self.code is None else {"code": self.code}
        return objects.error(self.type, self.message, **extra)

    def outcome(self) -> Outcome:
        """The answer as the sandbox's outcome (what a ``saved`` answer stores)."""
        return Outcome(self.status, self.body())

    def response(self) -> JSONResponse:
        """The error as an HTTP response."""
        headers = {"Request-Id": objects.new_id("req")}
        if self.should_retry is not None:
            headers[SHOULD_RETRY] = self.should_retry
        return JSONResponse(self.body(), status_code=self.status, headers=headers)


def scripted_answers(body: dict[str, Any]) -> list[ScriptedAnswer]:
    """``times`` copies of the answer ``body`` describes; raises ``ValueError`` when malformed."""
    unknown = set(body) - FIELDS
    if unknown:
        raise ValueError(f"unknown answer fields: {sorted(unknown)}")
    fields = {k: v for k, v in body.items() if k != "times"}
    answer = ScriptedAnswer(**fields)
    if not 400 <= int(answer.status) <= 599 or answer.should_retry not in {None, "true", "false"}:
        raise ValueError("status must be 4xx or 5xx and should_retry 'true', 'false' or null")
    if not isinstance(answer.saved, bool) or not isinstance(answer.after, bool):
        raise ValueError("after and saved must be true or false")
    if answer.saved and not 500 <= int(answer.status) <= 599:
        raise ValueError("only a 5xx is saved: Stripe keeps no result of a refused request")
    return [answer] * int(body.get("times", 1))

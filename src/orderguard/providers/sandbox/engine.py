"""The Stripe behaviour the sandbox imitates: PaymentIntents, test cards, 3-D Secure, refunds.

Each operation returns an :class:`Outcome` (HTTP status, body, events to send); the caller
runs it inside one ledger transaction together with the idempotency record.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from orderguard.providers.sandbox import objects
from orderguard.providers.sandbox.amounts import amount_problem
from orderguard.providers.sandbox.ledger import Ledger, Obj
from orderguard.providers.sandbox.queries import parse_search, refund_problem, window_filter

#: Statuses a PaymentIntent may be cancelled from, as Stripe lists them (the sandbox never
#: reaches ``requires_capture`` or ``processing``).
CANCELABLE = (
    "requires_payment_method",
    "requires_capture",
    "requires_confirmation",
    "requires_action",
    "processing",
)
#: The ``cancellation_reason`` values Stripe accepts.
CANCELLATION_REASONS = frozenset({"abandoned", "duplicate", "fraudulent", "requested_by_customer"})


@dataclass(slots=True)
class Outcome:
    """An HTTP status, its JSON body and the events the change produced."""

    status: int
    body: Obj
    events: list[Obj] = field(default_factory=list)


def invalid(message: str, code: str, param: str | None = None, status: int = 400) -> Outcome:
    """An ``invalid_request_error`` outcome."""
    return Outcome(status, objects.error("invalid_request_error", message, code=code, param=param))


class Engine:
    """Stripe's API semantics over the :class:`Ledger`; ``clock`` gives unix seconds."""

    def __init__(self, ledger: Ledger, *, clock: Callable[[], float]) -> None:
        self._ledger = ledger
        self._clock = clock

    def _now(self) -> int:
        return int(self._clock())

    def _event(self, event_type: str, obj: Obj) -> Obj:
        return objects.event(event_type, obj, created=self._now())

    def create_payment_intent(self, params: Obj, *, hosted_base: str) -> Outcome:
        """Create a PaymentIntent and, with ``confirm=true``, confirm it with its test card."""
        problem = _creation_problem(params)
        if problem is not None:
            return problem
        if (refused := amount_problem(params)) is not None:  # Stripe's currency rules
            return Outcome(400, refused)
        intent = objects.payment_intent(params, intent_id=objects.new_id("pi"), created=self._now())
        behaviour = objects.TEST_METHODS[str(params["payment_method"])]
        if behaviour == "succeed":
            return self._succeed(intent)
        if behaviour == "decline":
            return self._decline(intent)
        return self._require_action(intent, hosted_base=hosted_base)

    def _succeed(self, intent: Obj) -> Outcome:
        paid = self._ledger.put(objects.charge(intent, status="succeeded", created=self._now()))
        intent.update(
            status="succeeded",
            amount_received=intent["amount"],
            latest_charge=paid["id"],
            next_action=None,
        )
        self._ledger.put(intent)
        return Outcome(200, intent, [self._event("payment_intent.succeeded", intent)])

    def _decline(self, intent: Obj) -> Outcome:
        failed = objects.charge(
            intent, status="failed", created=self._now(), failure_code="card_declined"
        )
        self._ledger.put(failed)
        intent.update(status="requires_payment_method", latest_charge=failed["id"])
        body = objects.card_declined(intent)
        intent["last_payment_error"] = {
            k: v for k, v in body["error"].items() if k != "payment_intent"
        }
        self._ledger.put(intent)
        return Outcome(402, body, [self._event("payment_intent.payment_failed", intent)])

    def _require_action(self, intent: Obj, *, hosted_base: str) -> Outcome:
        url = f"{hosted_base}/3ds/{intent['id']}"
        intent.update(
            status="requires_action",
            next_action={
                "type": "redirect_to_url",
                "redirect_to_url": {"url": url, "return_url": intent["return_url"]},
            },
        )
        self._ledger.put(intent)
        return Outcome(200, intent, [self._event("payment_intent.requires_action", intent)])

    def authenticate(self, intent_id: str, *, approved: bool) -> Outcome:
        """Complete a 3-D Secure challenge: succeed the payment or fail it."""
        intent = self._ledger.get(intent_id, "payment_intent")
        if intent is None:
            return invalid(f"No such payment_intent: '{intent_id}'", "resource_missing", status=404)
        if intent["status"] != "requires_action":
            return Outcome(200, intent)
        if approved:
            return self._succeed(intent)
        intent.update(
            status="requires_payment_method",
            next_action=None,
            last_payment_error={
                "type": "invalid_request_error",
                "code": "payment_intent_authentication_failure",
                "message": "The shopper refused the 3-D Secure challenge.",
            },
        )
        self._ledger.put(intent)
        return Outcome(200, intent, [self._event("payment_intent.payment_failed", intent)])

    def cancel(self, intent_id: str, params: Obj) -> Outcome:
        """Cancel a PaymentIntent that has not succeeded; a canceled one is returned as is.

        A succeeded one cannot be cancelled: 400 ``payment_intent_unexpected_state`` with the
        intent embedded, as Stripe answers.
        """
        intent = self._ledger.get(intent_id, "payment_intent")
        if intent is None:
            return invalid(
                f"No such payment_intent: '{intent_id}'", "resource_missing", "intent", status=404
            )
        reason = params.get("cancellation_reason")
        if reason is not None and reason not in CANCELLATION_REASONS:
            return invalid(
                "Invalid cancellation_reason: must be one of "
                + ", ".join(sorted(CANCELLATION_REASONS)),
                "parameter_invalid",
                "cancellation_reason",
            )
        if intent["status"] == "canceled":
            return Outcome(200, intent)
        if intent["status"] not in CANCELABLE:
            return Outcome(400, objects.unexpected_state(intent, "cancel", CANCELABLE))
        intent.update(
            status="canceled",
            canceled_at=self._now(),
            cancellation_reason=reason,
            next_action=None,
        )
        self._ledger.put(intent)
        return Outcome(200, intent, [self._event("payment_intent.canceled", intent)])

    def retrieve(self, intent_id: str) -> Outcome:
        """One PaymentIntent or a 404."""
        intent = self._ledger.get(intent_id, "payment_intent")
        if intent is None:
            return invalid(
                f"No such payment_intent: '{intent_id}'", "resource_missing", "intent", status=404
            )
        return Outcome(200, intent)

    def search(self, query: str) -> Outcome:
        """PaymentIntents matching ``metadata['k']:'v'`` clauses joined by AND."""
        clauses = parse_search(query)
        if clauses is None:
            return invalid(
                "The sandbox only understands metadata['key']:'value' clauses.",
                "parameter_invalid",
                "query",
            )
        found = [
            pi
            for pi in self._ledger.all("payment_intent")
            if all(pi["metadata"].get(k) == v for k, v in clauses)
        ]
        return Outcome(200, objects.search_result(found, "/v1/payment_intents/search"))

    def list_charges(self, params: Obj) -> Outcome:
        """Charges newest first, filtered by ``created[...]``, paged with ``starting_after``."""
        limit = max(1, min(100, int(params.get("limit", 10))))
        charges = window_filter(self._ledger.all("charge"), params.get("created") or {})
        after = params.get("starting_after")
        if after:
            ids = [c["id"] for c in charges]
            charges = charges[ids.index(after) + 1 :] if after in ids else []
        page = charges[:limit]
        return Outcome(
            200, objects.list_page(page, has_more=len(charges) > limit, url="/v1/charges")
        )

    def create_refund(self, params: Obj) -> Outcome:
        """Refund a PaymentIntent's succeeded charge, fully or partly."""
        intent = self._ledger.get(str(params.get("payment_intent")), "payment_intent")
        paid = self._ledger.get(str(intent["latest_charge"]), "charge") if intent else None
        if paid is None or paid["status"] != "succeeded":
            return invalid(
                "This PaymentIntent has no succeeded charge to refund.",
                "resource_missing",
                "payment_intent",
            )
        remaining = paid["amount"] - paid["amount_refunded"]
        amount = int(params.get("amount", remaining))
        problem = refund_problem(amount, remaining)
        if problem is not None:
            return invalid(problem[1], problem[0], "amount")
        made = self._ledger.put(objects.refund(paid, amount=amount, created=self._now()))
        paid["amount_refunded"] += amount
        paid["refunded"] = paid["amount_refunded"] == paid["amount"]
        self._ledger.put(paid)
        snapshot = {**paid, "refunds": objects.list_page([made], has_more=False, url="")}
        return Outcome(200, made, [self._event("charge.refunded", snapshot)])


def _creation_problem(params: Obj) -> Outcome | None:
    for name in ("amount", "currency", "payment_method"):
        if not params.get(name):
            return invalid(f"Missing required param: {name}.", "parameter_missing", name)
    if not str(params["amount"]).isdigit() or int(params["amount"]) < 1:
        return invalid("Invalid positive integer", "parameter_invalid_integer", "amount")
    if params["payment_method"] not in objects.TEST_METHODS:
        return invalid(
            f"No such PaymentMethod: '{params['payment_method']}'",
            "resource_missing",
            "payment_method",
        )
    if str(params.get("confirm")).lower() != "true":
        return invalid("The sandbox only supports confirm=true.", "parameter_invalid", "confirm")
    return None

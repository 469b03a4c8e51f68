"""The Stripe behaviour the sandbox imitates: PaymentIntents, test cards, 3-D Secure, refunds.

Each operation returns an :class:`Outcome` (HTTP status, body, events to send); the caller
runs it inside one ledger transaction together with the idempotency record.

Events are Stripe's, each carrying a snapshot of its object as it was at that moment: a
PaymentIntent sends ``payment_intent.created`` (before confirmation) and then its result; a
charge sends ``charge.succeeded`` or ``charge.failed``; a refund sends ``refund.created`` and
``charge.refunded`` (the charge in its current shape: cumulative ``amount_refunded`` and
``refunded``, no ``refunds`` list since API version 2022-11-15), and ``refund.updated`` (with
``charge.refund.updated``) when a pending refund settles or a refund fails later.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from dataclasses import dataclass, field

import orjson

from orderguard.providers.stripe.sandbox import objects
from orderguard.providers.stripe.sandbox.amounts import amount_problem
from orderguard.providers.stripe.sandbox.ledger import Ledger, Obj
from orderguard.providers.stripe.sandbox.queries import (
    parse_search,
    refund_problem,
    search_limit,
    window_filter,
)

#: Statuses a PaymentIntent may be cancelled from, as Stripe lists them (the sandbox never
#: reaches ``requires_capture`` or ``processing``).
CANCELABLE = (
    "requires_payment_method",
    "requires_capture",
    "requires_confirmation",
    "requires_action",
    "processing",
)
#: What a refund may become once made: pending settles either way; a succeeded one may
#: still fail later (Stripe: the card was closed, the bank returned the money).
REFUND_MOVES = {"pending": ("succeeded", "failed"), "succeeded": ("failed",)}
#: Stripe's ``failure_reason`` values for a refund.
REFUND_FAILURE_REASONS = frozenset(
    {
        "charge_for_pending_refund_disputed",
        "declined",
        "expired_or_canceled_card",
        "insufficient_funds",
        "lost_or_stolen_card",
        "merchant_request",
        "unknown",
    }
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

    def __init__(
        self,
        ledger: Ledger,
        *,
        clock: Callable[[], float],
        search_lag: Callable[[], float] = lambda: 0.0,
    ) -> None:
        self._ledger = ledger
        self._clock = clock
        self._search_lag = search_lag

    def _now(self) -> int:
        return int(self._clock())

    def _event(self, event_type: str, obj: Obj) -> Obj:
        """An event carrying a snapshot: later changes to ``obj`` do not reach it (copied
        through JSON, as the objects are: several times faster than ``copy.deepcopy``)."""
        snapshot: Obj = orjson.loads(orjson.dumps(obj))
        return objects.event(event_type, snapshot, created=self._now())

    def create_payment_intent(self, params: Obj, *, hosted_base: str) -> Outcome:
        """Create a PaymentIntent and, with ``confirm=true``, confirm it with its test card."""
        problem = _creation_problem(params)
        if problem is not None:
            return problem
        if (refused := amount_problem(params)) is not None:  # Stripe's currency rules
            return Outcome(400, refused)
        intent = objects.payment_intent(params, intent_id=objects.new_id("pi"), created=self._now())
        created = self._event("payment_intent.created", intent)
        behaviour = objects.TEST_METHODS[str(params["payment_method"])]
        if behaviour == "succeed":
            outcome = self._succeed(intent)
        elif behaviour == "decline":
            outcome = self._decline(intent)
        else:
            outcome = self._require_action(intent, hosted_base=hosted_base)
        outcome.events.insert(0, created)
        return outcome

    def _succeed(self, intent: Obj) -> Outcome:
        paid = self._ledger.put(objects.charge(intent, status="succeeded", created=self._now()))
        intent.update(
            status="succeeded",
            amount_received=intent["amount"],
            latest_charge=paid["id"],
            next_action=None,
        )
        self._ledger.put(intent)
        events = [
            self._event("charge.succeeded", paid),
            self._event("payment_intent.succeeded", intent),
        ]
        return Outcome(200, intent, events)

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
        events = [
            self._event("charge.failed", failed),
            self._event("payment_intent.payment_failed", intent),
        ]
        return Outcome(402, body, events)

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
        """Cancel a PaymentIntent that has not succeeded.

        A succeeded or already canceled one cannot be cancelled: 400
        ``payment_intent_unexpected_state`` with the intent embedded, as Stripe answers (a
        repeat with the first cancel's Idempotency-Key replays that first answer instead).
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

    def search(self, params: Obj) -> Outcome:
        """PaymentIntents matching ``metadata['k']:'v'`` clauses joined by AND, newest first.

        Paged like Stripe's Search API (``limit`` 1-100, default 10; ``page`` is the
        ``next_page`` of the previous result). Only objects first stored at least the search
        lag ago are found, as Stripe's index trails writes.
        """
        clauses = parse_search(str(params.get("query", "")))
        if clauses is None:
            return invalid(
                "The sandbox only understands metadata['key']:'value' clauses.",
                "parameter_invalid",
                "query",
            )
        limit = search_limit(params.get("limit"))
        if limit is None:
            return invalid(
                "Invalid limit: must be an integer between 1 and 100.",
                "parameter_invalid_integer",
                "limit",
            )
        query = str(params["query"])
        below = _page_cursor(params.get("page"), query)
        if below is None:
            return invalid(
                "Invalid page: not a next_page of this query.", "parameter_invalid", "page"
            )
        indexed = self._ledger.indexed(
            "payment_intent", stored_before=self._clock() - self._search_lag()
        )
        found = [
            (seq, pi)
            for seq, pi in indexed
            if seq < below and all(pi["metadata"].get(k) == v for k, v in clauses)
        ]
        page = found[:limit]
        more = len(found) > limit
        next_page = _page_token(page[-1][0], query) if more else None
        return Outcome(
            200,
            objects.search_result(
                [pi for _, pi in page], "/v1/payment_intents/search", next_page=next_page
            ),
        )

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

    def retrieve_refund(self, refund_id: str) -> Outcome:
        """``GET /v1/refunds/{refund}``: one Refund as it stands now, or Stripe's 404."""
        made = self._ledger.get(refund_id, "refund")
        if made is None:
            return invalid(f"No such refund: '{refund_id}'", "resource_missing", "id", status=404)
        return Outcome(200, made)

    def list_refunds(self, params: Obj) -> Outcome:
        """``GET /v1/refunds``: Refunds newest first, of one ``payment_intent`` or ``charge``
        when given, paged with ``starting_after``."""
        limit = max(1, min(100, int(params.get("limit", 10))))
        refunds = self._ledger.all("refund")
        for name in ("payment_intent", "charge"):
            if params.get(name):
                refunds = [r for r in refunds if r.get(name) == params[name]]
        after = params.get("starting_after")
        if after:
            ids = [r["id"] for r in refunds]
            refunds = refunds[ids.index(after) + 1 :] if after in ids else []
        page = objects.list_page(refunds[:limit], has_more=len(refunds) > limit, url="/v1/refunds")
        return Outcome(200, page)

    def create_refund(self, params: Obj, *, pending: bool = False) -> Outcome:
        """Refund a PaymentIntent's succeeded charge, fully or partly.

        ``amount_refunded`` counts pending refunds too, as Stripe's does; a refund that
        fails later gives its amount back (:meth:`settle_refund`).
        """
        intent = self._ledger.get(str(params.get("payment_intent")), "payment_intent")
        paid = self._ledger.get(str(intent["latest_charge"]), "charge") if intent else None
        if paid is None or paid["status"] != "succeeded":
            return invalid(
                "This PaymentIntent has no succeeded charge to refund.",
                "resource_missing",
                "payment_intent",
            )
        remaining = paid["amount"] - paid["amount_refunded"]
        raw = params.get("amount", remaining)
        if not str(raw).isdigit():
            return invalid("Invalid positive integer", "parameter_invalid_integer", "amount")
        amount = int(raw)
        problem = refund_problem(amount, remaining)
        if problem is not None:
            return invalid(problem[1], problem[0], "amount")
        metadata = params.get("metadata")
        made = objects.refund(
            paid,
            amount=amount,
            created=self._now(),
            metadata={str(k): str(v) for k, v in metadata.items()}
            if isinstance(metadata, dict)
            else None,
        )
        if pending:
            made["status"] = "pending"
        self._ledger.put(made)
        paid["amount_refunded"] += amount
        paid["refunded"] = paid["amount_refunded"] == paid["amount"]
        self._ledger.put(paid)
        events = [self._event("refund.created", made), self._event("charge.refunded", paid)]
        return Outcome(200, made, events)

    def settle_refund(self, refund_id: str, params: Obj) -> Outcome:
        """Move a refund on: pending to succeeded or failed, or succeeded to failed.

        A failed refund's amount goes back to the charge's refundable amount, and Stripe's
        ``refund.updated`` and ``charge.refund.updated`` events are sent.
        """
        made = self._ledger.get(refund_id, "refund")
        if made is None:
            return invalid(f"No such refund: '{refund_id}'", "resource_missing", "id", status=404)
        status = params.get("status")
        if status not in REFUND_MOVES.get(made["status"], ()):
            return invalid(
                f"A {made['status']} refund cannot become {status!r}.",
                "parameter_invalid",
                "status",
            )
        reason = params.get("failure_reason", "declined")
        if status == "failed" and reason not in REFUND_FAILURE_REASONS:
            return invalid(
                "Invalid failure_reason: must be one of "
                + ", ".join(sorted(REFUND_FAILURE_REASONS)),
                "parameter_invalid",
                "failure_reason",
            )
        made["status"] = status
        if status == "failed":
            made["failure_reason"] = reason
            paid = self._ledger.get(str(made["charge"]), "charge")
            assert paid is not None  # a refund is only made on a stored charge
            paid["amount_refunded"] -= made["amount"]
            paid["refunded"] = paid["amount_refunded"] == paid["amount"]
            self._ledger.put(paid)
        self._ledger.put(made)
        events = [
            self._event("refund.updated", made),
            self._event("charge.refund.updated", made),
        ]
        return Outcome(200, made, events)


def _page_token(seq: int, query: str) -> str:
    """An opaque ``next_page`` naming where the next page starts, bound to its query."""
    raw = f"{seq}:{query}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _page_cursor(token: object, query: str) -> int | float | None:
    """The sequence number the page starts below (``inf``: first page); None if malformed."""
    if token is None or token == "":
        return float("inf")
    try:
        raw = base64.urlsafe_b64decode(str(token) + "=" * (-len(str(token)) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    seq, _, bound = raw.partition(":")
    if bound != query or not seq.isdigit():
        return None
    return int(seq)


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

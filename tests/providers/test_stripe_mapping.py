"""How PaymentIntent states and Stripe metadata limits map to neutral results."""

from __future__ import annotations

import pytest

from orderguard.providers.base import PaymentOutcome
from orderguard.providers.stripe.adapter import search_query
from orderguard.providers.stripe.mapping import compact_metadata, payment_result


def _intent(status: str, **extra: object) -> dict[str, object]:
    return {
        "id": "pi_1",
        "status": status,
        "amount": 100,
        "currency": "eur",
        "metadata": {"order_id": "ord_1"},
        "created": 1_700_000_000,
        **extra,
    }


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        ("succeeded", PaymentOutcome.SUCCEEDED),
        ("requires_action", PaymentOutcome.ACTION_REQUIRED),
        ("processing", PaymentOutcome.PENDING),
        ("requires_confirmation", PaymentOutcome.PENDING),
        ("requires_capture", PaymentOutcome.PENDING),
        ("requires_payment_method", PaymentOutcome.PENDING),
        ("canceled", PaymentOutcome.FAILED),
        ("something_new", PaymentOutcome.PENDING),
    ],
)
def test_each_payment_intent_status_has_an_outcome(status: str, outcome: PaymentOutcome) -> None:
    result = payment_result(_intent(status))
    assert result.outcome is outcome
    assert (result.currency, result.order_id) == ("EUR", "ord_1")


def test_a_payment_that_needs_a_new_method_after_a_decline_failed_and_invites_another() -> None:
    error = {"type": "card_error", "code": "card_declined", "decline_code": "insufficient_funds"}
    result = payment_result(_intent("requires_payment_method", last_payment_error=error))
    assert result.outcome is PaymentOutcome.FAILED
    assert result.decline_code == "insufficient_funds"
    assert result.retry_with_other_method is True


def test_a_cancelled_payment_failed_without_inviting_another_method() -> None:
    assert payment_result(_intent("canceled")).retry_with_other_method is False


def test_the_redirect_url_comes_from_next_action() -> None:
    action = {"type": "redirect_to_url", "redirect_to_url": {"url": "https://bank/3ds"}}
    assert payment_result(_intent("requires_action", next_action=action)).redirect_url == (
        "https://bank/3ds"
    )


def test_metadata_is_compacted_to_stripe_limits_and_always_names_the_order() -> None:
    values = {f"k{i}": "x" * 600 for i in range(60)} | {"order_id": "forged"}
    meta = compact_metadata(values, order_id="ord_1", attempt_id="att_1")
    assert (meta["order_id"], meta["attempt_id"]) == ("ord_1", "att_1")
    assert len(meta) == 50
    assert max(len(v) for v in meta.values()) == 500


def test_search_queries_escape_quotes() -> None:
    assert search_query("o'1") == "metadata['order_id']:'o\\'1'"


def test_a_concurrent_request_with_the_same_key_is_busy_never_a_rejection() -> None:
    import stripe

    from orderguard.providers.base import ProviderBusy
    from orderguard.providers.stripe.errors import provider_error
    from orderguard.services.payments import failure_outcome

    conflict = stripe.StripeError("Another request with this key is in progress.", http_status=409)
    error = provider_error(conflict, mutating=True)
    assert isinstance(error, ProviderBusy) and error.safe_to_retry
    assert failure_outcome(error).state == "unknown"

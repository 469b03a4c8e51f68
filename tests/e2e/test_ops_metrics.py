"""``/metrics`` of a real ``orderguard serve`` moves as orders are placed, fail and recover,
and is parsed with ``prometheus_client``'s own parser.

The provider is ``orderguard sandbox-provider`` in its own process, switched at run time
to lose the answer of the first charge (the charge happened, the answer came after the
payment time budget: outcome unknown until the janitor asks again) and to an outage that
opens the circuit breaker until it ends.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.ops_harness import WEBHOOK_SECRET, sandbox_provider
from tests.e2e.procs import Server, clean_env
from tests.factories import key, order_body

pytestmark = pytest.mark.slow
#: Order states that wait on the provider's word.
_WAITING_ON_PROVIDER = ("payment_unknown", "payment_pending", "action_required")

Metrics = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(client: httpx.Client) -> Metrics:
    """Every sample of ``/metrics``, keyed by name and sorted labels."""
    answer = client.get("/metrics")
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
    }


def value(metrics: Metrics, name: str, **labels: str) -> float:
    """One sample's value (0 when absent)."""
    return metrics.get((name, tuple(sorted(labels.items()))), 0.0)


def eventually(client: httpx.Client, test: Callable[[Metrics], bool], within: float) -> Metrics:
    deadline = time.monotonic() + within
    while True:
        metrics = scrape(client)
        if test(metrics) or time.monotonic() > deadline:
            return metrics
        time.sleep(0.2)


def configure(server: Server, database_url: str, provider: str, **extra: str) -> Server:
    """``server`` on the sandbox provider at ``provider``, with a fast janitor and breaker."""
    server.env = clean_env(
        database_url,
        ORDERGUARD_PUBLIC_URL=server.url,
        ORDERGUARD_STRIPE_API_KEY="sk_test_ops",
        ORDERGUARD_STRIPE_BASE_URL=provider,
        ORDERGUARD_STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET,
        ORDERGUARD_PAYMENT_TIME_BUDGET_S="1",
        ORDERGUARD_RECHECK_SCALE="0.01",
        ORDERGUARD_WORKER_ROUND_S="0.2",
        ORDERGUARD_BREAKER_THRESHOLD="2",
        ORDERGUARD_BREAKER_COOL_DOWN_S="3",
        ORDERGUARD_METRICS_CACHE_S="0",
        **extra,
    )
    return server


def test_metrics_follow_orders_placed_failed_and_recovered(
    database_url: str, tmp_path: Path
) -> None:
    # one process: the test follows one circuit breaker, which the API and the worker share
    # (under --processes N each process has its own: tests/e2e/test_serve_processes.py)
    server = Server(env={}, cwd=tmp_path, options=("--processes", "1"))
    with sandbox_provider(tmp_path, f"{server.url}/v1/webhooks/stripe") as provider:
        configure(server, database_url, provider).start()
        try:
            with httpx.Client(base_url=server.url, timeout=30) as client:
                _place_fail_recover(client, provider)
        finally:
            server.stop()


def _place_fail_recover(client: httpx.Client, provider: str) -> None:
    before = scrape(client)
    assert value(before, "orderguard_orders", state="paid") == 0
    assert value(before, "orderguard_provider_circuit_state", provider="stripe") == 0
    time.sleep(0.5)  # let the worker's start-up sweep pass before faults are switched on
    faults = {"timeout_after": 1.0, "hold_s": 3.0, "limit": 1}
    assert httpx.post(f"{provider}/_sandbox/faults", json=faults).status_code == 200

    # 1. the provider's answer is lost: unknown until the provider is heard from again
    lost = client.post(
        "/v1/orders", json=order_body(payment={"method": "pm_card_visa"}), headers=key()
    )
    assert lost.status_code in {201, 202}, lost.text
    # unknown (answered at once, or found paid by asking the provider right away)
    assert lost.json()["state"] in {"payment_unknown", "paid"}
    after_lost = scrape(client)
    # the lost answer is one charge counted as lost: ``timeout`` when the payment time budget
    # cancelled it, ``outcome_unknown`` when the HTTP client's own timeout (the same budget)
    # fired first; both timers run out together, so either may win
    charges = {
        dict(labels)["outcome"]: v
        for (name, labels), v in after_lost.items()
        if name == "orderguard_provider_calls_total"
        and dict(labels)["operation"] == "create_payment"
        and v
    }
    assert charges in ({"timeout": 1}, {"outcome_unknown": 1}), charges
    recovered = eventually(
        client, lambda m: value(m, "orderguard_orders", state="paid") == 1, within=30
    )
    assert value(recovered, "orderguard_orders", state="paid") == 1
    assert value(recovered, "orderguard_orders", state="payment_unknown") == 0
    # found paid by the provider's webhook or by asking the provider again
    asked = sum(
        v
        for (name, labels), v in recovered.items()
        if name == "orderguard_provider_calls_total"
        and ("outcome", "ok") in labels
        and dict(labels)["operation"] in {"retrieve_payment", "find_payments"}
    )
    assert asked + value(recovered, "orderguard_webhooks_processed_total", provider="stripe") >= 1

    # 2. a decline: payment_failed, an unfinished order in the youngest age bucket
    headers = key()
    declined_body = order_body(payment={"method": "pm_card_chargeDeclined"})
    declined = client.post("/v1/orders", json=declined_body, headers=headers)
    assert declined.status_code == 201, declined.text
    assert declined.json()["state"] == "payment_failed"
    failed = scrape(client)
    assert value(failed, "orderguard_orders", state="payment_failed") == 1
    assert value(failed, "orderguard_open_orders", state="payment_failed", age="0-1m") == 1
    assert value(failed, "orderguard_oldest_open_order_age_seconds", state="payment_failed") > 0

    # 3. the same request again is a replay; a bad one is refused
    assert client.post("/v1/orders", json=declined_body, headers=headers).status_code == 201
    assert client.post("/v1/orders", json={"currency": "EUR"}, headers=key()).status_code == 422

    # 4. the shopper pays again with another card: recovered, and the paying request's id is
    # on the transitions it caused. The sandbox's webhook for this charge is held back half a
    # second, or it can settle the order first and the request would cause no `paid` entry.
    held = {"webhook_delay": 1.0, "webhook_delay_ms": [500, 500]}
    assert httpx.post(f"{provider}/_sandbox/faults", json=held).status_code == 200
    order_id = declined.json()["id"]
    again = client.post(
        f"/v1/orders/{order_id}/payments",
        json={"payment": {"method": "pm_card_visa"}},
        headers={**key(), "X-Request-ID": "req-pay-again-1"},
    )
    assert again.status_code == 201, again.text
    timeline = client.get(f"/v1/orders/{order_id}").json()["timeline"]
    caused = [e for e in timeline if e.get("request_id") == "req-pay-again-1"]
    assert caused and caused[-1]["to_state"] == "paid", timeline
    assert httpx.post(f"{provider}/_sandbox/faults", json={}).status_code == 200

    # 5. an outage: calls fail, the circuit opens, orders wait; it ends and they are paid
    assert httpx.post(f"{provider}/_sandbox/outage", json={"seconds": 6}).status_code == 200
    waiting = [
        client.post(
            "/v1/orders", json=order_body(payment={"method": "pm_card_visa"}), headers=key()
        ).json()["state"]
        for _ in range(2)
    ]
    assert waiting == ["payment_unknown", "payment_unknown"]  # 503s: the provider may have acted
    outage = scrape(client)
    assert value(outage, "orderguard_provider_circuit_state", provider="stripe") == 2
    assert (
        value(
            outage,
            "orderguard_provider_calls_total",
            provider="stripe",
            operation="create_payment",
            outcome="server_error",
        )
        >= 2
    )
    assert value(outage, "orderguard_orders", state="payment_unknown") == 2
    assert value(outage, "orderguard_open_orders", state="payment_unknown", age="0-1m") == 2

    # settled once nothing waits on the provider: a re-sent charge's ``payment_intent.created``
    # webhook (no outcome yet) may move its order from unknown to pending for a moment
    final = eventually(
        client,
        lambda m: not any(value(m, "orderguard_orders", state=s) for s in _WAITING_ON_PROVIDER),
        within=60,
    )
    by_state = {
        dict(labels)["state"]: v
        for (name, labels), v in final.items()
        if name == "orderguard_orders" and v
    }
    assert value(final, "orderguard_orders", state="paid") == 4, by_state
    assert value(final, "orderguard_orders", state="received") == 0
    assert value(final, "orderguard_orders", state="payment_failed") == 0
    assert value(final, "orderguard_open_orders", state="payment_failed", age="0-1m") == 0
    assert value(final, "orderguard_provider_circuit_state", provider="stripe") == 0
    assert value(final, "orderguard_intake_requests_total", outcome="created") == 4
    assert value(final, "orderguard_intake_requests_total", outcome="replayed") == 1
    assert value(final, "orderguard_intake_requests_total", outcome="invalid") == 1
    assert value(final, "orderguard_intake_duration_seconds_count", outcome="created") == 4
    assert (
        value(
            final,
            "orderguard_provider_call_duration_seconds_count",
            provider="stripe",
            operation="create_payment",
            outcome="ok",
        )
        >= 4
    )
    assert value(final, "orderguard_webhooks_received_total", provider="stripe") >= 5
    assert value(final, "orderguard_webhooks_failures_total", provider="stripe") == 0
    assert value(final, "orderguard_janitor_backlog") == 0
    assert value(final, "orderguard_flagged_orders") == 0
    assert 0 <= value(final, "orderguard_worker_heartbeat_age_seconds") < 10

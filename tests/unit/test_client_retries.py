"""The client's retry policy: what is sent again (only replay-safe requests, with the same
Idempotency-Key, after no answer, 5xx, 429 or request-in-flight), what never is (a 4xx
about the request), and that waits follow Retry-After and stop at the deadline.

The server here is an ``httpx.MockTransport`` answering a script: these tests are about
what the client does with each answer (the real server is in tests/e2e/test_client.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from orderguard.client import (
    ApiError,
    AsyncOrderguardClient,
    InvalidRequestError,
    NoAnswerError,
    OrderguardClient,
    RequestInFlightError,
    RetryPolicy,
    ServerError,
    UnexpectedAnswerError,
)
from orderguard.client.retry import RetryPlan, backoff_s, retry_after_s

POLICY = RetryPolicy(attempts=5, initial_s=0.1, max_wait_s=1.0, deadline_s=30.0)
ORDER = {
    "id": "ord_1",
    "state": "paid",
    "merchant_reference": None,
    "amount_total": 100,
    "currency": "EUR",
    "livemode": False,
    "created_at": "2026-12-04T12:00:00Z",
    "updated_at": "2026-12-04T12:00:00Z",
    "next_action": None,
    "status_url": "http://127.0.0.1/orders/ord_1?token=t",
}
Answer = httpx.Response | Exception


def problem(status: int, slug: str, **headers: str) -> httpx.Response:
    document = {"type": f"/problems/{slug}", "title": slug, "status": status, "detail": slug}
    return httpx.Response(status, json=document, headers=headers)


class Script:
    """A server answering each request with the next scripted answer, recording requests."""

    def __init__(self, *answers: Answer) -> None:
        self.answers: Iterator[Answer] = iter(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = next(self.answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def keys(self) -> list[str | None]:
        return [r.headers.get("idempotency-key") for r in self.requests]


class FakeTime:
    """A clock that moves only when the client sleeps."""

    def __init__(self) -> None:
        self.now, self.slept = 0.0, list[float]()

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds

    async def asleep(self, seconds: float) -> None:
        self.sleep(seconds)


def client(script: Script, time: FakeTime, policy: RetryPolicy = POLICY) -> OrderguardClient:
    return OrderguardClient(
        "http://og.test",
        "og_sk_test",
        retry=policy,
        transport=httpx.MockTransport(script),
        sleep=time.sleep,
        clock=lambda: time.now,
    )


BODY = {"currency": "EUR", "items": [], "customer": {}}


def test_a_lost_answer_and_a_503_are_retried_with_one_key() -> None:
    script = Script(
        httpx.ReadTimeout("lost"),
        httpx.RemoteProtocolError("peer closed"),
        problem(503, "storage-unavailable"),
        httpx.Response(201, json=ORDER),
    )
    placed = client(script, FakeTime()).create_order(BODY)
    assert placed.id == "ord_1"
    [key] = set(script.keys())
    assert key and len(script.requests) == 4


def test_the_callers_key_is_the_one_sent() -> None:
    script = Script(problem(502, "bad-gateway"), httpx.Response(200, json=ORDER))
    client(script, FakeTime()).create_order(BODY, idempotency_key="cart-42")
    assert script.keys() == ["cart-42", "cart-42"]


def test_each_call_without_a_key_gets_its_own() -> None:
    script = Script(httpx.Response(201, json=ORDER), httpx.Response(201, json=ORDER))
    shop = client(script, FakeTime())
    shop.create_order(BODY)
    shop.create_order(BODY)
    first, second = script.keys()
    assert first and second and first != second


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 413, 415, 422])
def test_an_answer_about_the_request_is_final_at_once(status: int) -> None:
    script = Script(problem(status, "validation-error"), httpx.Response(201, json=ORDER))
    with pytest.raises(ApiError) as err:
        client(script, FakeTime()).create_order(BODY)
    assert len(script.requests) == 1
    assert err.value.status == status


def test_retry_after_is_waited_for_on_429_and_request_in_flight() -> None:
    script = Script(
        problem(429, "too-many", **{"Retry-After": "3"}),
        problem(409, "request-in-flight", **{"Retry-After": "2"}),
        httpx.Response(200, json=ORDER),
    )
    time = FakeTime()
    client(script, time).create_order(BODY)
    assert len(time.slept) == 2
    assert 3 <= time.slept[0] < 3 + POLICY.initial_s and 2 <= time.slept[1] < 2.5


def test_request_in_flight_past_the_deadline_is_a_typed_error_with_retry_after() -> None:
    policy = RetryPolicy(attempts=5, initial_s=0.1, max_wait_s=1.0, deadline_s=5.0)
    script = Script(*[problem(409, "request-in-flight", **{"Retry-After": "2"})] * 5)
    with pytest.raises(RequestInFlightError) as err:
        client(script, FakeTime(), policy).create_order(BODY, idempotency_key="k")
    assert err.value.retry_after == 2 and err.value.idempotency_key == "k"
    assert len(script.requests) == 3  # at 0, ~2, ~4 s; a fourth would pass 5 s


def test_no_wait_runs_past_the_deadline() -> None:
    policy = RetryPolicy(attempts=100, initial_s=1.0, max_wait_s=4.0, deadline_s=10.0)
    script = Script(*[problem(500, "internal-error")] * 100)
    time = FakeTime()
    with pytest.raises(ServerError):
        client(script, time, policy).get_order("ord_1")
    assert time.now < policy.deadline_s
    assert len(script.requests) >= 3


def test_attempts_are_capped() -> None:
    script = Script(*[httpx.ConnectError("refused")] * 10)
    with pytest.raises(NoAnswerError) as err:
        client(script, FakeTime()).create_order(BODY, idempotency_key="k")
    assert len(script.requests) == POLICY.attempts == err.value.attempts
    assert err.value.idempotency_key == "k" and "k" in str(err.value)


def test_a_post_without_a_key_is_sent_again_only_if_it_never_left() -> None:
    refused = Script(httpx.ConnectError("refused"), httpx.Response(200, json=ORDER))
    client(refused, FakeTime()).cancel("ord_1")
    assert len(refused.requests) == 2
    lost = Script(httpx.ReadTimeout("lost"), httpx.Response(200, json=ORDER))
    with pytest.raises(NoAnswerError) as err:
        client(lost, FakeTime()).cancel("ord_1")
    assert len(lost.requests) == 1 and err.value.idempotency_key is None
    failed = Script(problem(503, "provider-unavailable"), httpx.Response(200, json=ORDER))
    with pytest.raises(ServerError):
        client(failed, FakeTime()).cancel("ord_1")
    assert len(failed.requests) == 1


def test_an_answer_that_is_not_the_apis_is_not_taken_for_one() -> None:
    script = Script(httpx.Response(200, text="<html>proxy</html>"))
    with pytest.raises(UnexpectedAnswerError):
        client(script, FakeTime()).create_order(BODY)


def test_a_proxys_error_page_is_a_typed_error_too() -> None:
    script = Script(*[httpx.Response(502, text="<html>bad gateway</html>")] * POLICY.attempts)
    with pytest.raises(ServerError) as err:
        client(script, FakeTime()).get_order("ord_1")
    assert err.value.status == 502 and "bad gateway" in err.value.detail


async def test_the_async_client_follows_the_same_policy() -> None:
    script = Script(httpx.ReadError("reset"), problem(422, "validation-error"))
    time = FakeTime()
    async with AsyncOrderguardClient(
        "http://og.test",
        retry=POLICY,
        transport=httpx.MockTransport(script),
        sleep=time.asleep,
        clock=lambda: time.now,
    ) as shop:
        with pytest.raises(InvalidRequestError):
            await shop.create_order(BODY, idempotency_key="k")
    assert script.keys() == ["k", "k"] and len(time.slept) == 1


# --- the pure parts -------------------------------------------------------------------------


def test_backoff_doubles_up_to_its_ceiling_and_is_jittered_below_it() -> None:
    top: Callable[[], float] = lambda: 0.999999  # noqa: E731
    ceilings = [backoff_s(tries=n, policy=POLICY, draw=top) for n in range(1, 7)]
    assert ceilings == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0], rel=1e-4)
    assert backoff_s(tries=3, policy=POLICY, draw=lambda: 0.0) == 0.0


def test_retry_after_reads_seconds_and_http_dates() -> None:
    now = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
    later = format_datetime(now + timedelta(seconds=7), usegmt=True)
    assert retry_after_s("5") == 5.0
    assert retry_after_s(later, now=now) == 7.0
    assert retry_after_s("soon") is None and retry_after_s(None) is None


def test_a_plan_for_a_request_that_is_not_replay_safe_never_waits_on_an_answer() -> None:
    plan = RetryPlan(POLICY, replay_safe=False, clock=lambda: 0.0)
    plan.sent()
    assert plan.after_answer(503, "storage-unavailable", None) is None
    assert plan.after_no_answer(httpx.ReadTimeout("x")) is None
    assert plan.after_no_answer(httpx.ConnectError("x")) is not None


def test_a_request_httpx_cannot_send_is_not_tried_again() -> None:
    plan = RetryPlan(POLICY, replay_safe=True, clock=lambda: 0.0)
    plan.sent()
    assert plan.after_no_answer(httpx.UnsupportedProtocol("ftp://")) is None
    assert plan.after_no_answer(httpx.LocalProtocolError("bad header")) is None
    assert plan.after_no_answer(httpx.PoolTimeout("busy")) is not None


def test_a_policy_that_cannot_send_is_refused() -> None:
    with pytest.raises(ValueError):
        RetryPolicy(attempts=0)

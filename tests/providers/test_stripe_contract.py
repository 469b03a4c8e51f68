"""The sandbox against Stripe's own OpenAPI description, and the adapter under every fault.

The suite-wide plugin (``tests/stripe_contract_plugin.py``) checks what every test makes the
sandbox say. These tests show that check can fail (a field removed from a sandbox object is
reported, naming the object, the field and the test), pin the validator's reading of the
description (nullable, enums, expandable fields), and drive the Stripe adapter against the
sandbox under each fault kind and each scripted Stripe error, checking every answer and
webhook that came back: the paths the adapter takes with real Stripe are the tested paths.

Each test records into a log of its own (``ORDERGUARD_SANDBOX_CONTRACT_LOG`` set by
``monkeypatch``), so what it checks is exactly what it produced.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import fields
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from orderguard.providers.base import (
    ProviderError,
    ProviderOutcomeUnknown,
    ProviderRateLimited,
    ProviderServerError,
)
from orderguard.providers.stripe.adapter import StripeProvider
from orderguard.providers.stripe.sandbox import FaultProfile, objects, serve_in_thread
from orderguard.providers.stripe.sandbox.recording import ENV
from tests.providers.conftest import StartSandbox, charge_request
from tests.providers.harness import API_KEY, SECRET, FakeClock
from tests.providers.receiver import Receiver
from tests.providers.sandbox_client import ledger, script_answer, set_faults
from tests.stripe_contract import (
    Problem,
    check_event,
    check_object,
    check_record,
    check_response,
    openapi_to_json_schema,
)
from tests.stripe_contract_plugin import ContractLog, report

#: Faults on API calls, and on webhooks: every probability a FaultProfile has. The last two
#: call faults come with the sandbox that is as hard as Stripe (a 500 Stripe saved under the
#: key; a refund that starts pending); where the sandbox lacks them their tests are skipped.
CALL_FAULTS = (
    "latency",
    "error_before",
    "error_after",
    "timeout_after",
    "rate_limit",
    "outage",
    "error_saved",
    "refund_pending",
)
WEBHOOK_FAULTS = ("webhook_drop", "webhook_duplicate", "webhook_delay", "webhook_reorder")
#: The operations the sandbox serves, as the description names them.
OPERATIONS = {
    ("POST", "/v1/payment_intents"),
    ("GET", "/v1/payment_intents/search"),
    ("GET", "/v1/payment_intents/{intent}"),
    ("POST", "/v1/payment_intents/{intent}/cancel"),
    ("POST", "/v1/refunds"),
    ("GET", "/v1/charges"),
}
#: Generous: webhook retries and a reorder's flush take seconds.
DEADLINE_S = 30.0

Op = Callable[[StripeProvider], Awaitable[object]]


@pytest.fixture
def contract_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ContractLog:
    """This test's own contract log (the suite-wide one sees nothing of it)."""
    path = tmp_path / "contract.jsonl"
    monkeypatch.setenv(ENV, str(path))
    return ContractLog(path)


def records(log: ContractLog) -> list[dict[str, Any]]:
    """Every line of the log so far, parsed."""
    text = log.path.read_text() if log.path.exists() else ""
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def template(path: str) -> str:
    """``/v1/payment_intents/pi_1/cancel`` -> ``/v1/payment_intents/{intent}/cancel``."""
    parts = path.split("/")
    if len(parts) > 3 and parts[2] == "payment_intents" and parts[3] != "search":
        parts[3] = "{intent}"
    return "/".join(parts)


async def wait_until(ready: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not await ready():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


# --- the validator reads the description as Stripe means it ------------------------------


def complete_intent(**changes: Any) -> dict[str, Any]:
    intent = objects.payment_intent(
        {"amount": 2599, "currency": "eur", "payment_method": "pm_card_visa"},
        intent_id="pi_contract",
        created=1_700_000_000,
    )
    return {**intent, **changes}


def fields_of(problems: list[Problem]) -> list[tuple[str, str]]:
    return [(p.field, p.message) for p in problems]


def test_nullable_becomes_a_null_alternative_in_json_schema() -> None:
    assert openapi_to_json_schema(
        {"type": "string", "enum": ["a", "b"], "nullable": True, "format": "unix-time"}
    ) == {"type": ["string", "null"], "enum": ["a", "b", None]}
    assert openapi_to_json_schema({"anyOf": [{"$ref": "#/x"}], "nullable": True}) == {
        "anyOf": [{"$ref": "#/x"}, {"type": "null"}]
    }
    assert openapi_to_json_schema({"$ref": "#/x", "nullable": True}) == {
        "anyOf": [{"$ref": "#/x"}, {"type": "null"}]
    }


def test_a_complete_sandbox_intent_conforms() -> None:
    assert check_object("payment_intent", complete_intent()) == []


def test_every_sandbox_builder_makes_what_stripe_describes() -> None:
    intent = complete_intent()
    paid = objects.charge(intent, status="succeeded", created=1)
    failed = objects.charge(intent, status="failed", created=1, failure_code="card_declined")
    made = objects.refund(paid, amount=100, created=1, reason="requested_by_customer")
    assert check_object("payment_intent", intent) == []
    assert check_object("charge", paid) == []
    assert check_object("charge", failed) == []
    assert check_object("refund", made) == []
    assert check_event(objects.event("charge.refunded", paid, created=1)) == []
    assert check_event(objects.event("payment_intent.created", intent, created=1)) == []
    declined = {**intent, "status": "requires_payment_method", "latest_charge": failed["id"]}
    for body in (
        objects.error("api_error", "boom", code=None, param=None),
        objects.rate_limited(),
        objects.card_declined(declined),
        objects.unexpected_state({**intent, "status": "succeeded"}, "cancel", ("canceled",)),
        objects.unrecognized_url("GET", "/v1/payouts"),
    ):
        assert check_object("error", body) == [], body
    listing = objects.list_page([paid, failed], has_more=False, url="/v1/charges")
    assert check_response("GET", "/v1/charges", 200, listing) == []
    found = objects.search_result([intent], "/v1/payment_intents/search")
    assert check_response("GET", "/v1/payment_intents/search", 200, found) == []


def test_a_missing_required_field_is_named() -> None:
    intent = complete_intent()
    del intent["capture_method"]
    assert fields_of(check_object("payment_intent", intent)) == [
        ("capture_method", "missing (Stripe's description marks it required)")
    ]


def test_a_missing_field_stripe_always_sends_is_named() -> None:
    intent = complete_intent()
    del intent["canceled_at"]
    assert fields_of(check_object("payment_intent", intent)) == [
        ("canceled_at", "missing (Stripe always sends it, null when empty)")
    ]


def test_null_only_where_the_description_allows_it() -> None:
    assert check_object("payment_intent", complete_intent(canceled_at=None)) == []
    [problem] = check_object("payment_intent", complete_intent(capture_method=None))
    assert problem.field == "capture_method"
    [problem] = check_object("payment_intent", complete_intent(canceled_at="yesterday"))
    assert problem.field == "canceled_at"


def test_an_enum_value_stripe_does_not_have_is_named() -> None:
    [problem] = check_object("payment_intent", complete_intent(status="paid"))
    assert problem.field == "status"
    assert problem.what == "payment_intent pi_contract"


def test_an_expandable_field_takes_an_id_or_the_whole_object() -> None:
    assert check_object("payment_intent", complete_intent(latest_charge="ch_1")) == []
    charge = objects.charge(complete_intent(), status="succeeded", created=1_700_000_000)
    assert check_object("payment_intent", complete_intent(latest_charge=charge)) == []
    del charge["captured"]
    assert fields_of(check_object("payment_intent", complete_intent(latest_charge=charge))) == [
        ("latest_charge.captured", "missing (Stripe's description marks it required)")
    ]


def test_error_bodies_are_held_to_stripes_error_types() -> None:
    assert check_response("POST", "/v1/refunds", 429, objects.rate_limited()) == []
    bad = {"error": {"type": "rate_limit_error", "message": "slow down"}}
    [problem] = check_response("POST", "/v1/refunds", 429, bad)
    assert problem.field == "error.type"
    assert problem.what == "error in POST /v1/refunds -> 429"
    [problem] = check_response(
        "POST", "/v1/refunds", 400, {"error": {"type": "api_error", "param": None}}
    )
    assert problem.field == "error.param"


def test_answers_are_checked_against_their_operation() -> None:
    listing = objects.list_page([complete_intent()], has_more=False, url="/v1/charges")
    problems = check_response("GET", "/v1/charges", 200, listing)
    assert problems and all(p.field.startswith("data.0") for p in problems)  # not a charge
    [problem] = check_response("POST", "/v1/payouts", 200, {})
    assert problem.message == "no such operation in the vendored Stripe subset"
    [problem] = check_response("GET", "/v1/charges", 200, None)
    assert problem.message.startswith("the body is not JSON")
    assert check_response("GET", "/v1/nothing", 404, objects.unrecognized_url("GET", "/v1/x")) == []
    # 499 is the sandbox's note that the client hung up before sending its body: no answer
    assert check_response("POST", "/v1/payment_intents", 499, None) == []
    [problem] = check_response("POST", "/v1/payment_intents", 499, {"error": {}})
    assert problem.field == "error.type"


def test_an_event_is_checked_with_its_type_and_its_object() -> None:
    intent = complete_intent(status="succeeded")
    assert check_event(objects.event("payment_intent.succeeded", intent, created=1)) == []
    [problem] = check_event(objects.event("payment_intent.paid", intent, created=1))
    assert (problem.field, problem.message) == (
        "type",
        "'payment_intent.paid' is not an event type Stripe sends",
    )
    [problem] = check_event(objects.event("charge.refunded", intent, created=1))
    assert problem.field == "data.object.object"
    del intent["status"]
    [problem] = check_event(objects.event("payment_intent.succeeded", intent, created=1))
    assert problem.field == "data.object.status"


# --- the contract test fails when a sandbox object loses a field -------------------------


async def test_removing_a_required_field_from_a_sandbox_object_is_reported(
    contract_log: ContractLog,
    start_sandbox: StartSandbox,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    build = objects.payment_intent

    def without_capture_method(*args: Any, **kwargs: Any) -> dict[str, Any]:
        intent = build(*args, **kwargs)
        del intent["capture_method"]
        return intent

    monkeypatch.setattr(objects, "payment_intent", without_capture_method)
    with start_sandbox() as url:
        provider = StripeProvider(api_key=API_KEY, webhook_secret=SECRET, base_url=url)
        try:
            await provider.create_payment(charge_request())
        finally:
            await provider.aclose()
    problems = contract_log.problems()
    assert [(str(p.field), p.message) for p, _ in problems] == [
        ("capture_method", "missing (Stripe's description marks it required)")
    ]
    [(problem, test)] = problems
    assert problem.what.startswith("payment_intent pi_")
    assert problem.what.endswith("in POST /v1/payment_intents -> 200")
    assert test is not None and test.startswith(request.node.nodeid)
    message = report(problems, request.node.nodeid)
    assert request.node.nodeid in message
    assert "field capture_method: missing" in message


async def test_a_webhook_missing_a_field_is_reported(
    contract_log: ContractLog,
    start_sandbox: StartSandbox,
    hook_url: str,
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    build = objects.event

    def without_livemode(*args: Any, **kwargs: Any) -> dict[str, Any]:
        evt = build(*args, **kwargs)
        del evt["livemode"]
        return evt

    monkeypatch.setattr(objects, "event", without_livemode)
    with start_sandbox(webhook_url=hook_url) as url:
        provider = StripeProvider(api_key=API_KEY, webhook_secret=SECRET, base_url=url)
        try:
            await provider.create_payment(charge_request())
        finally:
            await provider.aclose()
        await receiver.wait_for(1, timeout_s=DEADLINE_S)
    problems = [p for p, _ in contract_log.problems()]
    assert problems, "the broken event went unnoticed"
    assert {(p.field, p.message) for p in problems} == {
        ("livemode", "missing (Stripe's description marks it required)")
    }
    assert all(p.what.startswith("event evt_") for p in problems)


# --- the adapter against the sandbox, under every fault ----------------------------------


def probabilities() -> set[str]:
    """The fault kinds this sandbox has (its probability settings)."""
    return {f.name for f in fields(FaultProfile) if f.type == "float" and not f.name.endswith("_s")}


def test_the_suite_covers_every_fault_kind() -> None:
    assert probabilities() <= set(CALL_FAULTS) | set(WEBHOOK_FAULTS)
    assert set(CALL_FAULTS[:6]) | set(WEBHOOK_FAULTS) <= probabilities()


@pytest.fixture
def receiver() -> Receiver:
    return Receiver()


@pytest.fixture
def hook_url(receiver: Receiver) -> Iterator[str]:
    with serve_in_thread(receiver.app()) as url:
        yield f"{url}/hooks"


@pytest.fixture
async def adapter(start_sandbox: StartSandbox) -> AsyncIterator[tuple[str, StripeProvider]]:
    """A sandbox and the Stripe adapter on it (a read timeout shorter than a held answer)."""
    with start_sandbox() as url:
        provider = StripeProvider(
            api_key=API_KEY, webhook_secret=SECRET, base_url=url, timeout_s=0.5, page_size=2
        )
        try:
            yield url, provider
        finally:
            await provider.aclose()


#: What the adapter raises when each call fault strikes a write and a read (None: no error).
EXPECTED_ERRORS: dict[str, tuple[type[ProviderError] | None, type[ProviderError] | None]] = {
    "latency": (None, None),
    "error_before": (ProviderServerError, ProviderServerError),
    "error_after": (ProviderServerError, None),
    "timeout_after": (ProviderOutcomeUnknown, None),
    "rate_limit": (ProviderRateLimited, ProviderRateLimited),
    "outage": (ProviderServerError, ProviderServerError),
    "error_saved": (ProviderServerError, None),
    "refund_pending": (None, None),
}
#: The status a fault leaves in the log.
FAULT_STATUS = {"error_before": 500, "error_after": 500, "rate_limit": 429, "outage": 503}


@pytest.mark.parametrize("fault", CALL_FAULTS)
async def test_every_answer_under_a_call_fault_is_stripes_shape(
    fault: str,
    contract_log: ContractLog,
    adapter: tuple[str, StripeProvider],
    clock: FakeClock,
) -> None:
    assert fault in probabilities(), f"the sandbox has no fault {fault}"
    url, provider = adapter
    paid = await provider.create_payment(charge_request())
    held = await provider.create_payment(charge_request(method="pm_card_authenticationRequired"))
    assert paid.provider_ref is not None and held.provider_ref is not None
    paid_ref, held_ref, order = paid.provider_ref, held.provider_ref, paid.order_id
    assert order is not None
    now = datetime.fromtimestamp(clock.now, UTC)
    writes: dict[str, Op] = {
        "create": lambda p: p.create_payment(charge_request()),
        "decline": lambda p: p.create_payment(charge_request(method="pm_card_chargeDeclined")),
        "cancel succeeded": lambda p: p.cancel_payment(paid_ref),
        "cancel held": lambda p: p.cancel_payment(held_ref),
        "refund": lambda p: p.refund(paid_ref, amount=100, idempotency_key=f"refund-{fault}"),
    }
    reads: dict[str, Op] = {
        "retrieve": lambda p: p.retrieve_payment(paid_ref),
        "search": lambda p: p.find_payments(order),
        "charges": lambda p: p.list_successful_charges(
            now - timedelta(hours=1), now + timedelta(hours=1)
        ),
    }
    settings = {fault: 1.0, "hold_s": 2.0, "outage_s": 0.05, "latency_ms": [1, 5]}
    raised: dict[str, type[ProviderError] | None] = {}
    for name, op in [*writes.items(), *reads.items()]:
        await set_faults(url, **settings)  # the fault strikes every call of this operation
        try:
            await op(provider)
            raised[name] = None
        except ProviderError as exc:
            raised[name] = type(exc)
        await set_faults(url)
        await asyncio.sleep(0.06 if fault == "outage" else 0)  # let the outage window end

    write_error, read_error = EXPECTED_ERRORS[fault]
    expected = {**dict.fromkeys(writes, write_error), **dict.fromkeys(reads, read_error)}
    if fault == "error_saved":  # cancelling a succeeded intent is refused (400): nothing saved
        expected["cancel succeeded"] = None
    assert raised == expected
    await set_faults(url)  # and each once more, without faults: every operation is answered
    for op in [*writes.values(), *reads.values()]:
        try:
            await op(provider)
        except ProviderError:
            pass  # a 500 Stripe saved under the key is answered again, as Stripe does
    lines = records(contract_log)
    assert {(r["method"], template(r["path"])) for r in lines} == OPERATIONS
    if fault in FAULT_STATUS:
        assert FAULT_STATUS[fault] in {r["status"] for r in lines}
    assert [str(p) for p, _ in contract_log.problems()] == []


SCRIPTED = {
    "idempotency_error": {"status": 400, "type": "idempotency_error"},
    "key_in_use": {
        "status": 409,
        "type": "invalid_request_error",
        "code": "idempotency_key_in_use",
        "should_retry": "true",
    },
    "api_error_after_the_charge": {
        "status": 500,
        "type": "api_error",
        "should_retry": "true",
        "after": True,
    },
    "card_error": {"status": 402, "type": "card_error", "code": "card_declined"},
}


@pytest.mark.parametrize("answer", sorted(SCRIPTED))
async def test_every_scripted_stripe_error_is_stripes_shape(
    answer: str, contract_log: ContractLog, adapter: tuple[str, StripeProvider]
) -> None:
    url, provider = adapter
    await script_answer(url, **SCRIPTED[answer])
    try:
        await provider.create_payment(charge_request())
    except ProviderError:
        pass  # how the adapter maps each error is the adapter tests' business
    [line] = records(contract_log)
    assert (line["method"], line["path"], line["status"]) == (
        "POST",
        "/v1/payment_intents",
        SCRIPTED[answer]["status"],
    )
    assert line["body"]["error"]["type"] == SCRIPTED[answer]["type"]
    assert [str(p) for p, _ in contract_log.problems()] == []


async def test_a_scripted_error_type_stripe_does_not_have_is_reported(
    contract_log: ContractLog, adapter: tuple[str, StripeProvider]
) -> None:
    url, provider = adapter
    await script_answer(url, status=429, type="rate_limit_error")
    with pytest.raises(ProviderRateLimited):
        await provider.create_payment(charge_request())
    assert [p.field for p, _ in contract_log.problems()] == ["error.type"]


@pytest.mark.parametrize("fault", WEBHOOK_FAULTS)
async def test_every_webhook_under_a_webhook_fault_is_stripes_shape(
    fault: str,
    contract_log: ContractLog,
    start_sandbox: StartSandbox,
    hook_url: str,
    receiver: Receiver,
) -> None:
    profile = FaultProfile(**{fault: 1.0}, webhook_delay_ms=(10, 50))  # type: ignore[arg-type]
    with start_sandbox(webhook_url=hook_url, faults=profile) as url:
        provider = StripeProvider(api_key=API_KEY, webhook_secret=SECRET, base_url=url)
        try:
            paid = await provider.create_payment(charge_request())
            assert paid.provider_ref is not None
            await provider.create_payment(charge_request(method="pm_card_chargeDeclined"))
            held = await provider.create_payment(
                charge_request(method="pm_card_authenticationRequired")
            )
            assert held.provider_ref is not None
            await provider.cancel_payment(held.provider_ref)
            await provider.refund(paid.provider_ref, amount=100, idempotency_key="refund-1")
            copies = 2 if fault == "webhook_duplicate" else 1

            async def all_sent() -> bool:
                events = (await ledger(url))["events"]
                if fault == "webhook_drop":
                    return all(e["_delivery"]["state"] == "dropped" for e in events)
                posted = [r["body"]["id"] for r in records(contract_log) if r["kind"] == "webhook"]
                return all(posted.count(e["id"]) >= copies for e in events)

            await wait_until(all_sent, f"every webhook under {fault}")
            events = (await ledger(url))["events"]
            kinds = {e["type"] for e in events}
            assert {"payment_intent.succeeded", "payment_intent.payment_failed"} <= kinds
            assert {"payment_intent.canceled", "charge.refunded"} <= kinds
            if fault != "webhook_drop":  # the adapter reads what came
                await receiver.wait_for(len(events) * copies, timeout_s=DEADLINE_S)
                for body, headers in receiver.deliveries:
                    parsed = provider.parse_webhook(body, headers)
                    assert parsed.event_id == json.loads(body)["id"]
        finally:
            await provider.aclose()
    hooks = [r for r in records(contract_log) if r["kind"] == "webhook"]
    assert len(hooks) == (0 if fault == "webhook_drop" else len(events) * copies)
    assert [str(p) for p, _ in contract_log.problems()] == []


def test_every_recorded_line_kind_is_understood() -> None:
    [problem] = check_record({"kind": "telemetry"})
    assert problem.message == "unknown record kind 'telemetry'"


# --- the plugin fails a run: in the test that produced a body, or at the session's end ---

ROOT = Path(__file__).resolve().parents[2]
INNER_CONFTEST = """
import pytest
from orderguard.providers.stripe.sandbox import recording

pytest_plugins = ("tests.stripe_contract_plugin",)


@pytest.fixture(scope="session", autouse=True)
def a_sandbox_for_the_whole_session():
    yield
    late = {"object": "event", "id": "evt_late"}
    recording.record({"kind": "webhook", "url": "/hooks", "body": late})
"""
INNER_TESTS = """
from orderguard.providers.stripe.sandbox import recording


def test_answers_a_broken_intent():
    body = {"object": "payment_intent", "id": "pi_broken"}
    recording.record(
        {"kind": "response", "method": "POST", "path": "/v1/payment_intents", "status": 200,
         "body": body}
    )


def test_answers_nothing():
    pass
"""


@pytest.mark.slow
@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["one process", "xdist"])
def test_the_plugin_fails_the_test_and_the_run_naming_object_field_and_test(
    workers: list[str], tmp_path: Path
) -> None:
    (tmp_path / "conftest.py").write_text(INNER_CONFTEST)
    (tmp_path / "test_inner.py").write_text(INNER_TESTS)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    env.pop(ENV, None)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *workers],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 1, out
    assert "ERROR at teardown of test_answers_a_broken_intent" in out, out
    assert (
        "payment_intent pi_broken in POST /v1/payment_intents -> 200: field amount: missing "
        "(Stripe's description marks it required)"
    ) in out
    assert "test_inner.py::test_answers_a_broken_intent" in out
    assert "test_answers_nothing" not in out.split("short test summary")[-1]
    assert "sandbox bodies differ from Stripe's OpenAPI description (outside any test)" in out
    assert "event evt_late: field created: missing" in out
    assert "2 passed, 1 error" in out  # the broken one passed its call, failed its teardown

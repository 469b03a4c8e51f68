"""Every line ``orderguard serve`` writes during an end-to-end run is free of the shoppers'
personal data, at debug level (the most talkative), in JSON; and each line written while
serving a request carries that request's id."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.ops_harness import WEBHOOK_SECRET, sandbox_provider
from tests.e2e.procs import Server, clean_env
from tests.factories import key, order_body

pytestmark = pytest.mark.slow

SHOPPERS = [
    # name, email, phone as typed, phone in E.164, street, city, postal code, country
    ("Beatriz Quaresma", "beatriz.quaresma@correio.example", "912 345 678", "+351912345678",
     "Rua das Flores 17", "Porto", "4050-262", "PT"),
    ("Wang Xiuying", "xiuying.wang@mail.example.cn", "+86 138 0013 8000", "+8613800138000",
     "Jianguo Road 88", "Beijing", "100022", "CN"),
    ("Jonathan Pemberton", "j.pemberton+shop@example.co.uk", "07911 123456", "+447911123456",
     "221 Baker Street", "London", "NW1 6XE", "GB"),
]  # fmt: skip


def _body(shopper: tuple[str, ...], method: str) -> dict[str, object]:
    name, email, phone, _, street, city, postal, country = shopper
    body = order_body(payment={"method": method})
    body["customer"] = {
        "name": name,
        "email": email,
        "phone": phone,
        "shipping_address": {
            "line1": street, "city": city, "postal_code": postal, "country": country,
        },
    }  # fmt: skip
    return body


def test_no_log_line_of_an_end_to_end_run_holds_a_shoppers_personal_data(
    sqlite_url: str, tmp_path: Path
) -> None:
    server = Server(env={}, cwd=tmp_path)
    with sandbox_provider(tmp_path, f"{server.url}/v1/webhooks/stripe") as provider:
        server.env = clean_env(
            sqlite_url,
            ORDERGUARD_PUBLIC_URL=server.url,
            ORDERGUARD_STRIPE_API_KEY="sk_test_logs",
            ORDERGUARD_STRIPE_BASE_URL=provider,
            ORDERGUARD_STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET,
            ORDERGUARD_PAYMENT_TIME_BUDGET_S="1",
            ORDERGUARD_RECHECK_SCALE="0.01",
            ORDERGUARD_WORKER_ROUND_S="0.2",
            ORDERGUARD_LOG_FORMAT="json",
            ORDERGUARD_LOG_LEVEL="debug",
        )
        server.start()
        try:
            request_ids, tokens = _run(server.url, provider)
        finally:
            server.stop()
    log = server.log()
    lines = [json.loads(line) for line in log.splitlines() if line.strip()]
    assert len(lines) > 20, log
    loggers = {line.get("logger") for line in lines}
    assert {"uvicorn.access", "uvicorn.error", "aiosqlite"} <= loggers, loggers  # all of them
    statements = [str(line["event"]) for line in lines if line["logger"] == "aiosqlite"]
    assert any("INSERT INTO orders" in event for event in statements), "SQL is logged"
    leaked = [e for e in statements if "{" in e or "(ord_" in e]
    assert not leaked, f"aiosqlite's lines carry no statement parameters: {leaked[:3]}"
    # Every field but the time each line was written (its microseconds once matched the
    # Beijing postal code, 18:03:42.100022).
    said = [
        json.dumps({k: v for k, v in line.items() if k != "timestamp"}, ensure_ascii=False)
        for line in lines
    ]
    for shopper in SHOPPERS:
        name, email, phone, e164, street, _city, postal, _ = shopper
        for secret in (name, *name.split(), email, email.split("@")[0], phone, e164,
                       e164.lstrip("+"), street, postal):  # fmt: skip
            assert not any(secret in line for line in said), (
                f"{secret!r} is in the log:\n" + "\n".join(x for x in said if secret in x)
            )
    assert "pm_card_visa" not in log and "pm_card_chargeDeclined" not in log
    access = "\n".join(str(line["event"]) for line in lines if line["logger"] == "uvicorn.access")
    assert "token=[redacted]" in access, "the shopper pages' access lines are there, redacted"
    for token in tokens:
        assert token not in log, f"a status page token is in the log: {token}"
    for request_id in request_ids:
        tagged = {line["logger"] for line in lines if line.get("request_id") == request_id}
        assert "uvicorn.access" in tagged, f"the access line lacks request id {request_id}"


def _run(url: str, provider: str) -> tuple[list[str], list[str]]:
    """Paid, declined and lost-answer orders (each one's shopper page visited), bad input, a
    forged webhook; the request ids and the status page tokens."""
    ids, tokens = [], []
    with httpx.Client(base_url=url, timeout=30) as client:
        httpx.post(f"{provider}/_sandbox/faults", json={"timeout_after": 1.0, "hold_s": 2.0,
                                                         "limit": 1})  # fmt: skip
        for number, (shopper, method) in enumerate(
            zip(SHOPPERS, ["pm_card_visa", "pm_card_chargeDeclined", "pm_card_visa"], strict=True)
        ):
            request_id = f"req-logs-{number}"
            ids.append(request_id)
            answer = client.post("/v1/orders", json=_body(shopper, method),
                                 headers={**key(), "X-Request-ID": request_id})  # fmt: skip
            assert answer.status_code == 201, answer.text
            assert client.get(f"/v1/orders/{answer.json()['id']}").status_code == 200
            status_url = answer.json()["status_url"]
            tokens.append(status_url.rpartition("token=")[2])
            assert client.get(status_url).status_code == 200
        bad = _body(SHOPPERS[0], "pm_card_visa")
        bad["customer"]["email"] = "beatriz.quaresma@@correio.example"  # type: ignore[index]
        refused = client.post("/v1/orders", json=bad, headers=key())
        assert refused.status_code == 422
        assert "beatriz" not in refused.text, "a problem report must not echo personal data"
        forged = client.post("/v1/webhooks/stripe", content=b'{"id": "evt_x"}',
                             headers={"Stripe-Signature": "t=1,v1=00"})  # fmt: skip
        assert forged.status_code in {400, 401}
        time.sleep(3)  # the janitor resolves the lost answer, webhooks arrive
    return ids, tokens

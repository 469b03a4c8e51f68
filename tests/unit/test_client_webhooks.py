"""``verify_webhook`` accepts what the Standard Webhooks reference library signs (the
library orderguard's relay signs with), during a rotation with either secret, and refuses
any change, another secret, a stale timestamp and missing headers. (A real delivery from
``orderguard serve`` is verified in tests/e2e/test_client.py.)"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from standardwebhooks import Webhook

from orderguard.client import WebhookVerificationError, verify_webhook
from orderguard.outbox.merchant_webhooks import new_secret

NOW = 1_790_000_000
BODY = (
    b'{"id":"evt_1","type":"order.paid","timestamp":"2026-12-04T12:00:00Z",'
    b'"data":{"order_id":"ord_1"}}'
)


def signed(*secrets: str, body: bytes = BODY, at: int = NOW) -> dict[str, str]:
    when = datetime.fromtimestamp(at, UTC)
    signatures = " ".join(
        Webhook(s).sign(msg_id="evt_1", timestamp=when, data=body.decode()) for s in secrets
    )
    return {"Webhook-Id": "evt_1", "Webhook-Timestamp": str(at), "Webhook-Signature": signatures}


def test_a_signed_event_is_read_back() -> None:
    secret = new_secret()
    event = verify_webhook(BODY, signed(secret), secret, now=NOW + 10)
    assert (event.id, event.type, event.order_id) == ("evt_1", "order.paid", "ord_1")


def test_during_a_rotation_either_secret_verifies() -> None:
    old, new = new_secret(), new_secret()
    headers = signed(old, new)
    assert verify_webhook(BODY, headers, old, now=NOW).id == "evt_1"
    assert verify_webhook(BODY, headers, [new_secret(), new], now=NOW).id == "evt_1"


@pytest.mark.parametrize("index", [0, len(BODY) // 2, len(BODY) - 1])
def test_any_flipped_byte_is_refused(index: int) -> None:
    secret = new_secret()
    changed = bytearray(BODY)
    changed[index] ^= 0x20
    with pytest.raises(WebhookVerificationError):
        verify_webhook(bytes(changed), signed(secret), secret, now=NOW)


def test_another_secret_a_moved_timestamp_or_a_missing_header_is_refused() -> None:
    secret = new_secret()
    headers = signed(secret)
    refusals = [
        (BODY, headers, new_secret(), NOW),
        (BODY, {**headers, "Webhook-Timestamp": str(NOW + 1)}, secret, NOW),
        (BODY, headers, secret, NOW + 301),
        (BODY, headers, secret, NOW - 301),
        (BODY, {k: v for k, v in headers.items() if k != "Webhook-Signature"}, secret, NOW),
        (BODY, {**headers, "Webhook-Signature": "v1,"}, secret, NOW),
    ]
    for body, sent, key, now in refusals:
        with pytest.raises(WebhookVerificationError):
            verify_webhook(body, sent, key, now=now)


def test_a_signed_body_that_is_no_event_is_refused() -> None:
    secret = new_secret()
    body = b'{"hello": "world"}'
    with pytest.raises(WebhookVerificationError, match="not an orderguard event"):
        verify_webhook(body, signed(secret, body=body), secret, now=NOW)


def test_a_secret_that_is_not_one_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        verify_webhook(BODY, signed(new_secret()), "whsec_not base64!", now=NOW)
    with pytest.raises(ValueError):
        verify_webhook(BODY, signed(new_secret()), [], now=NOW)

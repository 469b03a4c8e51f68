"""Personal data never reaches a log line or an error report."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog
from hypothesis import example, given, settings
from hypothesis import strategies as st

from orderguard.observability.context import remember_personal, request_context
from orderguard.observability.logs import log_format, log_level
from orderguard.observability.redaction import (
    REDACTED,
    may_hold_personal_data,
    redact_field,
    redact_patterns,
    redact_text,
)
from tests.log_capture import json_logs


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("mail ana.silva+shop@example.co.uk now", "ana.silva+shop@example.co.uk"),
        ("call +351 912 345 678", "912 345 678"),
        ("call +351912345678", "351912345678"),
        ("call 912 345 678 or 07911 123456", "07911 123456"),
        ("charged pm_card_visa", "pm_card_visa"),
        ("GET /orders/ord_1?token=abcDEF123 HTTP/1.1", "abcDEF123"),
        # A return URL inside a request body: the shopper page's token URL-encoded.
        ("return_url=https%3A%2F%2Fshop%2Forders%2Ford_1%3Ftoken%3Dab-C_9x%26lang%3Den", "ab-C_9x"),
        ("{'customer_name': 'Ana Silva', 'id': 'ord_1'}", "Ana Silva"),
        ('{"customer":{"name":"Ana Silva","city":"Lisboa"}}', "Lisboa"),
        (r"'{\"line1\":\"Rua Augusta 1\"}'", "Rua Augusta 1"),
        ("metadata[og_snap_0]=%7B%22cust%22%3A%5B%22Ana+Silva%22%5D&amount=1", "Ana+Silva"),
    ],
)
def test_personal_data_is_found_in_free_text(text: str, secret: str) -> None:
    assert secret not in redact_text(text)


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-26 11:41:30 order ord_01J9ZK4 paid 3998 EUR",
        "listening on 127.0.0.1:8000, pid 12345, 1764157290",
        "schema version 7, 12 orders due, lag 300s",
        "connected to 192.168.10.20:5432 in 12 ms",
    ],
)
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert redact_text(text) == text


def test_known_values_of_the_request_are_redacted_wherever_they_appear() -> None:
    assert redact_text(
        "shipping to Ana Silva at Rua Augusta 1", ["Ana Silva", "Rua Augusta 1"]
    ) == (f"shipping to {REDACTED} at {REDACTED}")


def test_fields_named_after_personal_data_are_replaced_whole_at_any_depth() -> None:
    value = {"customer": {"name": "Ana"}, "order": {"email": "x", "amount": 5}}
    assert redact_field("data", value) == {
        "customer": REDACTED,
        "order": {"email": REDACTED, "amount": 5},
    }


KNOWN = ("Ana Silva", "Rua Augusta 1", "1100-048", "Lisboa")
#: Pieces of what the patterns look for, so that generated text often nearly matches.
FRAGMENTS = st.sampled_from(
    [*KNOWN, "@", "ana.silva", "example.com", "pm_", "card_visa", "token=", "client_secret=",
     "token%3D", "secret%3d", "%26",
     "?", "&", "=", ":", '"', "'", "\\", "name", "email", "phone", "line1", "city",
     "postal_code", "status_token", "customer_", "ship_", "og_snap_0", "%5D", '"cust"',
     '"addr"', "[", "]",
     "+", "(", ")", "-", ".", "/", " ", "0", "12", "345", "912", "2026-11-26", "HTTP/1.1",
     "+1 234 567", "+123456", "(21) 345 678", "12-345-67",
     "%40", "Bearer ", "sk_live_", "og_sk_", "whsec_", "_secret_", "4242 4242 4242 4242",
     "4242", "email=", "phone=", "address", "zip", "/users/@me"]
)  # fmt: skip
TEXT = st.lists(FRAGMENTS | st.text(max_size=4), max_size=30).map("".join)


@given(TEXT, st.lists(st.sampled_from(KNOWN), max_size=3))
@example("call +1 234 567", [])  # the fewest digits a phone number is redacted with
@example("call 12 345 678", [])
@example("at Lisboa", ["Lisboa"])
@settings(max_examples=500)
def test_the_quick_test_never_skips_text_the_patterns_would_change(
    text: str, known: list[str]
) -> None:
    full = redact_patterns(text, known)
    assert redact_text(text, known) == full
    if full != text:
        assert may_hold_personal_data(text, known)


@pytest.mark.parametrize(
    "text",
    [
        '127.0.0.1:53422 - "POST /v1/orders HTTP/1.1" 201',
        "req_01JABCDEFGHJKMNPQRSTVWXYZ",
        "Application startup complete.",
    ],
)
def test_ordinary_log_text_takes_the_quick_way(text: str) -> None:
    assert not may_hold_personal_data(text, KNOWN)


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    with json_logs(logging.DEBUG) as stream:
        yield stream


def _lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_stdlib_and_structlog_lines_and_tracebacks_are_redacted_and_carry_the_request_id(
    captured: io.StringIO,
) -> None:
    with request_context("req-123"):
        remember_personal(["Ana Silva", "Rua Augusta 1"])
        logging.getLogger("orderguard.test").info("order for %s <%s>", "Ana Silva", "a@b.pt")
        try:
            raise ValueError("refused Ana Silva at Rua Augusta 1, +351 912 345 678")
        except ValueError:
            logging.getLogger("uvicorn.error").exception("failed")
        structlog.get_logger("orderguard.s").info("placed", email="a@b.pt", amount=3998)
    logging.getLogger("orderguard.test").info("outside a request")
    text = captured.getvalue()
    for secret in ("Ana Silva", "Rua Augusta", "a@b.pt", "912 345 678"):
        assert secret not in text
    lines = _lines(captured)
    assert [line.get("request_id") for line in lines] == ["req-123"] * 3 + [None]
    assert "ValueError" in str(lines[1]["exception"]), "the traceback is kept, redacted"
    assert lines[2]["amount"] == 3998 and lines[2]["email"] == REDACTED


def test_the_format_follows_the_setting_else_the_terminal() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert log_format({"ORDERGUARD_LOG_FORMAT": "console"}, io.StringIO()) == "console"
    assert log_format({"ORDERGUARD_LOG_FORMAT": "json"}, Tty()) == "json"
    assert log_format({}, Tty()) == "console"
    assert log_format({}, io.StringIO()) == "json"
    assert log_level({"ORDERGUARD_LOG_LEVEL": "debug"}) == logging.DEBUG
    assert log_level({"ORDERGUARD_LOG_LEVEL": "nonsense"}) == logging.INFO


def test_the_access_line_of_the_shopper_page_keeps_its_request_but_not_its_token(
    captured: io.StringIO,
) -> None:
    token = "Zx9-abcDEF_123456789"
    with request_context("req-page"):
        remember_personal(["Ana Silva"])
        logging.getLogger("uvicorn.access").info(  # as uvicorn writes it
            '%s - "%s %s HTTP/%s" %d',
            "127.0.0.1:53422",
            "GET",
            f"/orders/ord_1?token={token}&lang=pt",
            "1.1",
            200,
        )
    text = captured.getvalue()
    assert token not in text
    [line] = _lines(captured)
    assert line["logger"] == "uvicorn.access" and line["request_id"] == "req-page"
    assert line["level"] == "info" and "timestamp" in line
    assert line["event"] == (
        f'127.0.0.1:53422 - "GET /orders/ord_1?token={REDACTED}&lang=pt HTTP/1.1" 200'
    )


#: Access lines as uvicorn writes them (peer - "method target HTTP/version" status), and
#: what a log keeps of them: the path, the ids and the query's keys, not the personal data.
ACCESS = '127.0.0.1:53422 - "{} HTTP/1.1" {}'


@pytest.mark.parametrize(
    ("request_line", "kept"),
    [
        (
            "GET /v1/orders/ord_01JDQ4W5X9ZK2M8Y7T3N6B1C0V?token=Zx9-abcDEF_1234&lang=pt",
            f"GET /v1/orders/ord_01JDQ4W5X9ZK2M8Y7T3N6B1C0V?token={REDACTED}&lang=pt",
        ),
        ("GET /console/orders/ord_x", "GET /console/orders/ord_x"),
        ("GET /users/@me", "GET /users/@me"),
        ("GET /users/@me.json?fields=id", "GET /users/@me.json?fields=id"),
        (
            "GET /v1/orders?email=ana.silva@example.com&limit=50",
            f"GET /v1/orders?email={REDACTED}&limit=50",
        ),
        (
            "GET /console/orders?q=ana.silva%40example.com&state=paid",
            "GET /console/orders?q=[email]&state=paid",
        ),
        (
            "GET /v1/customers/ana.silva+shop@example.co.uk/orders",
            "GET /v1/customers/[email]/orders",
        ),
        (
            "GET /console/orders?phone=%2B351912345678&name=Ana+Silva",
            f"GET /console/orders?phone={REDACTED}&name={REDACTED}",
        ),
        (
            "GET /return?payment_intent=pi_3Q&payment_intent_client_secret=pi_3Q_secret_Xy9",
            f"GET /return?payment_intent=pi_3Q&payment_intent_client_secret={REDACTED}",
        ),
        ("POST /v1/orders/ord_01JDQ4W5X9ZK2M8Y7T3N6B1C0V/refund", None),
        ("GET /metrics?since=1764157290123", None),
    ],
)
def test_access_lines_keep_their_path_ids_and_query_keys_but_no_personal_data(
    request_line: str, kept: str | None
) -> None:
    line = ACCESS.format(request_line, 200)
    assert redact_text(line) == ACCESS.format(kept or request_line, 200)


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("card 4242 4242 4242 4242 declined", "4242 4242 4242 4242"),
        ("card 4000-0566-5566-5556 declined", "4000-0566-5566-5556"),
        ("pan=5555555555554444", "5555555555554444"),
        ("Authorization: Bearer og_sk_Zx9abcDEF123456789", "og_sk_Zx9abcDEF123456789"),
        ("stripe key sk_live_51HxYzAbCdEf rejected", "sk_live_51HxYzAbCdEf"),
        ("secret whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
        ('{"client_secret": "pi_3Q_secret_Xy9AbC"}', "pi_3Q_secret_Xy9AbC"),
    ],
)
def test_card_numbers_and_credentials_are_found_in_free_text(text: str, secret: str) -> None:
    assert secret not in redact_text(text)

"""The charge request is sent as the Stripe SDK sends it, and its answers are read as the SDK
reads them (``providers/stripe/wire.py``, issue 20).

The oracle is the SDK itself: the same charge sent through ``StripeClient.raw_request_async``
(how the adapter sent it before) and through the adapter, to one server that records what
arrives and answers as told. An SDK upgrade that changes its request or its errors fails
here, not in production.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import pytest
import stripe
from hypothesis import given
from hypothesis import strategies as st
from stripe._encode import _api_encode

from orderguard.providers.base import (
    PaymentOutcome,
    ProviderKeyConflict,
    ProviderRateLimited,
    ProviderRejected,
    ProviderServerError,
)
from orderguard.providers.stripe import wire
from orderguard.providers.stripe.adapter import StripeProvider
from tests.providers.harness import API_KEY, SECRET, charge_request

INTENT = {
    "id": "pi_wire",
    "object": "payment_intent",
    "amount": 2599,
    "currency": "eur",
    "status": "succeeded",
    "metadata": {"order_id": "ord_wire", "attempt_id": "att_wire"},
    "next_action": None,
    "last_payment_error": None,
}


@dataclass
class Recorder:
    """A server that records each request's head and body and answers ``answer``."""

    port: int = 0
    requests: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)
    #: Each request's header lines as they came (a name given twice appears twice).
    header_lines: list[list[tuple[str, str]]] = field(default_factory=list)
    answer: tuple[int, bytes] = (200, json.dumps(INTENT).encode())

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                line, *lines = head.decode("latin-1").split("\r\n")
                headers = {}
                pairs = []
                for raw in lines:
                    if raw:
                        name, _, value = raw.partition(":")
                        headers[name.strip().lower()] = value.strip()
                        pairs.append((name.strip().lower(), value.strip()))
                self.header_lines.append(pairs)
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                self.requests.append((line, headers, body))
                status, payload = self.answer
                writer.write(
                    f"HTTP/1.1 {status} X\r\ncontent-type: application/json\r\n"
                    f"request-id: req_wire\r\ncontent-length: {len(payload)}\r\n\r\n".encode()
                    + payload
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()


@pytest.fixture
async def recorder() -> AsyncIterator[Recorder]:
    rec = Recorder()
    server = await asyncio.start_server(rec.handle, "127.0.0.1", 0)
    rec.port = server.sockets[0].getsockname()[1]
    async with server:
        yield rec


@pytest.fixture
async def provider(recorder: Recorder) -> AsyncIterator[StripeProvider]:
    made = StripeProvider(
        api_key=API_KEY, webhook_secret=SECRET, base_url=f"http://127.0.0.1:{recorder.port}"
    )
    yield made
    await made.aclose()


async def _through_the_sdk(provider: StripeProvider, **charge: Any) -> Any:
    """The charge as the SDK sends it: its raw request, with the parameters the adapter
    sends (stated here, not read from the adapter)."""
    request = charge_request(**charge)
    return await provider._client.raw_request_async(
        "post",
        "/v1/payment_intents",
        amount=request.amount,
        currency=request.currency.lower(),
        payment_method=request.method,
        confirm=True,
        return_url=request.return_url,
        metadata={"order_id": request.order_id, "attempt_id": request.attempt_id,
                  **request.metadata},
        idempotency_key=request.idempotency_key,
    )  # fmt: skip


#: Headers that may differ between two requests the SDK sends itself: its telemetry header
#: carries the previous request's id and duration.
VOLATILE = {"x-stripe-client-telemetry"}

CHARGE = {
    "order_id": "ord_wire",
    "attempt_id": "att_wire",
    "idempotency_key": "pay-att_wire",
    "return_url": "https://shop.test/orders/return?x=[1]&y=ü",
    "metadata": {"items": "2", "note": "a b&c=d[e]%5B", "país": "ñ"},
}


async def test_the_charge_arrives_exactly_as_the_sdk_sends_it(
    recorder: Recorder, provider: StripeProvider
) -> None:
    await _through_the_sdk(provider, **CHARGE)
    result = await provider.create_payment(charge_request(**CHARGE))
    assert result.outcome is PaymentOutcome.SUCCEEDED and result.provider_ref == "pi_wire"
    (sdk_line, sdk_headers, sdk_body), (line, headers, body) = recorder.requests
    assert line == sdk_line == "POST /v1/payment_intents HTTP/1.1"
    assert body == sdk_body
    strip = lambda h: {k: v for k, v in h.items() if k not in VOLATILE}  # noqa: E731
    assert strip(headers) == strip(sdk_headers)
    sdk_lines, lines = (
        [p for p in pairs if p[0] not in VOLATILE] for pairs in recorder.header_lines
    )
    assert sorted(lines) == sorted(sdk_lines)  # no header twice, none missing
    # What the SDK guarantees, stated on its own: the key, the version, the key's owner.
    assert headers["idempotency-key"] == "pay-att_wire"
    assert headers["stripe-version"] == stripe.api_version  # the version the SDK is built for
    assert headers["authorization"] == f"Bearer {API_KEY}"
    assert headers["content-type"] == "application/x-www-form-urlencoded"
    assert b"metadata[order_id]=ord_wire" in body and b"confirm=true" in body


async def test_each_charge_carries_its_own_idempotency_key(
    recorder: Recorder, provider: StripeProvider
) -> None:
    for n in range(3):
        await provider.create_payment(charge_request(idempotency_key=f"pay-{n}"))
    assert [h["idempotency-key"] for _, h, _ in recorder.requests] == ["pay-0", "pay-1", "pay-2"]


def _error(status: int, kind: str, **extra: Any) -> tuple[int, bytes]:
    return status, json.dumps({"error": {"type": kind, "message": "told", **extra}}).encode()


ANSWERS = {
    "card declined": _error(
        402, "card_error", code="card_declined", decline_code="generic_decline"
    ),
    "invalid request": _error(400, "invalid_request_error", code="parameter_invalid"),
    "idempotency error": _error(400, "idempotency_error"),
    "rate limited": _error(429, "invalid_request_error", code="rate_limit"),
    "server error": _error(500, "api_error"),
    "not json": (200, b"<html>gateway</html>"),
    "error not json": (502, b"<html>bad gateway</html>"),
}


@pytest.mark.parametrize("answer", sorted(ANSWERS))
async def test_an_error_answer_raises_what_the_sdk_raises(
    recorder: Recorder, provider: StripeProvider, answer: str
) -> None:
    recorder.answer = ANSWERS[answer]
    with pytest.raises(stripe.StripeError) as by_sdk:
        await _through_the_sdk(provider, **CHARGE)
    request = charge_request(**CHARGE)
    with pytest.raises(stripe.StripeError) as by_wire:
        await provider._wire.create(
            {"amount": 2599, "currency": "eur", "payment_method": request.method,
             "confirm": True, "return_url": request.return_url},
            {"order_id": "ord_wire", "attempt_id": "att_wire", **request.metadata},
            idempotency_key=request.idempotency_key,
        )  # fmt: skip
    assert type(by_wire.value) is type(by_sdk.value)
    assert by_wire.value.http_status == by_sdk.value.http_status
    assert by_wire.value.code == by_sdk.value.code
    assert str(by_wire.value) == str(by_sdk.value)


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("invalid request", ProviderRejected),
        ("idempotency error", ProviderKeyConflict),
        ("rate limited", ProviderRateLimited),
        ("server error", ProviderServerError),
    ],
)
async def test_an_error_answer_to_a_charge_is_classified_as_before(
    recorder: Recorder, provider: StripeProvider, answer: str, expected: type[Exception]
) -> None:
    recorder.answer = ANSWERS[answer]
    with pytest.raises(expected):
        await provider.create_payment(charge_request(**CHARGE))


async def test_a_declined_card_is_a_failed_charge_with_its_code(
    recorder: Recorder, provider: StripeProvider
) -> None:
    recorder.answer = ANSWERS["card declined"]
    result = await provider.create_payment(charge_request(**CHARGE))
    assert result.outcome is PaymentOutcome.FAILED
    assert result.decline_code == "generic_decline"


async def test_a_success_that_is_not_an_object_is_an_error_not_a_charge(
    recorder: Recorder, provider: StripeProvider
) -> None:
    recorder.answer = (200, b"[1, 2]")
    with pytest.raises(stripe.APIError, match="Invalid response object") as raised:
        await provider._wire.create({"amount": 1}, {}, idempotency_key="k")
    assert raised.value.http_status == 200
    assert raised.value.headers.get("request-id") == "req_wire"  # Stripe-Should-Retry read here
    with pytest.raises(ProviderServerError, match="Invalid response object"):
        await provider.create_payment(charge_request(**CHARGE))


@pytest.mark.parametrize(
    "body",
    [b"[" * 5000 + b"]" * 5000, b"\xef\xbb\xbf{}", '{"id": "pi_x"}'.encode("utf-16")],
    ids=["too deep", "byte order mark", "utf-16"],
)
async def test_a_success_the_sdk_could_not_read_is_its_error_not_a_crash(
    recorder: Recorder, provider: StripeProvider, body: bytes
) -> None:
    """Whoever answers at the API address: nothing it sends escapes as another exception
    (which no caller classifies) or is read where the SDK would refuse it."""
    recorder.answer = (200, body)
    with pytest.raises(ProviderServerError):
        await provider.create_payment(charge_request(**CHARGE))


@pytest.mark.parametrize("base", ["", None])
def test_no_api_address_stops_the_provider_from_being_made(base: str | None) -> None:
    """The SDK would send its other calls nowhere; the charge must not go to Stripe."""
    with pytest.raises(ValueError, match="API address"):
        StripeProvider(api_key=API_KEY, webhook_secret=SECRET, base_url=base)  # type: ignore[arg-type]


text = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=12)


@given(
    metadata=st.dictionaries(text, text, max_size=6),
    amount=st.integers(min_value=0, max_value=10**12),
    confirm=st.booleans(),
    return_url=st.none() | text,
)
def test_the_form_body_is_the_sdks_encoding(
    metadata: dict[str, str], amount: int, confirm: bool, return_url: str | None
) -> None:
    fields = {"amount": amount, "currency": "eur", "confirm": confirm, "return_url": return_url}
    sdk = urlencode(list(_api_encode({**fields, "metadata": metadata})))
    sdk = sdk.replace("%5B", "[").replace("%5D", "]")  # as the SDK's requestor does
    assert wire.form_body(fields, metadata) == sdk

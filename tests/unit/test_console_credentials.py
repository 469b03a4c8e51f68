"""What a non-admin sees of raw provider text: the text, without its credentials."""

from __future__ import annotations

import json

import pytest

from orderguard.bootstrap import offered_to_faces
from orderguard.web.console.credentials import HIDDEN, Credentials

#: What the composition root gives the console: the registered providers' shapes too.
hidden = offered_to_faces().credentials.hidden
shown = offered_to_faces().credentials.shown

SECRET = "pi_3Qx9_secret_AbC123"


@pytest.mark.parametrize(
    ("text", "credential"),
    [
        (json.dumps({"data": {"object": {"client_secret": SECRET}}}), SECRET),
        (json.dumps({"next_action": {"url": f"https://x.example/3ds?cs={SECRET}"}}), SECRET),
        (
            json.dumps({"return_url": "https://shop.example/orders/o1?token=shopper-tok"}),
            "shopper-tok",
        ),
        (json.dumps({"status_token": "abc-status"}), "abc-status"),
        (json.dumps([{"headers": {"Authorization": "Bearer sk_live_1"}}]), "sk_live_1"),
        ("redirect=https%3A%2F%2Fshop%2Forders%2Fo1%3Ftoken%3Dshopper-tok", "shopper-tok"),
        ("HTTP 401 from provider: Authorization: Basic c2tfbGl2ZV8xOg==", "c2tfbGl2ZV8xOg=="),
        ("signing with whsec_AbCdEf012 failed", "whsec_AbCdEf012"),
        ("card tok_1MwXyZ and pm_1Nabc attached", "tok_1MwXyZ"),
        ("card tok_1MwXyZ and pm_1Nabc attached", "pm_1Nabc"),
        ("{not json, 'client_secret': 'pi_1_secret_2'}", "pi_1_secret_2"),
        ('client_secret="pi_1_secret_2" password=hunter2hunter2', "hunter2hunter2"),
        ("rk_test_51Hxyz restricted key leaked", "rk_test_51Hxyz"),
    ],
)
def test_credentials_are_hidden_from_every_role_but_admin(text: str, credential: str) -> None:
    for role in ("viewer", "operator"):
        assert credential not in shown(role, text)
        assert HIDDEN in shown(role, text)
    assert shown("admin", text) == text


def test_the_rest_of_a_body_is_still_shown_and_still_json() -> None:
    body = {
        "id": "evt_1",
        "type": "payment_intent.succeeded",
        "amount": 3998,
        "client_secret": SECRET,
    }

    seen = json.loads(hidden(json.dumps(body)))

    assert seen == {**body, "client_secret": HIDDEN}


def test_bytes_and_nothing_are_shown_as_text() -> None:
    assert shown("viewer", b'{"amount": 1}') == '{\n  "amount": 1\n}'
    assert shown("viewer", None) == ""
    assert shown("admin", "plain \xe9".encode()) == "plain \xe9"


def test_the_providers_shapes_and_signature_headers_are_what_the_wiring_gave() -> None:
    bare = Credentials()
    given = Credentials(["x-shop-signature"], r"tok_[A-Za-z0-9]+")
    text = "card tok_1MwXyZ attached"
    assert bare.hidden(text) == text  # no provider told the console this shape
    assert given.hidden(text) == f"card {HIDDEN} attached"
    header = json.dumps({"X-Shop-Signature": "t=1,v1=abc", "amount": 1})
    assert json.loads(bare.hidden(header)) == {"X-Shop-Signature": "t=1,v1=abc", "amount": 1}
    assert json.loads(given.hidden(header)) == {"X-Shop-Signature": HIDDEN, "amount": 1}
    assert given.hidden("X-Shop-Signature: v1abc") == f"X-Shop-Signature: {HIDDEN}"
    assert bare.hidden("X-Shop-Signature: v1abc") == "X-Shop-Signature: v1abc"

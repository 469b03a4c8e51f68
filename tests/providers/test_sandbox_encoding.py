"""The sandbox writes JSON with orjson (its ledger rows and its API answers): the same
objects come back, and an answer is byte for byte what starlette's ``JSONResponse`` wrote.

Stripe's objects hold strings, integers, booleans, ``null``, lists and objects (amounts are
integers of the minor unit), so that is what is drawn; floats are not. Integers past 64 bits
and nesting deeper than orjson takes are drawn too: a scripted answer may hold them, and
the standard encoder then writes them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.responses import JSONResponse

from orderguard.providers.stripe.sandbox.api import _Answer
from orderguard.providers.stripe.sandbox.ledger import Ledger

#: Any text but lone surrogates (which no JSON encoder here writes as UTF-8).
TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)
SCALARS = st.none() | st.booleans() | st.integers() | TEXT
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=20,
)


@given(st.dictionaries(TEXT, VALUES, max_size=6))
@settings(max_examples=200)
def test_an_answer_is_what_starlette_wrote(body: dict[str, Any]) -> None:
    ours = _Answer(body, status_code=200, headers={"Request-Id": "req_1"})
    theirs = JSONResponse(body, status_code=200, headers={"Request-Id": "req_1"})
    assert ours.body == theirs.body
    assert ours.headers.items() == theirs.headers.items()
    assert json.loads(ours.body) == body


@given(st.dictionaries(TEXT, VALUES, max_size=6))
@settings(max_examples=100, deadline=None)
def test_the_ledger_gives_back_what_it_was_given(tmp_path_factory: Any, extra: Any) -> None:
    path = Path(tmp_path_factory.mktemp("ledger")) / "ledger.db"
    ledger = Ledger(str(path), clock=lambda: 1.0)
    try:
        obj = {**extra, "id": "pi_1", "object": "payment_intent", "created": 7}
        ledger.put(obj)
        assert ledger.get("pi_1", "payment_intent") == obj
        evt = {"id": "evt_1", "type": "payment_intent.created", "data": {"object": obj}}
        ledger.add_event(evt)
        assert ledger.events() == [{**evt, "_delivery": {"state": "pending", "attempts": 0}}]
        ledger.remember("key-1", "fp", 200, obj)
        assert ledger.replay("key-1", saved_after=0.0) == ("fp", 200, obj)
    finally:
        ledger.close()


def _deep(levels: int) -> dict[str, Any]:
    nested: dict[str, Any] = {"amount": 2**70}
    for _ in range(levels):
        nested = {"a": [nested]}
    return nested


def test_what_orjson_refuses_is_written_as_the_standard_encoder_writes_it(tmp_path: Path) -> None:
    body = {"deep": _deep(300), "big": -(2**64), "code": 10**20}
    assert _Answer(body).body == JSONResponse(body).body
    ledger = Ledger(str(tmp_path / "ledger.db"), clock=lambda: 1.0)
    try:
        obj = {**body, "id": "pi_1", "object": "payment_intent", "created": 7}
        ledger.put(obj)
        assert ledger.get("pi_1", "payment_intent") == obj
        ledger.remember("key-1", "fp", 500, body)
        assert ledger.replay("key-1", saved_after=0.0) == ("fp", 500, body)
    finally:
        ledger.close()

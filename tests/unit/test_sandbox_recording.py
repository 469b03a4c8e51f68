"""The sandbox's contract recording costs nothing when it is off: it is called for every
webhook the sandbox delivers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orderguard.providers.stripe.sandbox import recording


def test_a_webhook_is_not_even_read_when_recording_is_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(recording.ENV, raising=False)
    read: list[bytes] = []
    monkeypatch.setattr(recording, "_parsed", lambda body: read.append(body) or {})
    recording.record_webhook("http://127.0.0.1:1/v1/webhooks/stripe", b'{"id": "evt_1"}')
    assert read == []


def test_a_webhook_is_recorded_when_recording_is_on(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    log = tmp_path / "contract.jsonl"
    monkeypatch.setenv(recording.ENV, str(log))
    recording.record_webhook("http://127.0.0.1:1/v1/webhooks/stripe", b'{"id": "evt_1"}')
    [line] = log.read_text().splitlines()
    entry = json.loads(line)
    assert entry["kind"] == "webhook" and entry["body"] == {"id": "evt_1"}

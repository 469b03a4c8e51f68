"""The checkout script (clients/js) says what the shopper's page says: its texts.json is the
catalog's words, and fails here when the catalog changed and the script's copy did not."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest

from orderguard.catalog import CATALOG, LANGUAGES
from orderguard.web.guidance import decline_words

ROOT = Path(__file__).resolve().parents[2]
TEXTS = ROOT / "clients" / "js" / "src" / "texts.json"


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "checkout_texts", ROOT / "clients" / "js" / "scripts" / "texts.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _shipped() -> dict[str, dict[str, str]]:
    loaded: dict[str, dict[str, str]] = json.loads(TEXTS.read_text(encoding="utf-8"))
    return loaded


def test_the_scripts_texts_are_the_catalogs_as_generated() -> None:
    script = _script()
    assert script.main(["--check"]) == 0, "run: python clients/js/scripts/texts.py"
    assert TEXTS.read_text(encoding="utf-8") == script.rendered()


def test_every_shipped_text_is_the_catalogs_word_for_word_in_every_language() -> None:
    shipped = _shipped()
    assert set(shipped) == set(LANGUAGES) == {"en", "zh-CN"}
    for language, texts in shipped.items():
        for key, text in texts.items():
            assert CATALOG[key][language] == text, (language, key)


def test_the_script_has_every_word_a_checkout_outcome_shows() -> None:
    shipped = _shipped()["en"]
    states = ("received", "payment_pending", "action_required", "payment_unknown")
    finals = ("payment_failed", "paid", "refunded", "cancelled")
    for state in states + finals:
        assert f"state.{state}" in shipped and f"next.{state}" in shipped, state
    # every reason the status endpoint can name (a decline code in the page's words)
    reasons = {key for key in CATALOG if key.startswith("why.")}
    assert reasons <= set(shipped)
    assert decline_words("insufficient_funds") in shipped
    for own in ("checkout.sending", "checkout.offline", "checkout.retrying", "page.qr_label"):
        assert own in shipped, own


def test_a_changed_catalog_word_makes_the_check_fail(monkeypatch: pytest.MonkeyPatch) -> None:
    script = _script()
    changed = {**CATALOG, "state.paid": {"en": "Paid!", "zh-CN": "已付款了"}}
    monkeypatch.setattr(script, "CATALOG", changed)
    assert script.main(["--check"]) == 1

"""The pages' words: both languages complete, decline codes in shopper words, the guide."""

from __future__ import annotations

import string
from pathlib import Path

import pytest

from orderguard.catalog import CATALOG, LANGUAGES, translate
from orderguard.domain.states import OrderState
from orderguard.web.console import guide
from orderguard.web.forms import secure_cookies
from orderguard.web.guidance import decline_words
from orderguard.web.templating import language


def test_every_text_is_in_every_language_with_the_same_placeholders() -> None:
    fields = string.Formatter()
    for key, texts in CATALOG.items():
        assert set(texts) == set(LANGUAGES), key
        names = {
            lang: {f for _, f, _, _ in fields.parse(text) if f} for lang, text in texts.items()
        }
        assert names["en"] == names["zh-CN"], key


def test_every_state_has_words_and_a_next_step() -> None:
    for state in OrderState:
        assert f"state.{state}" in CATALOG and f"next.{state}" in CATALOG


def test_payment_unknown_tells_the_shopper_not_to_pay_again() -> None:
    text = translate("en", "next.payment_unknown")
    assert "Please do not pay again: you will not be charged twice." in text


@pytest.mark.parametrize("language", ["en", "zh-CN"])
def test_the_page_says_it_updates_by_itself_once_not_in_every_next_step(language: str) -> None:
    refreshing = translate(language, "page.refreshing")
    assert refreshing in {"This page updates by itself.", "本页面会自动更新。"}
    for state in OrderState:
        assert refreshing not in translate(language, f"next.{state}"), state


@pytest.mark.parametrize(
    ("code", "key"),
    [
        ("generic_decline", "why.generic_decline"),
        ("insufficient_funds", "why.insufficient_funds"),
        ("do_not_honor", "why.generic_decline"),
        ("stolen_card", "why.lost_card"),
        ("authentication_abandoned", "why.authentication_abandoned"),
        ("cancelled_by_operator", "why.canceled"),
        ("something_new", "why.unknown"),
        (None, "why.unknown"),
    ],
)
def test_decline_codes_become_shopper_words(code: str | None, key: str) -> None:
    assert decline_words(code) == key


def test_the_language_comes_from_the_switch_then_accept_language() -> None:
    assert language(None, "zh-CN,zh;q=0.9,en;q=0.8") == "zh-CN"
    assert language(None, "fr-FR, en;q=0.5") == "en"
    assert language("en", "zh-CN") == "en"
    assert language("xx", "zh-TW") == "zh-CN"


def test_cookies_are_secure_on_https_or_when_told() -> None:
    assert secure_cookies("https://shop.example", "auto")
    assert not secure_cookies("http://127.0.0.1:8000", "auto")
    assert secure_cookies("http://127.0.0.1:8000", "true")
    assert not secure_cookies("https://shop.example", "false")


def test_the_console_shows_the_support_guide_from_docs() -> None:
    docs = Path(__file__).resolve().parents[2] / "docs" / "support-guide.md"
    assert guide.GUIDE.read_text() == docs.read_text()
    html = guide.html()
    assert "<h2>What the states mean</h2>" in html and "<table>" in html


def test_only_a_web_address_becomes_the_authentication_button() -> None:
    from datetime import UTC, datetime

    from orderguard.domain.events import Cause
    from orderguard.domain.order import PaymentAttempt
    from orderguard.domain.states import AttemptState, OrderState
    from orderguard.services.shopper_action import ActionKind, ShopperAction
    from orderguard.web.guidance import guidance
    from tests.factories import new_order

    at = datetime.now(UTC)
    order = new_order()
    attempt = PaymentAttempt("pay_1", order.id, 1, "sandbox", "pm", 1, "EUR", "k", at, at)
    order.attempts.append(attempt)
    order.move_to(OrderState.PAYMENT_PENDING, cause=Cause.API, at=at)
    attempt.move_to(AttemptState.ACTION_REQUIRED, at=at)
    order.move_to(OrderState.ACTION_REQUIRED, cause=Cause.API, at=at)
    for url, shown in [
        ("https://bank.example/3ds", "https://bank.example/3ds"),
        ("javascript:alert(1)", None),
        ('https://bank.example/"><script>', None),
    ]:
        action = ShopperAction(ActionKind.REDIRECT, url, "pm", at)
        assert guidance(order, action).authenticate_url == shown
    assert guidance(order, None).authenticate_url is None

"""One translation catalog: every text a person reads, in every language, in one module."""

from __future__ import annotations

import typing
from pathlib import Path

import orderguard
from orderguard.api.schemas import Locale
from orderguard.catalog import translate
from orderguard.outbox.templates import LOCALES as EMAIL_LOCALES
from orderguard.providers import registry
from orderguard.reconcile.messages import LOCALES as REPORT_LOCALES
from orderguard.reconcile.messages import text

SOURCE = Path(orderguard.__file__).parent


def test_no_module_but_the_catalog_holds_translated_text() -> None:
    holders = sorted(
        str(path.relative_to(SOURCE))
        for path in SOURCE.rglob("*.py")
        if '"zh-CN": "' in path.read_text(encoding="utf-8")
    )
    assert holders == ["catalog.py"]


def test_the_reports_read_their_words_from_the_catalog() -> None:
    assert text("matched", "zh-CN") == "已匹配"
    assert text("missing_in_orders") == "missing in orders (orphan charge)"
    assert translate("zh-CN", "report.title") == "结算对账"


def test_a_report_word_not_in_the_catalog_is_its_key_and_an_unknown_locale_is_english() -> None:
    assert text("no_such_word", "zh-CN") == "no_such_word"
    assert text("duplicate", "fr") == "duplicate"


def test_pages_api_reports_and_emails_speak_the_same_languages() -> None:
    assert REPORT_LOCALES == ("en", "zh-CN")
    assert EMAIL_LOCALES == ("en", "zh-CN")
    assert typing.get_args(Locale) == ("en", "zh-CN")


def test_every_test_method_a_provider_offers_has_a_name_in_every_language() -> None:
    offered = {m for plugin in registry.PLUGINS for m in plugin.profile.test_methods}
    assert {"pm_card_visa", "alipay_page", "alipay_wap"} <= offered
    for method in sorted(offered):
        for locale in ("en", "zh-CN"):
            name = translate(locale, f"method.{method}")
            assert name != f"method.{method}", (method, locale)
    assert translate("zh-CN", "method.alipay_page") != translate("en", "method.alipay_page")

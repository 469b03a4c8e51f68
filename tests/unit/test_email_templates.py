"""A shop's email templates render in Jinja2's sandbox, HTML escaped (issue 15)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from orderguard.domain.delivery import EMAILED_EVENTS
from orderguard.domain.events import EventType
from orderguard.outbox.templates import EmailTemplates

#: A shopper who typed a script into the name field at checkout.
SCRIPT_NAME = "<script>alert(document.cookie)</script>"


def fields(**changes: Any) -> dict[str, Any]:
    """The fields an order's message is rendered with."""
    values: dict[str, Any] = {
        "order_id": "ord_1",
        "name": "Ana Silva",
        "amount": "39.98 EUR",
        "merchant_reference": None,
        "status_url": "https://shop.example/orders/ord_1?token=t",
        "action_url": None,
    }
    return {**values, **changes}


def shop_templates(folder: Path, **files: str) -> EmailTemplates:
    """Templates with the shop's ``files`` (``order.received.txt`` → its source), in English."""
    (folder / "en").mkdir(exist_ok=True)
    for name, source in files.items():
        (folder / "en" / name).write_text(source)
    return EmailTemplates(str(folder))


#: Templates that try to reach the process, Python's internals or the settings.
ESCAPES = [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "{{ self.__init__.__globals__ }}",
    "{{ lipsum.__globals__['os'].environ }}",
    "{{ os.system('id') }}",
    "{{ config }}",
    "{{ namespace.__init__.__globals__ }}",
]


@pytest.mark.parametrize("source", ESCAPES)
def test_a_template_that_reaches_outside_the_sandbox_is_refused_when_loaded(
    tmp_path: Path, source: str
) -> None:
    templates = shop_templates(tmp_path, **{"order.received.html": f"<p>{source}</p>"})
    assert list(templates.refused) == ["en/order.received.html"]
    rendered = templates.render(EventType.RECEIVED, "en", fields())
    assert "Your order page" in rendered.html  # the shipped template stood in


def test_a_refused_text_template_gives_way_to_the_shipped_subject(tmp_path: Path) -> None:
    templates = shop_templates(
        tmp_path, **{"order.paid.txt": "Subject: {{ ''.__class__ }}\n\n{{ name }}\n"}
    )
    assert "outside the sandbox" in templates.refused["en/order.paid.txt"]
    rendered = templates.render(EventType.PAID, "en", fields())
    assert "ord_1" in rendered.subject and "class" not in rendered.subject


@pytest.mark.parametrize(
    "source",
    [
        "<p>{{ name | safe }}</p>",
        "{% autoescape false %}<p>{{ name }}</p>{% endautoescape %}",
        "<p>{{ name | replace('<', '<') | safe }}</p>",
    ],
)
def test_an_html_template_cannot_let_a_script_in_a_shoppers_name_through(
    tmp_path: Path, source: str
) -> None:
    templates = shop_templates(tmp_path, **{"order.received.html": source})
    assert "escaping off" in templates.refused["en/order.received.html"]
    html = templates.render(EventType.RECEIVED, "en", fields(name=SCRIPT_NAME)).html
    assert "<script>" not in html and "&lt;script&gt;" in html


@pytest.mark.parametrize("locale", ["en", "zh-CN"])
@pytest.mark.parametrize("event", sorted(EMAILED_EVENTS))
def test_the_shipped_html_escapes_a_script_in_a_shoppers_name(
    event: EventType, locale: str
) -> None:
    html = EmailTemplates().render(event, locale, fields(name=SCRIPT_NAME)).html
    assert "<script>" not in html


def test_a_shop_template_that_fails_on_one_message_gives_way_for_that_message(
    tmp_path: Path,
) -> None:
    templates = shop_templates(
        tmp_path, **{"order.received.html": "<p>Ref {{ merchant_reference.upper() }}</p>"}
    )
    assert templates.refused == {}  # it renders with a reference
    with_reference = templates.render(EventType.RECEIVED, "en", fields(merchant_reference="r-1"))
    assert with_reference.html == "<p>Ref R-1</p>"
    without = templates.render(EventType.RECEIVED, "en", fields())
    assert "Your order page" in without.html


def test_a_sound_shop_template_is_used(tmp_path: Path) -> None:
    templates = shop_templates(tmp_path, **{"order.received.html": "<p>Tea {{ name }}</p>"})
    assert templates.refused == {}
    assert templates.render(EventType.RECEIVED, "en", fields()).html == "<p>Tea Ana Silva</p>"


def test_a_shop_text_template_without_a_subject_is_refused(tmp_path: Path) -> None:
    templates = shop_templates(tmp_path, **{"order.paid.txt": "Hello {{ name }}\n"})
    assert "Subject:" in templates.refused["en/order.paid.txt"]
    assert "ord_1" in templates.render(EventType.PAID, "en", fields()).subject


@pytest.mark.parametrize(
    "source",
    [
        "<p>{{ name | upper | safe }}</p>",  # the sample render no longer shows the script
        "<p>{{ name | lower | replace('alert', 'hi') | safe }}</p>",
        "{% filter safe %}<p>{{ name | upper }}</p>{% endfilter %}",
        "{% autoescape false %}<p>{{ name | title }}</p>{% endautoescape %}",
        "{% set shown = name | upper | safe %}<p>{{ shown }}</p>",
    ],
)
def test_an_html_template_that_turns_escaping_off_is_refused_whatever_it_does_to_the_name(
    tmp_path: Path, source: str
) -> None:
    templates = shop_templates(tmp_path, **{"order.received.html": source})
    assert "escaping off" in templates.refused["en/order.received.html"]
    html = templates.render(EventType.RECEIVED, "en", fields(name=SCRIPT_NAME)).html
    assert "<script>" not in html.lower() and "Your order page" in html

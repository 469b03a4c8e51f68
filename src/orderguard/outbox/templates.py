"""Shopper email templates: files a shop can override, plain text and HTML, per locale.

A message for event ``order.paid`` in locale ``zh-CN`` is ``zh-CN/order.paid.txt`` (first
line ``Subject: ...``, a blank line, then the body) and ``zh-CN/order.paid.html``. The
shop's template directory (``ORDERGUARD_EMAIL_TEMPLATE_DIR``) is searched first, then the
templates shipped here; a locale without templates falls back to English.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from orderguard.domain.events import EventType

#: The templates shipped with orderguard.
BUILT_IN = Path(__file__).with_name("templates")
#: Locales with shipped templates; any other falls back to the first.
LOCALES = ("en", "zh-CN")


class TemplateProblem(Exception):
    """An email template is missing or cannot be rendered."""


@dataclass(frozen=True, slots=True)
class RenderedEmail:
    """A message ready to send."""

    subject: str
    text: str
    html: str


class EmailTemplates:
    """Renders the message for an event in a locale."""

    def __init__(self, override_dir: str | None = None) -> None:
        folders = [Path(override_dir)] if override_dir else []
        loader = jinja2.FileSystemLoader([*map(str, folders), str(BUILT_IN)])
        self._text = jinja2.Environment(
            loader=loader, autoescape=False, undefined=jinja2.StrictUndefined
        )
        self._html = jinja2.Environment(
            loader=loader, autoescape=True, undefined=jinja2.StrictUndefined
        )

    def render(self, event: EventType, locale: str, context: dict[str, Any]) -> RenderedEmail:
        """The subject, text and HTML of ``event``'s message in ``locale`` (or English)."""
        language = locale if locale in LOCALES else LOCALES[0]
        try:
            text = self._text.get_template(f"{language}/{event}.txt").render(context)
            head, _, body = text.partition("\n\n")
            if not head.startswith("Subject:"):
                raise TemplateProblem(f"{language}/{event}.txt must start with 'Subject:'")
            subject = head.removeprefix("Subject:").strip()
            page = self._html.get_template(f"{language}/{event}.html")
            html = page.render({**context, "subject": subject})
        except jinja2.TemplateError as exc:
            raise TemplateProblem(f"email template for {event} ({language}): {exc}") from exc
        return RenderedEmail(subject, body.strip() + "\n", html)

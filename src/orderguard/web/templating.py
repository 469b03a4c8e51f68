"""The Jinja2 environment the pages are rendered with (autoescaped, translated)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.responses import HTMLResponse

from orderguard.catalog import LANGUAGES, locale, translate
from orderguard.domain.money import Money

#: Where the templates and the static files are.
TEMPLATES_DIR = Path(__file__).with_name("templates")
STATIC_DIR = Path(__file__).with_name("static")

#: Headers every page carries: no framing, no sniffing, no referrer (the URL holds a token).
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; form-action 'self'; "
    "base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

_env = Environment(
    loader=FileSystemLoader(TEMPLATES_DIR),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


def language(requested: str | None, accept_language: str | None) -> str:
    """A language the pages speak: ``requested`` when known, else from ``Accept-Language``."""
    if requested is not None and requested in LANGUAGES:
        return requested
    return locale(None, accept_language)


def money(amount: int, currency: str) -> str:
    """``amount`` minor units of ``currency`` for people, e.g. ``39.98 EUR``."""
    return Money(amount, currency).format()


def moment(at: datetime | None) -> str:
    """A timestamp for people, in UTC to the minute."""
    return at.strftime("%Y-%m-%d %H:%M UTC") if at else ""


_env.filters["moment"] = moment
_env.globals["money"] = money
_env.globals["LANGUAGES"] = LANGUAGES


def page(
    template: str,
    language: str,
    *,
    status: int = 200,
    headers: dict[str, str] | None = None,
    **context: Any,
) -> HTMLResponse:
    """``template`` rendered in ``language`` as an HTML response with the safe headers."""

    def t(key: str, **values: Any) -> str:
        return translate(language, key, **values)

    html = _env.get_template(template).render(lang=language, t=t, **context)
    return HTMLResponse(html, status_code=status, headers={**PAGE_HEADERS, **(headers or {})})

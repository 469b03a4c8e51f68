"""Shopper email templates: files a shop can override, plain text and HTML, per locale.

A message for event ``order.paid`` in locale ``zh-CN`` is ``zh-CN/order.paid.txt`` (first
line ``Subject: ...``, a blank line, then the body) and ``zh-CN/order.paid.html``. The
shop's template directory (``ORDERGUARD_EMAIL_TEMPLATE_DIR``) is searched first, then the
templates shipped here; a locale without templates falls back to English.

Every template renders in Jinja2's immutable sandbox: no attribute starting with ``_``
(``__class__``, ``__mro__``, ``__subclasses__``, ``__globals__``), no changing a value,
nothing but the message's own fields (no ``os``, no ``config``). HTML is autoescaped.
The shop's templates are tried when they are loaded: one that breaks the sandbox, names
an unknown field, does not parse, turns HTML escaping off (the ``safe`` filter or an
``autoescape`` block, found in its syntax, not guessed from a sample), or lets a shopper's
``<script>`` through unescaped is refused with an error in the log naming the file and
why, and the shipped template is used in its place; a shop template that fails later, on
one message, gives way to the shipped one for that message. Either way the email goes
out: nothing waits on a fix.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from orderguard.catalog import LANGUAGES
from orderguard.domain.events import EventType

log = logging.getLogger("orderguard.outbox")

#: The templates shipped with orderguard.
BUILT_IN = Path(__file__).with_name("templates")
#: Locales with shipped templates (the catalog's languages); any other falls back to the first.
LOCALES = tuple(LANGUAGES)
#: A shopper's name that must come out of an HTML template escaped.
_HOSTILE_NAME = "<script>alert(1)</script>"
#: The fields a message is rendered with (see ``EmailSink.message``), for trying templates.
SAMPLE = {
    "order_id": "ord_sample",
    "name": _HOSTILE_NAME,
    "amount": "39.98 EUR",
    "merchant_reference": "SHOP-1",
    "status_url": "https://shop.example/orders/ord_sample?token=sample",
    "action_url": "https://provider.example/authenticate",
    "subject": "Your order",
}


class TemplateProblem(Exception):
    """An email template is missing or cannot be rendered."""


@dataclass(frozen=True, slots=True)
class RenderedEmail:
    """A message ready to send."""

    subject: str
    text: str
    html: str


class EscapingOff(jinja2.TemplateSyntaxError):
    """An HTML template turns escaping off (``|safe``, ``{% autoescape false %}``)."""


#: Filters that mark a value as already escaped HTML: not available in HTML templates.
_UNESCAPING_FILTERS = frozenset({"safe"})


class _HtmlSandbox(ImmutableSandboxedEnvironment):
    """The sandbox for HTML: autoescaped, and a template that could turn escaping off does
    not compile (checked on its syntax tree, whatever values it is rendered with)."""

    def __init__(self, loader: jinja2.BaseLoader) -> None:
        super().__init__(loader=loader, autoescape=True, undefined=jinja2.StrictUndefined)
        for name in _UNESCAPING_FILTERS:
            self.filters.pop(name, None)

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        tree = super()._parse(source, name, filename)
        why = escaping_off(tree)
        if why is not None:
            raise EscapingOff(why, tree.lineno, name, filename)
        return tree


def escaping_off(tree: nodes.Template) -> str | None:
    """How the template ``tree`` turns HTML escaping off, or ``None`` when it cannot."""
    for used in tree.find_all(nodes.Filter):
        if used.name in _UNESCAPING_FILTERS:
            return f"the {used.name} filter on line {used.lineno}"
    for modifier in tree.find_all((nodes.EvalContextModifier, nodes.ScopedEvalContextModifier)):
        if any(option.key == "autoescape" for option in modifier.options):
            return f"an autoescape block on line {modifier.lineno}"
    return None


def sandbox(loader: jinja2.BaseLoader, *, html: bool) -> jinja2.Environment:
    """The sandboxed environment templates render in (autoescaped for HTML, and an HTML
    template that turns escaping off is refused: see :func:`escaping_off`)."""
    if html:
        return _HtmlSandbox(loader)
    return ImmutableSandboxedEnvironment(loader=loader, undefined=jinja2.StrictUndefined)


class _Face:
    """The text and HTML environments over one set of folders."""

    def __init__(self, folders: list[Path]) -> None:
        loader = jinja2.FileSystemLoader([str(f) for f in folders])
        self.text, self.html = sandbox(loader, html=False), sandbox(loader, html=True)

    def render(self, name: str, context: dict[str, Any]) -> str:
        env = self.html if name.endswith(".html") else self.text
        return env.get_template(name).render(context)


class EmailTemplates:
    """Renders the message for an event in a locale."""

    def __init__(self, override_dir: str | None = None) -> None:
        self._shipped = _Face([BUILT_IN])
        self._shop: _Face | None = None
        #: The shop's templates refused when loaded, by name (``en/order.paid.html``): why.
        self.refused: dict[str, str] = {}
        if override_dir:
            self._shop = _Face([Path(override_dir), BUILT_IN])
            self.refused = refused_overrides(Path(override_dir), self._shop)

    def render(self, event: EventType, locale: str, context: dict[str, Any]) -> RenderedEmail:
        """The subject, text and HTML of ``event``'s message in ``locale`` (or English)."""
        language = locale if locale in LOCALES else LOCALES[0]
        try:
            text = self._render(f"{language}/{event}.txt", context)
            head, _, body = text.partition("\n\n")
            if not head.startswith("Subject:"):
                raise TemplateProblem(f"{language}/{event}.txt must start with 'Subject:'")
            subject = head.removeprefix("Subject:").strip()
            html = self._render(f"{language}/{event}.html", {**context, "subject": subject})
        except jinja2.TemplateError as exc:
            raise TemplateProblem(f"email template for {event} ({language}): {exc}") from exc
        return RenderedEmail(subject, body.strip() + "\n", html)

    def _render(self, name: str, context: dict[str, Any]) -> str:
        """The shop's template unless it was refused or fails now; else the shipped one."""
        if self._shop is not None and name not in self.refused:
            try:
                return self._shop.render(name, context)
            except jinja2.TemplateError as exc:
                log.error(
                    "email template %s of the shop failed (%s); the shipped one is used", name, exc
                )
        return self._shipped.render(name, context)


def refused_overrides(folder: Path, shop: _Face) -> dict[str, str]:
    """The shop's templates in ``folder`` that may not be used, each with why (logged)."""
    refused: dict[str, str] = {}
    for path in sorted(folder.glob("*/*")):
        if path.suffix not in {".txt", ".html"}:
            continue
        name = f"{path.parent.name}/{path.name}"
        why = _trial(shop, name)
        if why is not None:
            refused[name] = why
            log.error(
                "email template %s refused: %s; the shipped template is used instead",
                path,
                why,
            )
    return refused


def _trial(shop: _Face, name: str) -> str | None:
    """Why the template ``name`` cannot be used, from rendering it with sample fields."""
    try:
        rendered = shop.render(name, SAMPLE)
    except EscapingOff as exc:
        return f"it turns HTML escaping off ({exc.message}; a shopper's name could inject a script)"
    except SecurityError as exc:
        return f"it reaches outside the sandbox ({exc})"
    except jinja2.TemplateError as exc:
        return f"it does not render ({type(exc).__name__}: {exc})"
    if name.endswith(".html") and _HOSTILE_NAME in rendered:
        return "it turns HTML escaping off (a shopper's name could inject a script)"
    if name.endswith(".txt") and not rendered.startswith("Subject:"):
        return "its first line must be 'Subject: ...'"
    return None

"""The support guide, shown in the console: ``docs/support-guide.md`` shipped in the package."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from markdown_it import MarkdownIt

#: The guide as shipped (a copy of ``docs/support-guide.md``; a test keeps them equal).
GUIDE = Path(__file__).with_name("support-guide.md")


@cache
def html() -> str:
    """The guide as HTML (raw HTML in the Markdown is escaped, not passed through)."""
    rendered: str = (
        MarkdownIt("commonmark", {"html": False}).enable("table").render(GUIDE.read_text())
    )
    return rendered

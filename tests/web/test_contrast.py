"""The pages' colours meet WCAG AA contrast (4.5:1 for text), read from the stylesheet."""

from __future__ import annotations

import re

from orderguard.web.templating import STATIC_DIR

#: Text colour on background colour, as the stylesheet's custom properties name them.
PAIRS = [
    ("ink", "card"),
    ("ink", "bg"),
    ("muted", "card"),
    ("muted", "bg"),
    ("accent", "card"),
    ("bad", "card"),
    ("ok", "card"),
    ("warn", "card"),
]


def _luminance(colour: str) -> float:
    channels = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(a: str, b: str) -> float:
    """The WCAG contrast ratio of two ``#rrggbb`` colours."""
    high, low = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def test_text_colours_have_aa_contrast() -> None:
    css = (STATIC_DIR / "style.css").read_text()
    palette = dict(re.findall(r"--([a-z]+):\s*(#[0-9a-fA-F]{6})", css))
    for text, background in PAIRS:
        ratio = contrast(palette[text], palette[background])
        assert ratio >= 4.5, (text, background, round(ratio, 2))
    assert contrast(palette["card"], palette["accent"]) >= 4.5  # white on buttons
    assert contrast("#ffffff", "#17324d") >= 4.5  # the header bar

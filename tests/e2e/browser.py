"""Debian's Chromium driven by Playwright, headless, and screenshots kept as artifacts.

Never ``playwright install``: the browser is ``/usr/bin/chromium`` (CI installs it when
missing). Without it a browser test skips on a laptop and fails in CI.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from playwright.async_api import Browser, Page, async_playwright

from tests.conftest import service_missing

CHROMIUM = Path("/usr/bin/chromium")
#: Where screenshots go (gitignored); a few are copied to docs/screenshots by hand.
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
#: A phone's viewport (CSS pixels).
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1200, "height": 900}
_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    """A headless Chromium, closed afterwards."""
    if not CHROMIUM.exists():
        service_missing("Chromium", f"{CHROMIUM} is not installed")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=_ARGS
        )
        try:
            yield browser
        finally:
            await browser.close()


async def shoot(page: Page, name: str) -> Path:
    """Save a full-page screenshot of ``page`` as ``test-artifacts/screenshots/NAME.png``."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path


async def unlabelled_fields(page: Page) -> list[str]:
    """Visible form fields without a label (by ``for``, wrapping, or aria-label)."""
    found: list[str] = await page.evaluate(
        """() => [...document.querySelectorAll('input, select, textarea')]
            .filter(e => e.type !== 'hidden')
            .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label'))
            .map(e => e.name || e.id)"""
    )
    return found


async def fits_the_width(page: Page) -> bool:
    """Whether the page needs no sideways scrolling (tables scroll inside their box)."""
    fits: bool = await page.evaluate(
        "() => document.documentElement.scrollWidth <= window.innerWidth"
    )
    return fits

"""What reports say to people: their words are the catalog's ``report.`` keys."""

from __future__ import annotations

from orderguard.catalog import CATALOG, LANGUAGES, translate

#: Locales the reports speak: the catalog's languages.
LOCALES = tuple(LANGUAGES)


def text(key: str, locale: str = "en") -> str:
    """``key`` in ``locale`` (English when either is unknown)."""
    namespaced = f"report.{key}"
    return translate(locale, namespaced) if namespaced in CATALOG else key

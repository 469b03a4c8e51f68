"""The page tests run on each back end, like the end-to-end tests."""

from __future__ import annotations

from tests.e2e.conftest import database_url

__all__ = ["database_url"]

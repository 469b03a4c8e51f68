"""orderguard: no e-commerce order is lost between checkout, payment provider and database."""

from __future__ import annotations

__version__ = "0.1.0"

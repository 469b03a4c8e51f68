"""In-memory fakes that ship with the package, for shops testing their integration."""

from __future__ import annotations

from orderguard.storage.memory import InMemoryStorage

__all__ = ["InMemoryStorage"]

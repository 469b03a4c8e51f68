"""The in-memory provider fake: a :class:`PaymentProvider` with no network, for tests."""

from orderguard.providers.memory.provider import InMemoryProvider

__all__ = ["InMemoryProvider"]

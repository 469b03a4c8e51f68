"""The configured payment providers, in order of preference, each behind a circuit breaker."""

from __future__ import annotations

from dataclasses import dataclass

from orderguard.providers.base import PaymentProvider
from orderguard.providers.resilience import CircuitBreaker


@dataclass
class ProviderSlot:
    """One provider account and the breaker guarding it."""

    provider: PaymentProvider
    breaker: CircuitBreaker
    #: Whether the account moves real money; orders taken while it is primary are live.
    livemode: bool = False

    @property
    def name(self) -> str:
        """The provider's stable name (stored on attempts)."""
        return self.provider.name


class UnknownProvider(LookupError):
    """An attempt names a provider that is not configured any more."""


class Providers:
    """Primary first, then fail-over providers."""

    def __init__(self, slots: list[ProviderSlot]) -> None:
        if not slots:
            raise ValueError("at least one payment provider must be configured")
        self.slots = slots

    @property
    def primary(self) -> ProviderSlot:
        """The preferred provider."""
        return self.slots[0]

    @property
    def livemode(self) -> bool:
        """Whether orders are taken live (the primary account moves real money)."""
        return self.primary.livemode

    def named(self, name: str) -> ProviderSlot:
        """The slot of provider ``name``; raises :class:`UnknownProvider`."""
        for slot in self.slots:
            if slot.name == name:
                return slot
        raise UnknownProvider(name)

    def choose(self) -> ProviderSlot | None:
        """The first provider whose breaker lets a call through, or ``None``."""
        for slot in self.slots:
            if slot.breaker.allow():
                return slot
        return None

    async def aclose(self) -> None:
        """Close every provider's connections."""
        for slot in self.slots:
            await slot.provider.aclose()

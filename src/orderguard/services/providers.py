"""The configured payment providers, in order of preference, each behind a circuit breaker.

A payment goes to the first provider that takes its method (by the provider's profile)
and whose breaker lets a call through.
"""

from __future__ import annotations

from dataclasses import dataclass

from orderguard.domain.errors import DomainError
from orderguard.providers.base import PaymentProvider
from orderguard.providers.profile import CARD_PROFILE, Capabilities, ProviderProfile
from orderguard.providers.resilience import CircuitBreaker


@dataclass
class ProviderSlot:
    """One provider account and the breaker guarding it."""

    provider: PaymentProvider
    breaker: CircuitBreaker
    #: Whether the account moves real money; orders taken while it is primary are live.
    livemode: bool = False
    #: The methods it takes, what it can be asked, its limits and its webhook reply.
    profile: ProviderProfile = CARD_PROFILE

    @property
    def name(self) -> str:
        """The provider's stable name (stored on attempts)."""
        return self.provider.name

    @property
    def capabilities(self) -> Capabilities:
        """What the provider can be asked, and its key retention and metadata limits."""
        return self.profile.capabilities


class UnknownProvider(LookupError):
    """An attempt names a provider that is not configured any more."""


class PaymentMethodNotTaken(DomainError):
    """No configured payment provider takes this payment method; nothing was stored."""

    def __init__(self, method: str) -> None:
        self.method = method
        super().__init__(f"no configured payment provider takes the payment method {method!r}")


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

    def taking(self, method: str) -> list[ProviderSlot]:
        """The providers that take ``method``, in failover order."""
        return [slot for slot in self.slots if slot.profile.takes(method)]

    def shows_code(self, method: str) -> bool:
        """Whether a ``method`` payment's next action is a code to scan (its provider's
        profile says so), not a page to open."""
        return any(slot.profile.shows_code(method) for slot in self.taking(method))

    def code_prefixes(self, method: str) -> tuple[str, ...]:
        """What the text of a ``method`` payment's code may start with (its provider's
        profile); ``()`` when the method ends in no code."""
        found = [slot.profile for slot in self.taking(method) if slot.profile.shows_code(method)]
        return tuple(prefix for profile in found for prefix in profile.code_prefixes)

    def check_method(self, method: str) -> None:
        """Raise :class:`PaymentMethodNotTaken` unless some provider takes ``method``."""
        if not self.taking(method):
            raise PaymentMethodNotTaken(method)

    def choose(self, method: str) -> ProviderSlot | None:
        """The first provider taking ``method`` whose breaker lets a call through, or ``None``
        (none of them is up: the payment waits)."""
        for slot in self.taking(method):
            if slot.breaker.allow():
                return slot
        return None

    def first_for(self, method: str) -> ProviderSlot | None:
        """The preferred provider for ``method`` (the one a failover is reported against)."""
        taking = self.taking(method)
        return taking[0] if taking else None

    async def aclose(self) -> None:
        """Close every provider's connections."""
        for slot in self.slots:
            await slot.provider.aclose()

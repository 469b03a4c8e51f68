"""Fault profiles and the seeded dice that decide, call by call, which fault to inject.

Each fault kind draws from its own ``random.Random`` stream seeded from the sandbox seed, and
every stream is drawn on every call it applies to, so one seed always gives one sequence.
The dice and the check of a profile's settings are every sandbox's (:mod:`..faults`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from orderguard.providers import faults
from orderguard.providers.faults import CALLS, NO_CALL_FAULTS, CallFaults, DeliveryFaults

__all__ = ["NO_CALL_FAULTS", "PROFILES", "CallFaults", "DeliveryFaults", "FaultDice"]


@dataclass(frozen=True, slots=True)
class FaultProfile(faults.CallProfile):
    """Probabilities per call (or per webhook) of each fault, and their sizes: the call
    faults every sandbox has (:class:`..faults.CallProfile`: Stripe's 500 before or after
    the write, its 429, 503 in an outage) and Stripe's own."""

    #: The write happened, then Stripe itself failed and SAVED its 500 under the
    #: Idempotency-Key: a retry with the same key replays the 500 for 24 hours.
    error_saved: float = 0.0
    #: Webhook lost for good.
    webhook_drop: float = 0.0
    #: Webhook delivered twice.
    webhook_duplicate: float = 0.0
    #: Webhook delayed by a draw from ``webhook_delay_ms``.
    webhook_delay: float = 0.0
    webhook_delay_ms: tuple[int, int] = (200, 2000)
    #: Webhook held back and delivered after the next one.
    webhook_reorder: float = 0.0
    #: Seconds (of the sandbox's clock) before a new object shows in Search, as Stripe's
    #: search index lags writes; retrieve by id is never lagged. Not a per-call fault.
    search_lag_s: float = 0.0
    #: Refund starts ``pending`` (settled later through ``/_sandbox/refunds/{id}``).
    refund_pending: float = 0.0


#: Named profiles for ``--faults`` (their call faults are every sandbox's: ``CALLS``).
PROFILES: dict[str, FaultProfile] = {
    "none": FaultProfile(),
    "flaky": FaultProfile(
        **CALLS["flaky"],
        webhook_drop=0.05,
        webhook_duplicate=0.1,
        webhook_delay=0.2,
        webhook_reorder=0.1,
    ),
    "storm": FaultProfile(
        **CALLS["storm"],
        webhook_drop=0.2,
        webhook_duplicate=0.3,
        webhook_delay=0.5,
        webhook_reorder=0.3,
    ),
}


def profile_from(values: dict[str, Any], *, base: FaultProfile | None = None) -> FaultProfile:
    """A profile from a mapping of field values; unknown names are refused."""
    return faults.profile_from(values, PROFILES, base=base)


def load_profile(spec: str) -> FaultProfile:
    """A named profile (``none``, ``flaky``, ``storm``) or a TOML file of settings.

    The TOML may put settings at top level or under ``[faults]``; ``base = "flaky"`` starts
    from a named profile.
    """
    return faults.load_profile(spec, PROFILES)


class FaultDice(faults.FaultDice):
    """One seeded random stream per fault kind (:class:`..faults.FaultDice`), read as
    Stripe's call and webhook faults."""

    def call(self, profile: faults.CallProfile, *, mutating: bool) -> CallFaults:
        """Decide the faults of one API call (``*_after`` only apply to writes), Stripe's
        saved 500 among them."""
        decided = super().call(profile, mutating=mutating)
        saved = profile.error_saved if isinstance(profile, FaultProfile) else 0.0
        return replace(decided, error_saved=mutating and self.roll("error_saved", saved))

    def webhook(self, profile: FaultProfile) -> DeliveryFaults:
        """Decide the faults of one webhook."""
        return self.delivery(
            "webhook",
            drop=profile.webhook_drop,
            duplicate=profile.webhook_duplicate,
            delay=profile.webhook_delay,
            delay_ms=profile.webhook_delay_ms,
            reorder=profile.webhook_reorder,
        )

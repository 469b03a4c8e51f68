"""Fault profiles and the seeded dice that decide, call by call, which fault to inject.

Each fault kind draws from its own ``random.Random`` stream seeded from the sandbox seed, and
every stream is drawn on every call it applies to, so one seed always gives one sequence.
The dice and the check of a profile's settings are every sandbox's (:mod:`..faults`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from orderguard.providers import faults


@dataclass(frozen=True, slots=True)
class FaultProfile:
    """Probabilities per call (or per webhook) of each fault, and their sizes."""

    #: Added latency, drawn uniformly from ``latency_ms``.
    latency: float = 0.0
    latency_ms: tuple[int, int] = (20, 200)
    #: HTTP 500 before anything happened.
    error_before: float = 0.0
    #: The write happened (charge recorded), then HTTP 500 at the network edge: the answer
    #: is lost, the real result stays saved under the Idempotency-Key.
    error_after: float = 0.0
    #: The write happened, then Stripe itself failed and SAVED its 500 under the
    #: Idempotency-Key: a retry with the same key replays the 500 for 24 hours.
    error_saved: float = 0.0
    #: The write happened, then the response is held for ``hold_s`` (past any client timeout).
    timeout_after: float = 0.0
    hold_s: float = 60.0
    #: HTTP 429.
    rate_limit: float = 0.0
    #: Chance per call that an outage window of ``outage_s`` (every call 503) begins.
    outage: float = 0.0
    outage_s: float = 5.0
    #: Webhook lost for good.
    webhook_drop: float = 0.0
    #: Webhook delivered twice.
    webhook_duplicate: float = 0.0
    #: Webhook delayed by a draw from ``webhook_delay_ms``.
    webhook_delay: float = 0.0
    webhook_delay_ms: tuple[int, int] = (200, 2000)
    #: Webhook held back and delivered after the next one.
    webhook_reorder: float = 0.0
    #: Call faults strike only on the first ``limit`` API calls under this profile (0: always).
    limit: int = 0
    #: Seconds (of the sandbox's clock) before a new object shows in Search, as Stripe's
    #: search index lags writes; retrieve by id is never lagged. Not a per-call fault.
    search_lag_s: float = 0.0
    #: Refund starts ``pending`` (settled later through ``/_sandbox/refunds/{id}``).
    refund_pending: float = 0.0


#: Named profiles for ``--faults``.
PROFILES: dict[str, FaultProfile] = {
    "none": FaultProfile(),
    "flaky": FaultProfile(
        latency=0.2,
        error_before=0.03,
        error_after=0.02,
        timeout_after=0.02,
        rate_limit=0.03,
        webhook_drop=0.05,
        webhook_duplicate=0.1,
        webhook_delay=0.2,
        webhook_reorder=0.1,
    ),
    "storm": FaultProfile(
        latency=0.5,
        latency_ms=(100, 1500),
        error_before=0.1,
        error_after=0.08,
        timeout_after=0.08,
        hold_s=30.0,
        rate_limit=0.1,
        outage=0.01,
        outage_s=10.0,
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


@dataclass(frozen=True, slots=True)
class CallFaults:
    """What to do to one API call."""

    latency_ms: int
    outage: bool
    rate_limit: bool
    error_before: bool
    error_after: bool
    timeout_after: bool
    error_saved: bool = False


@dataclass(frozen=True, slots=True)
class DeliveryFaults:
    """What to do to one webhook."""

    drop: bool
    duplicate: bool
    delay_ms: int
    reorder: bool


class FaultDice(faults.FaultDice):
    """One seeded random stream per fault kind (:class:`..faults.FaultDice`), read as
    Stripe's call and webhook faults."""

    def call(self, profile: FaultProfile, *, mutating: bool) -> CallFaults:
        """Decide the faults of one API call (``*_after`` only apply to writes)."""
        slow = self.roll("latency", profile.latency)
        amount = self.between("latency_ms", profile.latency_ms)
        return CallFaults(
            latency_ms=amount if slow else 0,
            outage=self.roll("outage", profile.outage),
            rate_limit=self.roll("rate_limit", profile.rate_limit),
            error_before=self.roll("error_before", profile.error_before),
            error_after=mutating and self.roll("error_after", profile.error_after),
            timeout_after=mutating and self.roll("timeout_after", profile.timeout_after),
            error_saved=mutating and self.roll("error_saved", profile.error_saved),
        )

    def delivery(self, profile: FaultProfile) -> DeliveryFaults:
        """Decide the faults of one webhook."""
        delayed = self.roll("webhook_delay", profile.webhook_delay)
        amount = self.between("webhook_delay_ms", profile.webhook_delay_ms)
        return DeliveryFaults(
            drop=self.roll("webhook_drop", profile.webhook_drop),
            duplicate=self.roll("webhook_duplicate", profile.webhook_duplicate),
            delay_ms=amount if delayed else 0,
            reorder=self.roll("webhook_reorder", profile.webhook_reorder),
        )


#: A call left alone.
NO_CALL_FAULTS = CallFaults(0, False, False, False, False, False)

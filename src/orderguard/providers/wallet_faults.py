"""The wallet sandboxes' fault profiles (Alipay's and WeChat Pay's) and the injector that
rolls them call by call, notification by notification.

The same profile names as the Stripe sandbox (``none``, ``flaky``, ``storm``) and the same
transport faults (latency, an error before the call, the answer lost after the write, a
timeout after the write, rate limiting, outage windows), answered in each wallet's own
error bodies; and the wallets' own trouble: notifications dropped, duplicated, delayed,
reordered or sent while the query still shows the trade unpaid, a query answering
``SYSTEM_ERROR``, a payment landing while a close is processed. The trade book stays the
truth: a dropped notification leaves the trade paid in ``/ledger``.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from orderguard.providers import faults


@dataclass(frozen=True, slots=True)
class WalletFaultProfile:
    """Probabilities per API call (or per notification) of each fault, and their sizes."""

    #: Added latency, drawn uniformly from ``latency_ms``.
    latency: float = 0.0
    latency_ms: tuple[int, int] = (20, 200)
    #: The wallet's "system busy" answer before anything happened.
    error_before: float = 0.0
    #: A write (close, refund, order) happened, then the wallet answers its system error:
    #: the answer says nothing, the effect stays (the same request again is harmless).
    error_after: float = 0.0
    #: A write happened, then the answer is held for ``hold_s`` (past any client timeout).
    timeout_after: float = 0.0
    hold_s: float = 60.0
    #: The wallet's rate-limit answer.
    rate_limit: float = 0.0
    #: Chance per call that an outage window of ``outage_s`` (every call refused) begins.
    outage: float = 0.0
    outage_s: float = 5.0
    #: Notification lost for good (the trade stays as it is in the ledger).
    notify_drop: float = 0.0
    #: Notification delivered twice (same ``notify_id`` / event ``id``).
    notify_duplicate: float = 0.0
    #: Notification delayed by a draw from ``notify_delay_ms``.
    notify_delay: float = 0.0
    notify_delay_ms: tuple[int, int] = (200, 2000)
    #: Notification held back and delivered after the next one.
    notify_reorder: float = 0.0
    #: A payment's notification goes out while, for ``before_query_s`` seconds, the query
    #: still answers the trade unpaid (Alipay: ``ACQ.TRADE_NOT_EXIST``; WeChat: ``NOTPAY``).
    notify_before_query: float = 0.0
    before_query_s: float = 1.0
    #: A trade query answers the wallet's ``SYSTEM_ERROR`` (Alipay ``ACQ.SYSTEM_ERROR``,
    #: WeChat Pay HTTP 500 ``SYSTEM_ERROR``).
    query_system_error: float = 0.0
    #: The shopper's payment lands while a close of an unpaid trade is processed: the trade
    #: is paid (and notified), the close refused (Alipay ``ACQ.TRADE_STATUS_ERROR``, WeChat
    #: Pay ``ORDERPAID``).
    close_race: float = 0.0
    #: Call faults strike only on the first ``limit`` API calls under this profile (0: always).
    limit: int = 0


#: What ``--faults`` takes, for a command's help.
FAULTS_HELP = "a fault profile (none, flaky, storm) or the path of a TOML profile"
#: Named profiles for ``--faults`` (the Stripe sandbox's names, the wallets' faults).
PROFILES: dict[str, WalletFaultProfile] = {
    "none": WalletFaultProfile(),
    "flaky": WalletFaultProfile(
        latency=0.2,
        error_before=0.03,
        error_after=0.02,
        timeout_after=0.02,
        rate_limit=0.03,
        notify_drop=0.05,
        notify_duplicate=0.1,
        notify_delay=0.2,
        notify_reorder=0.1,
        notify_before_query=0.1,
        query_system_error=0.03,
        close_race=0.05,
    ),
    "storm": WalletFaultProfile(
        latency=0.5,
        latency_ms=(100, 1500),
        error_before=0.1,
        error_after=0.08,
        timeout_after=0.08,
        hold_s=30.0,
        rate_limit=0.1,
        outage=0.01,
        outage_s=10.0,
        notify_drop=0.2,
        notify_duplicate=0.3,
        notify_delay=0.5,
        notify_reorder=0.3,
        notify_before_query=0.3,
        before_query_s=2.0,
        query_system_error=0.1,
        close_race=0.2,
    ),
}


def profile_from(
    values: Mapping[str, Any], *, base: WalletFaultProfile | None = None
) -> WalletFaultProfile:
    """A profile from a mapping of settings (``base``: a named profile to start from)."""
    return faults.profile_from(values, PROFILES, base=base)


def load_profile(spec: str) -> WalletFaultProfile:
    """A named profile (``none``, ``flaky``, ``storm``) or a TOML file of settings."""
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


#: A call left alone.
NO_CALL_FAULTS = CallFaults(0, False, False, False, False, False)


@dataclass(frozen=True, slots=True)
class DeliveryFaults:
    """What to do to one notification."""

    drop: bool
    duplicate: bool
    delay_ms: int
    reorder: bool


class FaultInjector:
    """One wallet sandbox's faults in force: its profile, seeded dice, the log of what it
    injected, the outage window and the trades whose query still lags their payment."""

    def __init__(
        self,
        profile: WalletFaultProfile | None = None,
        seed: int = 0,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.dice = faults.FaultDice(seed)
        self._profile = profile or WalletFaultProfile()
        self._clock = clock
        #: API calls decided under the current profile (for ``WalletFaultProfile.limit``).
        self.calls = 0
        self.outage_until = 0.0
        #: Every injected fault in order: ``{"kind": ..., "detail": ...}``.
        self.log: list[dict[str, str]] = []
        self._lagging: dict[str, float] = {}

    @property
    def profile(self) -> WalletFaultProfile:
        """The faults in force."""
        return self._profile

    @profile.setter
    def profile(self, profile: WalletFaultProfile) -> None:
        self._profile, self.calls = profile, 0

    def record(self, kind: str, detail: str) -> None:
        """Log one injected fault."""
        self.log.append({"kind": kind, "detail": detail})

    def counts(self) -> dict[str, int]:
        """Injected faults by kind."""
        return dict(Counter(entry["kind"] for entry in self.log))

    def call(self, *, mutating: bool) -> CallFaults:
        """Decide the faults of the next API call (``*_after`` only strike writes; none past
        the profile's ``limit``). Every stream is drawn whatever the outcome."""
        self.calls += 1
        p, dice = self.profile, self.dice
        slow = dice.roll("latency", p.latency)
        amount = dice.between("latency_ms", p.latency_ms)
        decided = CallFaults(
            latency_ms=amount if slow else 0,
            outage=dice.roll("outage", p.outage),
            rate_limit=dice.roll("rate_limit", p.rate_limit),
            error_before=dice.roll("error_before", p.error_before),
            error_after=dice.roll("error_after", p.error_after) and mutating,
            timeout_after=dice.roll("timeout_after", p.timeout_after) and mutating,
        )
        if p.limit and self.calls > p.limit:
            return NO_CALL_FAULTS
        return decided

    async def before(self, decided: CallFaults, what: str) -> str | None:
        """Apply the faults that strike before the call runs (latency is waited here); the
        kind of refusal that answers instead of the call (``outage``, ``rate_limit``,
        ``error_before``), if any."""
        if decided.latency_ms:
            self.record("latency", f"{what} {decided.latency_ms}ms")
            await asyncio.sleep(decided.latency_ms / 1000)
        if decided.outage and self._clock() >= self.outage_until:
            self.outage_until = self._clock() + self.profile.outage_s
        for kind, struck in (
            ("outage", self._clock() < self.outage_until),
            ("rate_limit", decided.rate_limit),
            ("error_before", decided.error_before),
        ):
            if struck:
                self.record(kind, what)
                return kind
        return None

    def after(self, decided: CallFaults, what: str) -> str | None:
        """The fault that loses the answer of a call that ran (``timeout_after``,
        ``error_after``), if any."""
        for kind, struck in (
            ("timeout_after", decided.timeout_after),
            ("error_after", decided.error_after),
        ):
            if struck:
                self.record(kind, what)
                return kind
        return None

    def query_system_error(self, ref: str) -> bool:
        """Whether this trade query answers ``SYSTEM_ERROR``."""
        struck = self.dice.roll("query_system_error", self.profile.query_system_error)
        if struck:
            self.record("query_system_error", ref)
        return struck

    def close_race(self) -> bool:
        """Whether a payment lands while this close is processed (the sandbox records it
        when the trade could still be paid)."""
        return self.dice.roll("close_race", self.profile.close_race)

    def paid(self, ref: str) -> None:
        """A trade was paid: perhaps its query lags the payment for ``before_query_s``."""
        if self.dice.roll("notify_before_query", self.profile.notify_before_query):
            self.record("notify_before_query", ref)
            self._lagging[ref] = self._clock() + self.profile.before_query_s

    def lagging(self, ref: str) -> bool:
        """Whether the query still shows trade ``ref`` as before its payment."""
        return self._clock() < self._lagging.get(ref, 0.0)

    def delivery(self, ref: str) -> DeliveryFaults:
        """Decide (and log) the faults of one notification named ``ref``."""
        p, dice = self.profile, self.dice
        delayed = dice.roll("notify_delay", p.notify_delay)
        amount = dice.between("notify_delay_ms", p.notify_delay_ms)
        decided = DeliveryFaults(
            drop=dice.roll("notify_drop", p.notify_drop),
            duplicate=dice.roll("notify_duplicate", p.notify_duplicate),
            delay_ms=amount if delayed else 0,
            reorder=dice.roll("notify_reorder", p.notify_reorder),
        )
        for kind, struck in (
            ("notify_drop", decided.drop),
            ("notify_duplicate", decided.duplicate and not decided.drop),
            ("notify_delay", decided.delay_ms and not decided.drop),
        ):
            if struck:
                self.record(kind, f"{ref} {decided.delay_ms}ms" if kind == "notify_delay" else ref)
        return decided

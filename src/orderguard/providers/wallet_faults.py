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
from orderguard.providers.faults import CALLS, CallFaults, DeliveryFaults


@dataclass(frozen=True, slots=True)
class WalletFaultProfile(faults.CallProfile):
    """Probabilities per API call (or per notification) of each fault, and their sizes: the
    call faults every sandbox has (:class:`..faults.CallProfile`) and the wallets' own."""

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
    #: A trade or refund query answers the wallet's ``SYSTEM_ERROR`` (Alipay
    #: ``ACQ.SYSTEM_ERROR``, WeChat Pay HTTP 500 ``SYSTEM_ERROR``).
    query_system_error: float = 0.0
    #: The shopper's payment lands while a close of an unpaid trade is processed: the trade
    #: is paid (and notified), the close refused (Alipay ``ACQ.TRADE_STATUS_ERROR``, WeChat
    #: Pay ``ORDERPAID``).
    close_race: float = 0.0


#: What ``--faults`` takes, for a command's help.
FAULTS_HELP = "a fault profile (none, flaky, storm) or the path of a TOML profile"
#: Named profiles for ``--faults``: the Stripe sandbox's names, their call faults
#: (``CALLS``), the wallets' own faults.
PROFILES: dict[str, WalletFaultProfile] = {
    "none": WalletFaultProfile(),
    "flaky": WalletFaultProfile(
        **CALLS["flaky"],
        notify_drop=0.05,
        notify_duplicate=0.1,
        notify_delay=0.2,
        notify_reorder=0.1,
        notify_before_query=0.1,
        query_system_error=0.03,
        close_race=0.05,
    ),
    "storm": WalletFaultProfile(
        **CALLS["storm"],
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
        #: Calls struck under the current profile (for ``WalletFaultProfile.limit``).
        self.strikes = faults.StrikeLimit()
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
        """A new profile starts afresh: its ``limit`` counts from now, no outage is on."""
        self._profile, self.strikes, self.outage_until = profile, faults.StrikeLimit(), 0.0

    def record(self, kind: str, detail: str) -> None:
        """Log one injected fault."""
        self.log.append({"kind": kind, "detail": detail})

    def counts(self) -> dict[str, int]:
        """Injected faults by kind."""
        return dict(Counter(entry["kind"] for entry in self.log))

    def call(self, *, mutating: bool) -> CallFaults:
        """Decide the faults of the next API call (``*_after`` only strike writes; none past
        the profile's ``limit`` of struck calls)."""
        decided = self.dice.call(self.profile, mutating=mutating)
        return self.strikes.apply(decided, self.profile.limit)

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
        """Whether this trade (or refund) query answers ``SYSTEM_ERROR``."""
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
        p = self.profile
        decided = self.dice.delivery(
            "notify",
            drop=p.notify_drop,
            duplicate=p.notify_duplicate,
            delay=p.notify_delay,
            delay_ms=p.notify_delay_ms,
            reorder=p.notify_reorder,
        )
        for kind, struck in (
            ("notify_drop", decided.drop),
            ("notify_duplicate", decided.duplicate and not decided.drop),
            ("notify_delay", decided.delay_ms and not decided.drop),
        ):
            if struck:
                self.record(kind, f"{ref} {decided.delay_ms}ms" if kind == "notify_delay" else ref)
        return decided

"""What every sandbox's fault profiles share: the faults of an API call (the same at every
provider, answered in each one's words), seeded dice, the check of a profile's settings,
and selection by name or TOML file.

A profile is a frozen dataclass of settings. A setting is a probability (0 to 1), unless
its name ends in ``_s`` (seconds) or is ``limit`` (a count): those are any number of at
least 0. A ``(low, high)`` pair is two whole numbers. Each provider's sandbox defines its
profile class and its named profiles (``none``, ``flaky``, ``storm``, ...); the Stripe
sandbox's are in :mod:`.stripe.sandbox.faults`, the wallets' in :mod:`.wallet_faults`.
"""

from __future__ import annotations

import asyncio
import random
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, ClassVar, Protocol, TypeVar

from starlette.requests import Request


class Dataclass(Protocol):
    """Any dataclass (what :func:`dataclasses.replace` takes)."""

    __dataclass_fields__: ClassVar[dict[str, Any]]


#: A provider's fault profile class.
Profile = TypeVar("Profile", bound=Dataclass)


@dataclass(frozen=True, slots=True)
class CallProfile:
    """Probabilities per API call of the faults every sandbox injects, and their sizes; a
    provider's profile adds its own."""

    #: Added latency, drawn uniformly from ``latency_ms``.
    latency: float = 0.0
    latency_ms: tuple[int, int] = (20, 200)
    #: The provider's server error before anything happened.
    error_before: float = 0.0
    #: The write happened, then a server error: the answer is lost, the effect stays (a
    #: repeat of the same request is harmless).
    error_after: float = 0.0
    #: The write happened, then the response is held for ``hold_s`` (past any client timeout).
    timeout_after: float = 0.0
    hold_s: float = 60.0
    #: The provider's rate-limit answer.
    rate_limit: float = 0.0
    #: Chance per call that an outage window of ``outage_s`` (every call refused) begins.
    outage: float = 0.0
    outage_s: float = 5.0
    #: Call faults strike at most ``limit`` calls under this profile (0: no limit). Only the
    #: calls a fault struck count (a read does not use up a ``*_after`` fault, which strikes
    #: writes only); once used up, no fault strikes, latency included.
    limit: int = 0


@dataclass(frozen=True, slots=True)
class CallFaults:
    """What to do to one API call."""

    latency_ms: int
    outage: bool
    rate_limit: bool
    error_before: bool
    error_after: bool
    timeout_after: bool
    #: Stripe's own: the 500 is saved under the Idempotency-Key (:mod:`.stripe.sandbox`).
    error_saved: bool = False

    @property
    def strikes(self) -> bool:
        """Whether a fault other than latency strikes the call (what ``limit`` counts)."""
        return (
            self.outage
            or self.rate_limit
            or self.error_before
            or self.error_after
            or self.timeout_after
            or self.error_saved
        )


#: The call faults of the named profiles, the same at every provider's sandbox (each adds
#: its own faults to them): ``flaky`` fails a few calls, ``storm`` many, with outages.
CALLS: dict[str, dict[str, Any]] = {
    "none": {},
    "flaky": {
        "latency": 0.2,
        "error_before": 0.03,
        "error_after": 0.02,
        "timeout_after": 0.02,
        "rate_limit": 0.03,
    },
    "storm": {
        "latency": 0.5,
        "latency_ms": (100, 1500),
        "error_before": 0.1,
        "error_after": 0.08,
        "timeout_after": 0.08,
        "hold_s": 30.0,
        "rate_limit": 0.1,
        "outage": 0.01,
        "outage_s": 10.0,
    },
}
#: A call left alone.
NO_CALL_FAULTS = CallFaults(0, False, False, False, False, False)


class StrikeLimit:
    """Counts the calls faults struck under one profile, for its ``limit``."""

    def __init__(self) -> None:
        self.struck = 0

    def apply(self, decided: CallFaults, limit: int) -> CallFaults:
        """``decided``, or no faults once ``limit`` calls were struck (0: no limit)."""
        if limit and self.struck >= limit:
            return NO_CALL_FAULTS
        if decided.strikes:
            self.struck += 1
        return decided


@dataclass(frozen=True, slots=True)
class DeliveryFaults:
    """What to do to one webhook or notification."""

    drop: bool
    duplicate: bool
    delay_ms: int
    reorder: bool


class FaultDice:
    """One seeded random stream per fault kind: each kind draws from its own stream, so one
    seed always gives one sequence of faults whatever else happens."""

    def __init__(self, seed: int) -> None:
        self._seed = seed
        self._streams: dict[str, random.Random] = {}

    def _stream(self, name: str) -> random.Random:
        stream = self._streams.get(name)
        if stream is None:  # made once: seeding a stream hashes its name (about 10 µs)
            stream = self._streams[name] = random.Random(f"{self._seed}:{name}")
        return stream

    def roll(self, name: str, probability: float) -> bool:
        """True with ``probability``; always consumes one draw of stream ``name``."""
        return self._stream(name).random() < probability

    def between(self, name: str, bounds: tuple[int, int]) -> int:
        """An integer in ``bounds``, from stream ``name``."""
        return self._stream(name).randint(*bounds)

    def call(self, profile: CallProfile, *, mutating: bool) -> CallFaults:
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
        )

    def delivery(
        self,
        kind: str,
        *,
        drop: float,
        duplicate: float,
        delay: float,
        delay_ms: tuple[int, int],
        reorder: float,
    ) -> DeliveryFaults:
        """Decide the faults of one delivery, from the streams ``{kind}_drop`` and so on."""
        delayed = self.roll(f"{kind}_delay", delay)
        amount = self.between(f"{kind}_delay_ms", delay_ms)
        return DeliveryFaults(
            drop=self.roll(f"{kind}_drop", drop),
            duplicate=self.roll(f"{kind}_duplicate", duplicate),
            delay_ms=amount if delayed else 0,
            reorder=self.roll(f"{kind}_reorder", reorder),
        )


async def hold(request: Request, seconds: float) -> None:
    """Keep an answer back for ``seconds`` or until the client hangs up (a timeout after
    the write: the effect stays, the answer never comes)."""

    async def hang_up() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    try:
        await asyncio.wait_for(hang_up(), seconds)
    except TimeoutError:
        pass


def is_amount(name: str) -> bool:
    """Whether setting ``name`` is a duration or a count rather than a probability."""
    return name.endswith("_s") or name == "limit"


def profile_from(
    values: Mapping[str, Any], named: Mapping[str, Profile], *, base: Profile | None = None
) -> Profile:
    """A profile from a mapping of settings over ``base`` (or over the named profile its
    ``base`` key names, ``none`` by default); unknown names and wrong kinds are refused
    (``ValueError``)."""
    start = base if base is not None else _named(named, str(values.get("base", "none")))
    known = {f.name for f in fields(start)}
    unknown = set(values) - known - {"base"}
    if unknown:
        raise ValueError(f"unknown fault settings: {sorted(unknown)}")
    clean: dict[str, Any] = {
        k: tuple(v) if isinstance(v, list) else v for k, v in values.items() if k != "base"
    }
    for name, value in clean.items():
        _check(name, value, getattr(start, name))
    return replace(start, **clean)


def load_profile(spec: str, named: Mapping[str, Profile]) -> Profile:
    """A named profile or a TOML file of settings (at top level or under ``[faults]``;
    ``base = "flaky"`` starts from a named profile)."""
    if spec in named:
        return named[spec]
    path = Path(spec)
    if not path.is_file():
        raise ValueError(f"no fault profile named {spec!r} ({', '.join(named)}) and no such file")
    data = tomllib.loads(path.read_text())
    return profile_from(data.get("faults", data), named)


def _named(named: Mapping[str, Profile], name: str) -> Profile:
    if name not in named:
        raise ValueError(f"no fault profile named {name!r} ({', '.join(named)})")
    return named[name]


def _check(name: str, value: Any, default: Any) -> None:
    """Refuse a setting of the wrong kind (``ValueError``) before it breaks a call later."""
    if isinstance(default, tuple):
        ok = (
            isinstance(value, tuple)
            and len(value) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value)
            and value[0] <= value[1]
        )
        if not ok:
            raise ValueError(f"{name} must be two whole numbers [low, high], 0 <= low <= high")
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValueError(f"{name} must be a number of at least 0")
    if isinstance(default, int) and not isinstance(default, bool) and not isinstance(value, int):
        raise ValueError(f"{name} must be a whole number")
    if not is_amount(name) and value > 1:
        raise ValueError(f"{name} is a probability: from 0 to 1")

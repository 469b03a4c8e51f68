"""What every sandbox's fault profiles share: seeded dice, the check of a profile's settings,
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
from dataclasses import fields, replace
from pathlib import Path
from typing import Any, ClassVar, Protocol, TypeVar

from starlette.requests import Request


class Dataclass(Protocol):
    """Any dataclass (what :func:`dataclasses.replace` takes)."""

    __dataclass_fields__: ClassVar[dict[str, Any]]


#: A provider's fault profile class.
Profile = TypeVar("Profile", bound=Dataclass)


class FaultDice:
    """One seeded random stream per fault kind: each kind draws from its own stream, so one
    seed always gives one sequence of faults whatever else happens."""

    def __init__(self, seed: int) -> None:
        self._seed = seed
        self._streams: dict[str, random.Random] = {}

    def _stream(self, name: str) -> random.Random:
        return self._streams.setdefault(name, random.Random(f"{self._seed}:{name}"))

    def roll(self, name: str, probability: float) -> bool:
        """True with ``probability``; always consumes one draw of stream ``name``."""
        return self._stream(name).random() < probability

    def between(self, name: str, bounds: tuple[int, int]) -> int:
        """An integer in ``bounds``, from stream ``name``."""
        return self._stream(name).randint(*bounds)


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

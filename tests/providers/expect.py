"""What a provider documents for a call whose answer differs by protocol: a refusal, or an
answer that must hold. Each harness names one per such call, so the contract states the
call once and the harness says which protocol answer it must get."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest


@dataclass(frozen=True)
class Refusal:
    """The call raises ``error``."""

    error: type[Exception]

    async def check(self, call: Awaitable[Any]) -> None:
        with pytest.raises(self.error):
            await call


@dataclass(frozen=True)
class Answer:
    """The call answers, and ``holds`` is true of its answer (``says`` tells what it is)."""

    says: str
    holds: Callable[[Any], bool]

    async def check(self, call: Awaitable[Any]) -> None:
        got = await call
        assert self.holds(got), f"expected {self.says}, got {got!r}"


#: How a provider answers one kind of call.
Expectation = Refusal | Answer

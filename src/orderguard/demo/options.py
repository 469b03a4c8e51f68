"""What ``orderguard demo`` is asked to run (its command line, as options)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

from orderguard.demo.shoppers import PAID_WITHIN_S, REFUND_SHARE

if TYPE_CHECKING:
    from orderguard.demo.audit import Report

#: Abandoned 3-D Secure challenges expire after this many seconds (30 minutes at scale 1).
ACTION_EXPIRY_S = 10.0


@dataclass(frozen=True)
class DemoOptions:
    orders: int = 1000
    seed: int | None = None
    faults: str = "storm"
    concurrency: int = 96
    database_url: str | None = None
    json_out: bool = False
    #: Seconds to wait for every order to be resolved after the last checkout.
    settle_timeout_s: float = 90.0
    planted_defect: str | None = None
    keep: Path | None = None
    #: Share of the checkouts that can end paid whose order the back office refunds.
    refund_share: float = REFUND_SHARE
    #: Whose sandbox the shoppers pay at: a provider with a sandbox (``providers/labs.py``)
    #: or ``all``; None: the card sandbox (the development one), as before ``--provider``.
    provider: str | None = None
    #: The wallets' fault profile (a name or a TOML file of theirs); None: as ``faults``.
    wallet_faults: str | None = None
    #: Seconds a payment waits for the shopper (3-D Secure, a wallet's cashier).
    action_expiry_s: float = ACTION_EXPIRY_S

    @property
    def paid_within_s(self) -> float:
        """Seconds the back office waits for an order to be paid before it refunds nothing:
        no longer than the run waits for its orders."""
        return min(PAID_WITHIN_S, self.settle_timeout_s)


@dataclass(frozen=True)
class Schedule:
    """What the card demo runs the service with, shared by every lane (``demo/run.py``)."""

    #: The service's settings (the compressed schedule).
    settings: dict[str, str]
    #: The schedule as the report shows it.
    summary: dict[str, object]
    #: Seconds a shopper's browser waits for an answer.
    client_timeout_s: float
    #: One last sweep of the providers' charges: (work folder, environment) -> its summary.
    sweep: Callable[[Path, dict[str, str]], str]


#: Runs a demo whose shoppers pay at a wallet (or at every provider): options, seed, work
#: folder, console, the card sandbox's fault profile, the schedule -> the report
#: (``demo/wallet_run.py``'s ``run_lanes``, given to ``run_demo`` by the command).
LaneRunner = Callable[
    [DemoOptions, int, Path, Console, "Path | str", Schedule], Awaitable["Report"]
]

"""One running sandbox: its keys, book of trades, notifier, clock and switched faults."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from orderguard.providers.alipay.sandbox.config import SandboxConfig, load_keys
from orderguard.providers.alipay.sandbox.notifier import Notifier, notification
from orderguard.providers.alipay.sandbox.trades import Book, Trade


@dataclass
class Faults:
    """How many of the next API calls fail, and how (each counts down)."""

    #: Answer HTTP 500 without running the call.
    http_500: int = 0
    #: Answer 40004 ``ACQ.SYSTEM_ERROR`` without running the call.
    system_error: int = 0
    #: Run the call, then answer HTTP 500 (the answer is lost, the effect is not).
    lose_answer: int = 0
    #: Run the call, then sign the answer wrongly.
    bad_sign: int = 0
    counts: dict[str, int] = field(default_factory=dict)

    def take(self, name: str) -> bool:
        """Whether fault ``name`` applies to this call (and count it down)."""
        left = int(getattr(self, name))
        if left <= 0:
            return False
        setattr(self, name, left - 1)
        self.counts[name] = self.counts.get(name, 0) + 1
        return True


class Sandbox:
    """The state behind the app."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.keys = load_keys(config)
        self.offset = timedelta()
        self.book = Book(self.now)
        self.notifier = Notifier(config.retry_delays_s, self.now)
        self.faults = Faults()

    def now(self) -> datetime:
        """The sandbox's clock (real time, moved by ``/admin/clock``)."""
        return datetime.now(UTC) + self.offset

    def notify(self, trade: Trade, *, refund_request_no: str | None = None) -> None:
        """Notify the shop of ``trade`` as it stands."""
        form = notification(
            trade,
            app_id=self.config.app_id,
            seller_id=self.config.seller_id,
            now=self.now(),
            key=self.keys.alipay,
            refund_request_no=refund_request_no,
        )
        self.notifier.send(trade, form)

"""One running sandbox: its keys, book of trades, notifier, clock, switched faults and
the fault profile's injector."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from orderguard.providers.alipay import errors
from orderguard.providers.alipay.sandbox.config import SandboxConfig, load_keys
from orderguard.providers.alipay.sandbox.notifier import Notifier, notification
from orderguard.providers.alipay.sandbox.trades import Book, BusinessError, Trade
from orderguard.providers.wallet_faults import FaultInjector


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
        self.injector = FaultInjector(config.faults, config.seed)
        self.notifier = Notifier(config.retry_delays_s, self.now, self.injector)
        self.faults = Faults()

    def now(self) -> datetime:
        """The sandbox's clock (real time, moved by ``/admin/clock``)."""
        return datetime.now(UTC) + self.offset

    def pay(self, out_trade_no: str) -> Trade:
        """The shopper pays the trade (:meth:`.Book.pay`), which is then notified; the query
        may lag the payment (the profile's ``notify_before_query``)."""
        trade = self.book.pay(out_trade_no)
        self.injector.paid(out_trade_no)
        self.notify(trade)
        return trade

    def race_close(self, out_trade_no: str) -> None:
        """Before a close: the shopper's payment may land first (the profile's
        ``close_race``); then the close is refused as Alipay refuses it for a paid trade."""
        if not self.injector.close_race():
            return
        try:
            self.pay(out_trade_no)
        except BusinessError:
            return  # no trade waiting for payment: nothing could land
        self.injector.record("close_race", out_trade_no)
        raise BusinessError(errors.TRADE_STATUS_ERROR, "交易状态不合法")

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

"""The wired application as one value: what ``bootstrap`` builds and the faces receive.

The HTTP app, the web faces, the worker and the observability checks are given a
:class:`Container`; only :mod:`orderguard.bootstrap` (the composition root) builds one.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass, field

from orderguard.config import Settings
from orderguard.services.clock import Clock, system_clock
from orderguard.services.inbound_webhooks import WebhookInbox
from orderguard.services.intake import Intake
from orderguard.services.janitor import Janitor
from orderguard.services.operations import Operations
from orderguard.services.pace import Pace
from orderguard.services.pay_again import PayAgain
from orderguard.services.payments import Payments
from orderguard.services.recheck import Recheck
from orderguard.services.refund_check import RefundCheck
from orderguard.services.shopper_return import ShopperReturn
from orderguard.services.sweep import Sweeper
from orderguard.storage.ports import UnitOfWorkFactory


@dataclass
class Container:
    """The wired application: settings, storage, providers and services."""

    settings: Settings
    storage: UnitOfWorkFactory
    payments: Payments
    intake: Intake
    pay_again: PayAgain
    #: One shopper-page payment per order per interval (each one calls the provider).
    shopper_pay_pace: Pace
    recheck: Recheck
    shopper_return: ShopperReturn
    inbox: WebhookInbox
    janitor: Janitor
    sweeper: Sweeper
    operations: Operations
    #: Looks up refunds still pending at their provider (issue 19).
    refund_check: RefundCheck
    clock: Clock = system_clock
    resources: ExitStack = field(default_factory=ExitStack)

    async def close(self) -> None:
        """Release every connection and stop the in-process sandbox."""
        await self.payments.providers.aclose()
        await self.storage.close()
        self.resources.close()

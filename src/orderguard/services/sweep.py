"""The orphan and duplicate-charge sweep (G3, G4, G7).

Lists every provider's successful charges in a window and holds them against the orders:

- a charge whose order does not exist is an *orphan*: the order is rebuilt from the
  snapshot in the charge's metadata (:mod:`.orphans`), else the charge is refunded;
- a charge for an order paid by another charge is a *duplicate*, and a charge for a
  cancelled order came *after cancellation*: both are refunded, noted on the order;
- a charge for an attempt the order does not know, or for one it closed as failed, while
  the order is not paid, is flagged for review: it may be the order's only payment.

A provider that cannot list its charges (Alipay, WeChat Pay) is asked instead about the
trades of the orders cancelled in the window, one by one (:mod:`.wallet_sweep`); a trade
it holds as paid is a charge after cancellation like any other.

With ``auto_refund`` off nothing is refunded: orders are flagged and orphans recorded for
review. A charge of an order that is not settled yet is left to the recheck, which is about
to record it. A charge a settlement report listed with no order (a ``reported`` finding,
recorded by reconciliation) is looked up at its provider on the next sweep and resolved the
same way; it stays pending while no configured provider has that name. Every resolution
is a finding, unique per (provider, charge, kind), recorded with its timeline entry in one
transaction; refunds use keys derived from the charge. So a second sweep over the same
window changes nothing, and one interrupted half-way finishes the job.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from orderguard.domain import ids
from orderguard.domain.errors import DuplicateMerchantReference
from orderguard.domain.events import Cause
from orderguard.domain.flags import LABELS, FlagReason
from orderguard.domain.order import Order
from orderguard.domain.states import AttemptState, OrderState
from orderguard.providers.base import Charge, PaymentOutcome, ProviderError
from orderguard.services.clock import Clock, system_clock
from orderguard.services.orphans import recovered_order
from orderguard.services.payments import Payments
from orderguard.services.providers import ProviderSlot, UnknownProvider
from orderguard.services.wallet_sweep import TradeQueries
from orderguard.storage.errors import StorageError
from orderguard.storage.ports import SweepFinding, UnitOfWorkFactory

log = logging.getLogger("orderguard.sweep")

#: Finding kinds: no order; a second charge; a charge after cancellation; a charge the
#: order cannot explain (unknown attempt, or one it closed as failed).
ORPHAN, DUPLICATE, AFTER_CANCEL, UNEXPLAINED = "orphan", "duplicate", "after_cancel", "unexplained"
#: A charge a settlement report listed and no order explains, handed over by reconciliation;
#: it waits as ``pending`` until a sweep has asked the provider about it.
REPORTED, PENDING = "reported", "pending"
#: Kinds whose charge is refunded (when refunds are on) rather than flagged.
REFUNDABLE = frozenset({ORPHAN, DUPLICATE, AFTER_CANCEL})
#: The review reason of each kind of extra charge found on an order.
_FLAG_FOR = {
    DUPLICATE: FlagReason.DUPLICATE_CHARGE,
    AFTER_CANCEL: FlagReason.CHARGE_AFTER_CANCEL,
    UNEXPLAINED: FlagReason.UNEXPLAINED_CHARGE,
}
_PAID = frozenset({AttemptState.SUCCEEDED, AttemptState.REFUNDED})
#: The longest refund key every provider takes (Alipay's ``out_request_no`` and WeChat
#: Pay's ``out_refund_no`` stop at 64 characters).
MAX_REFUND_KEY = 64
Known = set[tuple[str, str, str]]


@dataclass
class SweepReport:
    """What one sweep saw and did."""

    charges_seen: int = 0
    orphans_recovered: int = 0
    orphans_refunded: int = 0
    #: Duplicates and charges after cancellation, refunded.
    duplicates_refunded: int = 0
    #: Orders flagged, and orphans recorded for review (refunds off).
    flagged: int = 0
    #: Charges a previous sweep already resolved.
    already_known: int = 0
    #: Trades asked about one by one at providers that cannot list their charges.
    trades_asked: int = 0
    #: Provider calls that failed; the next sweep tries again.
    errors: int = 0


def refund_key(kind: str, provider_ref: str) -> str:
    """The idempotency key of the sweep's refund of a charge (a wallet's ``out_request_no``
    / ``out_refund_no``): derived from the charge alone, so every sweep, repeated or
    interrupted, sends the same one and the provider refunds once.

    ``orderguard-after-cancel-REF``; when that is longer than :data:`MAX_REFUND_KEY` (an
    Alipay ``out_trade_no`` can be 64 characters itself) the reference is replaced by the
    first 32 hex digits of its SHA-256.
    """
    prefix = f"orderguard-{kind.replace('_', '-')}-"
    if len(prefix) + len(provider_ref) <= MAX_REFUND_KEY:
        return prefix + provider_ref
    return prefix + hashlib.sha256(provider_ref.encode()).hexdigest()[:32]


def extra_charge(order: Order, provider: str, charge: Charge) -> str | None:
    """The finding kind when ``charge`` is one too many for ``order``, else ``None``.

    The charge an order's paid attempt references is the order's; every other one is a
    duplicate. Before the order is settled only charges it cannot explain are findings.
    """
    if order.state is OrderState.CANCELLED:
        return AFTER_CANCEL
    paid = [a for a in order.attempts if a.state in _PAID]
    if paid:
        keeper = paid[0]
        return (
            None
            if (keeper.provider, keeper.provider_ref) == (provider, charge.provider_ref)
            else DUPLICATE
        )
    attempt = next((a for a in order.attempts if a.id == charge.attempt_id), None)
    if attempt is None or attempt.state is AttemptState.FAILED:
        return UNEXPLAINED
    return None


class Sweeper:
    """Finds orphan and duplicate charges at every provider and resolves them."""

    def __init__(
        self,
        storage: UnitOfWorkFactory,
        payments: Payments,
        *,
        auto_refund: bool = True,
        clock: Clock = system_clock,
        queries: TradeQueries | None = None,
    ) -> None:
        """``queries`` asks the providers that cannot list their charges (default: at
        :mod:`.wallet_sweep`'s batch and pace)."""
        self._storage = storage
        self._payments = payments
        self._auto_refund = auto_refund
        self._clock = clock
        self._queries = queries or TradeQueries(storage, payments.providers)

    async def sweep_last(self, window: timedelta) -> SweepReport:
        """Sweep the charges of the last ``window``."""
        now = self._clock()
        return await self.sweep(since=now - window, until=now + timedelta(seconds=1))

    async def sweep(self, *, since: datetime, until: datetime) -> SweepReport:
        """Hold every successful charge created in ``[since, until)`` against the orders."""
        report = SweepReport()
        found: list[tuple[ProviderSlot, Charge]] = []
        for slot in self._payments.providers.slots:
            if not slot.capabilities.list_recent_charges:
                continue  # its charges are held against the orders by reconciliation alone
            try:
                charges = await slot.provider.list_successful_charges(since, until)
            except ProviderError as exc:
                log.warning("cannot list the charges at %s, next sweep: %s", slot.name, exc)
                report.errors += 1
                continue
            found += [(slot, charge) for charge in charges]
        async with self._storage() as uow:
            known = {(f.provider, f.provider_ref, f.kind) for f in await uow.findings.all()}
        asked = await self._queries.paid_trades(
            since=since, resolved={(provider, ref) for provider, ref, _ in known}
        )
        found += asked.found
        report.trades_asked, report.errors = asked.asked, report.errors + asked.errors
        report.charges_seen = len(found)
        for order_id, group in _by_order(found).items():
            await self._check(order_id, group, known, report)
        await self._reported(report)
        return report

    async def _reported(self, report: SweepReport) -> None:
        """Settle the charges settlement reports listed with no order (see the docstring)."""
        async with self._storage() as uow:
            findings = await uow.findings.all()
        known = {(f.provider, f.provider_ref, f.kind) for f in findings}
        for finding in (f for f in findings if (f.kind, f.resolution) == (REPORTED, PENDING)):
            try:
                slot = self._payments.providers.named(finding.provider)
                result = await slot.provider.retrieve_payment(finding.provider_ref)
            except UnknownProvider:
                continue  # no adapter for it here: it stays pending, for review
            except ProviderError as exc:
                log.warning("cannot look up reported charge %s: %s", finding.provider_ref, exc)
                report.errors += 1
                continue
            if result.outcome is not PaymentOutcome.SUCCEEDED:
                await self._resolve(finding, "not_a_successful_charge")
                continue
            charge = Charge(
                provider_ref=finding.provider_ref,
                amount=result.amount if result.amount is not None else finding.amount,
                currency=result.currency or finding.currency,
                created_at=result.created_at or finding.found_at,
                order_id=result.order_id,
                attempt_id=result.attempt_id,
                metadata=result.metadata,
            )
            report.charges_seen += 1
            errors = report.errors
            await self._check(charge.order_id or "", [(slot, charge)], known, report)
            if report.errors == errors:
                await self._resolve(finding, "swept")

    async def _resolve(self, finding: SweepFinding, resolution: str) -> None:
        async with self._storage() as uow:
            await uow.findings.resolve(finding.id, resolution)
            await uow.commit()

    async def _check(
        self,
        order_id: str,
        group: list[tuple[ProviderSlot, Charge]],
        known: Known,
        report: SweepReport,
    ) -> None:
        async with self._storage() as uow:
            order = await uow.orders.get(order_id) if order_id else None
        for slot, charge in group:
            kind = ORPHAN if order is None else extra_charge(order, slot.name, charge)
            if kind is None:
                continue
            if (slot.name, charge.provider_ref, kind) in known:
                report.already_known += 1
                continue
            try:
                if order is None:
                    order = await self._orphan(slot, charge, report)
                else:
                    await self._extra(order.id, slot, charge, kind, report)
            except (ProviderError, StorageError) as exc:
                log.warning(
                    "cannot settle %s at %s, next sweep: %s", charge.provider_ref, slot.name, exc
                )
                report.errors += 1

    async def _orphan(
        self, slot: ProviderSlot, charge: Charge, report: SweepReport
    ) -> Order | None:
        """Recover the order (returned, so further charges for it count as extra) or refund."""
        order = recovered_order(charge, slot.name, at=self._clock())
        if order is not None and await self._recover(order, slot, charge):
            log.warning(
                "recovered order %s from charge %s at %s", order.id, charge.provider_ref, slot.name
            )
            report.orphans_recovered += 1
            return order
        if not self._auto_refund:
            if await self._record(slot, charge, ORPHAN, "review", None):
                log.warning(
                    "orphan charge %s at %s left for review", charge.provider_ref, slot.name
                )
            report.flagged += 1
            return None
        await self._refund(slot, charge, ORPHAN)
        await self._record(slot, charge, ORPHAN, "refunded", charge.order_id)
        log.warning("refunded orphan charge %s at %s", charge.provider_ref, slot.name)
        report.orphans_refunded += 1
        return None

    async def _recover(self, order: Order, slot: ProviderSlot, charge: Charge) -> bool:
        """Store the rebuilt order; ``False`` when its merchant reference is taken meanwhile."""
        try:
            async with self._storage() as uow:
                await uow.orders.add(order)
                await uow.findings.record(
                    self._finding(slot, charge, ORPHAN, "recovered", order.id)
                )
                await uow.commit()
        except DuplicateMerchantReference:
            return False  # the shop placed the purchase again: this charge is one too many
        return True

    async def _extra(
        self, order_id: str, slot: ProviderSlot, charge: Charge, kind: str, report: SweepReport
    ) -> None:
        refund = self._auto_refund and kind in REFUNDABLE
        if refund:
            await self._refund(slot, charge, kind)
        async with self._storage() as uow:
            finding = self._finding(
                slot, charge, kind, "refunded" if refund else "flagged", order_id
            )
            if not await uow.findings.record(finding):
                report.already_known += 1
                return
            order = await uow.orders.get(order_id, for_update=True)
            assert order is not None  # orders are never deleted
            reason, detail = _FLAG_FOR[kind], _describe(slot.name, charge)
            text = f"{LABELS[reason]}: {detail}"
            if refund:
                order.note(f"{text}: refunded", cause=Cause.SWEEP, at=self._clock())
            else:
                order.flag(reason, f"{detail}: review it", cause=Cause.SWEEP, at=self._clock())
            await uow.orders.save(order)
            await uow.commit()
        log.warning("%s on order %s (%s)", text, order_id, finding.resolution)
        if refund:
            report.duplicates_refunded += 1
        else:
            report.flagged += 1

    async def _refund(self, slot: ProviderSlot, charge: Charge, kind: str) -> None:
        if charge.amount_refunded >= charge.amount:
            return  # refunded already (by an interrupted sweep, or by hand)
        key = refund_key(kind, charge.provider_ref)
        await slot.provider.refund(charge.provider_ref, amount=None, idempotency_key=key)

    async def _record(
        self, slot: ProviderSlot, charge: Charge, kind: str, resolution: str, order_id: str | None
    ) -> bool:
        async with self._storage() as uow:
            recorded = await uow.findings.record(
                self._finding(slot, charge, kind, resolution, order_id)
            )
            await uow.commit()
        return recorded

    def _finding(
        self, slot: ProviderSlot, charge: Charge, kind: str, resolution: str, order_id: str | None
    ) -> SweepFinding:
        return SweepFinding(
            id=ids.new_id("swf"),
            provider=slot.name,
            provider_ref=charge.provider_ref,
            kind=kind,
            amount=charge.amount,
            currency=charge.currency.upper(),
            resolution=resolution,
            found_at=self._clock(),
            order_id=order_id,
        )


def _by_order(
    found: Iterable[tuple[ProviderSlot, Charge]],
) -> dict[str, list[tuple[ProviderSlot, Charge]]]:
    """Charges per order id (``""`` for charges naming none), oldest first."""
    groups: dict[str, list[tuple[ProviderSlot, Charge]]] = {}
    for slot, charge in sorted(found, key=lambda sc: (sc[1].created_at, sc[1].provider_ref)):
        groups.setdefault(charge.order_id or "", []).append((slot, charge))
    return groups


def _describe(provider: str, charge: Charge) -> str:
    amount = f"{charge.amount} {charge.currency.upper()}"
    return f"{charge.provider_ref} at {provider} ({amount}, attempt {charge.attempt_id})"

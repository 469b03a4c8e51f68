"""The contract harness of Alipay: :class:`AlipayProvider` against the Alipay sandbox, the
shopper at its cashier pages, its ``/ledger`` the oracle (:mod:`.wallet_harness`)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qsl, unquote, urlencode

import httpx

from orderguard.providers.alipay import keys, signing
from orderguard.providers.alipay import mapping as alipay_mapping
from orderguard.providers.alipay.methods import PAGE
from orderguard.providers.alipay.plugin import PROFILE as ALIPAY_PROFILE
from orderguard.providers.alipay.sandbox.config import SandboxConfig as AlipayConfig
from orderguard.providers.alipay.sandbox.server import run_sandbox as run_alipay
from orderguard.providers.base import PaymentOutcome, PaymentProvider, PaymentResult
from orderguard.providers.serving import serve_in_thread
from tests.providers.alipay_support import KeyPairs, NotifyReceiver, make_provider
from tests.providers.expect import Answer
from tests.providers.harness import IMPATIENT_S, FakeClock, HttpFaults, Signed
from tests.providers.wallet_harness import FORGED_SIGNATURE, WalletHarness, until


@dataclass(frozen=True)
class AlipayLab:
    """A running Alipay sandbox, its keys and the shop's notify receiver."""

    url: str
    pairs: KeyPairs
    notify_url: str
    receiver: NotifyReceiver


class AlipayHarness(HttpFaults, WalletHarness):
    """:class:`AlipayProvider` against the Alipay sandbox; the shopper uses its cashier."""

    capabilities = ALIPAY_PROFILE.capabilities
    method = PAGE
    decline_code = cancel_code = alipay_mapping.CLOSED
    succeeded_event = "trade_status.TRADE_SUCCESS"
    #: The answer carries Alipay's cumulative ``refund_fee`` beside the metadata.
    refund_metadata_added = frozenset({"refund_fee"})
    unknown_ref = "pay_does_not_exist"
    #: A reference Alipay does not hold is a trade the shopper has not opened yet.
    unknown_retrieval = Answer(
        "a trade not created yet, awaiting the shopper",
        lambda r: (
            r.outcome is PaymentOutcome.ACTION_REQUIRED
            and r.metadata.get(alipay_mapping.STATE) == alipay_mapping.NOT_CREATED
        ),
    )
    #: Closing a trade Alipay does not hold answers closed (the cashier refuses the URL
    #: after its ``time_expire``).
    unknown_cancel = Answer(
        "closed, marked not created",
        lambda r: (
            r.outcome is PaymentOutcome.FAILED
            and r.decline_code == alipay_mapping.CLOSED
            and r.metadata.get(alipay_mapping.STATE) == alipay_mapping.NOT_CREATED
        ),
    )
    #: No search by order and no listing: ``find_payments`` without references and
    #: ``list_successful_charges`` answer an empty list (the adapter's documented answer).
    unoffered = Answer("an empty list", lambda found: found == [])
    #: Alipay resends a notification for a day and signs no time the adapter checks: an
    #: old notification that verifies is accepted (its ``notify_id`` de-duplicates it).
    stale_webhook = Answer(
        "the verified event, dated by its old notify_time",
        lambda event: (
            event.payment is not None
            and (datetime.now(UTC) - event.created_at).total_seconds() >= 399
        ),
    )

    #: ``alipay.trade.refund`` answers the refund made (or refuses it): never pending.
    refunds_wait = False
    lookup_error: ClassVar[dict[str, Any]] = {"query_system_error": 1}

    def __init__(self, url: str, pairs: KeyPairs, notify_url: str, receiver: NotifyReceiver):
        self.clock = FakeClock()
        self.url, self.pairs, self.notify_url, self.receiver = url, pairs, notify_url, receiver
        self.provider = make_provider(url, pairs, notify_url=notify_url)
        self.http = httpx.AsyncClient(base_url=url, verify=False)  # plain HTTP: no CA store

    async def slow_lookups(self) -> PaymentProvider:
        await self._late()
        return make_provider(
            self.url, self.pairs, notify_url=self.notify_url, timeout_s=IMPATIENT_S
        )

    async def mend(self) -> None:
        await self.faults()

    async def _cashier(self, created: PaymentResult) -> str | None:
        """The shopper opens the cashier URL and logs in: the trade's number, or ``None``
        when the cashier refuses (the trade is closed)."""
        assert created.redirect_url is not None
        page = await self.http.get(created.redirect_url)
        if page.status_code == 400:
            return None
        assert page.status_code == 200, page.text
        found = re.search(r"action='/cashier/([A-Za-z0-9_]+)/login'", page.text)
        assert found is not None, page.text
        login = await self.http.post(f"/cashier/{found[1]}/login")
        return found[1] if login.status_code == 200 else None

    async def follow(self, created: PaymentResult) -> str:
        ref = await self._cashier(created)
        assert ref is not None, "the cashier refused a new payment"
        return ref

    async def complete_action(self, created: PaymentResult, *, approved: bool) -> None:
        ref = await self._cashier(created)
        if ref is None:
            return  # closed: the cashier says so
        if approved:
            paid = await self.http.post(f"/cashier/{ref}/pay")
            assert paid.status_code in (200, 303, 400), paid.text  # 400: closed meanwhile
            return
        gave_up = await self.http.post(f"/admin/trades/{ref}/abandon")
        assert gave_up.status_code in (200, 409), gave_up.text

    async def successful_charges(self, order_id: str) -> int:
        charged = ("TRADE_SUCCESS", "TRADE_FINISHED")
        return sum(
            1
            for t in await self._trades()
            if unquote(t["passback_params"] or "") == order_id
            and (t["status"] in charged or t["refunded_fen"] > 0)
        )

    async def refunded(self, provider_ref: str) -> int:
        return sum(
            t["refunded_fen"] for t in await self._trades() if t["out_trade_no"] == provider_ref
        )

    async def signed_webhook(self, provider_ref: str, *, timestamp: int) -> Signed:
        """The sandbox's own TRADE_SUCCESS notification, signed again by Alipay's key as
        sent at ``timestamp`` (its ``notify_time``)."""

        def arrived() -> dict[str, str] | None:
            forms = [dict(parse_qsl(body.decode())) for body in self.receiver.bodies]
            return next(
                (
                    f
                    for f in forms
                    if f["out_trade_no"] == provider_ref and f["trade_status"] == "TRADE_SUCCESS"
                ),
                None,
            )

        form: dict[str, str] = await until(arrived, f"notification of {provider_ref}")
        form["notify_time"] = alipay_mapping.alipay_time(datetime.fromtimestamp(timestamp, UTC))
        form["sign"] = signing.sign(signing.notification_content(form), self.pairs.alipay)
        headers = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}
        return urlencode(form).encode(), headers

    def tamper(self, body: bytes) -> bytes:
        return body.replace(b"total_amount=", b"total_amount=9", 1)

    def unsigned(self, body: bytes, headers: dict[str, str]) -> Signed:
        form = dict(parse_qsl(body.decode()))
        del form["sign"]
        return urlencode(form).encode(), headers

    def badly_signed(self, body: bytes, headers: dict[str, str]) -> Signed:
        form = {**dict(parse_qsl(body.decode())), "sign": FORGED_SIGNATURE}
        return urlencode(form).encode(), headers


@contextmanager
def alipay_lab(directory: Path) -> Iterator[AlipayLab]:
    """The Alipay sandbox with new keys in ``directory`` and a notify receiver. Started
    once for the contract run: every test makes its own trades, and reads only those."""
    pairs = KeyPairs(keys.new_private_key(), keys.new_private_key())
    pairs.write(directory)
    receiver = NotifyReceiver()
    config = AlipayConfig(data_dir=str(directory), retry_delays_s=(0.05, 0.1))
    with serve_in_thread(receiver.app()) as notify, run_alipay(config) as url:
        yield AlipayLab(url, pairs, f"{notify}/notify", receiver)


def alipay_harness(lab: AlipayLab) -> AlipayHarness:
    """A harness with its own adapter and clients at the shared sandbox."""
    return AlipayHarness(lab.url, lab.pairs, lab.notify_url, lab.receiver)

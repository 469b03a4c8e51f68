"""``--apply`` on memory, SQLite and PostgreSQL: runs and exceptions recorded once, orders flagged
with the category as reason, orphan charges handed to the recovery sweep (G3, G4, G7)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from orderguard.api.app import create_app
from orderguard.bootstrap import wire
from orderguard.cli.reconcile import SETTLEMENT_FORMATS as FORMATS
from orderguard.providers.memory import InMemoryProvider
from orderguard.reconcile.apply import Applied, apply
from orderguard.reconcile.engine import EngineOptions
from orderguard.reconcile.queries import (
    exceptions_by_category,
    latest_exceptions,
    open_exceptions_by_category,
)
from orderguard.reconcile.run import Request, reconcile
from orderguard.services import queries
from orderguard.storage.memory import InMemoryStorage
from orderguard.storage.ports import UnitOfWorkFactory
from tests.conftest import LOCAL_URL, open_storage
from tests.factories import new_order
from tests.integration.conftest import Api, api_settings, memory_providers
from tests.integration.test_sweep import charge, findings
from tests.reconcile_support import seed

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "reconcile"


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
async def api(request: pytest.FixtureRequest) -> AsyncIterator[Api]:
    """The API's wiring on each back end, the in-memory one included: reconciliation reaches
    storage only through the unit of work."""
    if request.param == "memory":
        storage: UnitOfWorkFactory = InMemoryStorage()
    else:
        url = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")
        storage = await open_storage(url)
    providers = memory_providers()
    container = wire(api_settings(), storage, providers)
    transport = httpx.ASGITransport(app=create_app(container=container))
    async with httpx.AsyncClient(transport=transport, base_url=LOCAL_URL) as client:
        provider = providers.primary.provider
        assert isinstance(provider, InMemoryProvider)
        yield Api(client, container, provider)
    await storage.close()


def storage_of(api: Api) -> UnitOfWorkFactory:
    return api.container.storage


async def report_with_orphan(api: Api, tmp_path: Path) -> tuple[Path, str, str]:
    """The Stripe fixture whose unknown charge is a real, lost charge at the provider."""
    lost = new_order(reference="LOST-REC")
    ref = await charge(api, lost)
    text = (FIXTURES / "stripe_itemized.csv").read_text()
    text = text.replace("pi_X", ref).replace(",99.00,3.12,95.88,", ",48.48,1.00,47.48,")
    path = tmp_path / "report.csv"
    path.write_text(text)
    return path, ref, lost.id


async def run_apply(api: Api, files: list[Path], work: Path) -> Applied:
    work.mkdir()
    storage = storage_of(api)
    request = Request(files, options=EngineOptions(provider="memory"), formats=FORMATS)
    engine, outcome = await reconcile(storage, request, work)
    try:
        return await apply(storage, engine, outcome)
    finally:
        engine.close()


async def state(api: Api) -> tuple[object, ...]:
    """Everything ``--apply`` may change."""
    storage = storage_of(api)
    flags, timelines = {}, {}
    for letter in "ABCDEFG":
        detail = await queries.order_detail(storage, f"ord_{letter}")
        flags[letter] = detail.order.flag_reason
        timelines[letter] = len(detail.timeline)
    async with storage() as uow:
        runs = await uow.reconciliations.runs()
    return flags, timelines, await exceptions_by_category(storage), runs, await findings(api)


async def test_apply_flags_records_and_hands_orphans_over_once(api: Api, tmp_path: Path) -> None:
    await seed(api.container.storage, "pi_{}".format, provider="memory")
    report, ref, _ = await report_with_orphan(api, tmp_path)

    first = await run_apply(api, [report], tmp_path / "one")
    assert (first.new_run, first.recorded, first.flagged, first.handed_to_sweep) == (
        True,
        5,
        4,
        1,
    )
    flags, _, counts, runs, found = await state(api)
    assert {k: str(v).split(" ")[1].rstrip(":") for k, v in flags.items() if v} == {
        "B": "amount_mismatch",
        "C": "currency_mismatch",
        "D": "duplicate",
        "E": "missing_at_provider",
    }
    assert flags["B"] == (
        f"reconciliation: amount_mismatch ({report}:3): report 9.00 EUR, order 10.00 EUR"
    )
    assert counts == {
        "amount_mismatch": 1,
        "currency_mismatch": 1,
        "duplicate": 1,
        "missing_at_provider": 1,
        "missing_in_orders": 1,
    }
    assert flags["E"] == "reconciliation: missing_at_provider: paid 40.00 EUR, not in the report"
    assert runs == 1
    assert found == [("reported", ref, "pending", None)]
    detail = await queries.order_detail(storage_of(api), "ord_B")
    assert detail.timeline[-1].cause == "reconciliation"

    before = await state(api)
    second = await run_apply(api, [report], tmp_path / "two")
    assert (second.new_run, second.recorded, second.flagged) == (False, 0, 0)
    assert await state(api) == before


async def test_a_new_report_repeating_old_exceptions_flags_nothing_again(
    api: Api, tmp_path: Path
) -> None:
    await seed(api.container.storage, "pi_{}".format, provider="memory")
    report, _, _ = await report_with_orphan(api, tmp_path)
    await run_apply(api, [report], tmp_path / "one")
    flags, timelines, counts, _, found = await state(api)
    longer = tmp_path / "longer.csv"
    longer.write_text(
        report.read_text() + "po_1Q,,txn_9,2026-11-03 11:00:00,,eur,-1.00,0,-1.00,fee,x,,,,\n"
    )
    again = await run_apply(api, [longer], tmp_path / "two")
    assert (again.new_run, again.recorded, again.flagged, again.handed_to_sweep) == (True, 0, 0, 0)
    flags2, timelines2, counts2, runs2, found2 = await state(api)
    assert (flags2, timelines2, counts2, found2) == (flags, timelines, counts, found)
    assert runs2 == 2


async def test_an_orphan_handed_over_is_resolved_by_the_next_sweep(
    api: Api, tmp_path: Path
) -> None:
    await seed(api.container.storage, "pi_{}".format, provider="memory")
    report, ref, lost_id = await report_with_orphan(api, tmp_path)
    await run_apply(api, [report], tmp_path / "one")
    # A window that does not contain the charge: only the hand-over brings it to the sweep.
    past = datetime.now(UTC) - timedelta(days=30)
    swept = await api.container.sweeper.sweep(since=past, until=past + timedelta(hours=1))
    assert swept.orphans_recovered == 1
    assert sorted(await findings(api)) == [
        ("orphan", ref, "recovered", lost_id),
        ("reported", ref, "swept", None),
    ]
    recovered = await queries.order_detail(storage_of(api), lost_id)
    assert (recovered.order.state, recovered.order.merchant_reference) == ("paid", "LOST-REC")
    again = await api.container.sweeper.sweep(since=past, until=past + timedelta(hours=1))
    assert (again.orphans_recovered, again.orphans_refunded) == (0, 0)


async def test_a_reported_charge_for_an_unconfigured_provider_waits(
    api: Api, tmp_path: Path
) -> None:
    await seed(api.container.storage, "pi_{}".format, provider="memory")
    storage = storage_of(api)
    (tmp_path / "w").mkdir()
    engine, outcome = await reconcile(
        storage, Request([FIXTURES / "adyen_settlement.csv"], formats=FORMATS), tmp_path / "w"
    )
    try:
        applied = await apply(storage, engine, outcome)
    finally:
        engine.close()
    assert applied.handed_to_sweep == 1
    past = datetime.now(UTC) - timedelta(days=30)
    await api.container.sweeper.sweep(since=past, until=past + timedelta(hours=1))
    assert await findings(api) == [("reported", "8815000000000X01", "pending", None)]


async def test_the_console_lists_the_latest_exceptions(api: Api, tmp_path: Path) -> None:
    await seed(api.container.storage, "pi_{}".format, provider="memory")
    report, ref, _ = await report_with_orphan(api, tmp_path)
    await run_apply(api, [report], tmp_path / "one")
    latest = await latest_exceptions(storage_of(api), limit=10)
    rows = {
        (e.category, e.order_id, e.provider_ref, e.amount, e.expected_amount, e.line)
        for e in latest
    }
    assert rows == {
        ("amount_mismatch", "ord_B", "pi_B", 900, 1000, 3),
        ("currency_mismatch", "ord_C", "pi_C", 1200, 1200, 4),
        ("duplicate", "ord_D", "pi_D", 3000, 3000, 6),
        ("missing_in_orders", None, ref, 4848, None, 9),
        ("missing_at_provider", "ord_E", "pi_E", None, 4000, None),
    }
    assert all(e.file == str(report) for e in latest if e.line is not None)
    only = await latest_exceptions(storage_of(api), limit=10, category="duplicate")
    assert [e.order_id for e in only] == ["ord_D"]


async def fixture_applied(api: Api, tmp_path: Path) -> tuple[Path, Applied]:
    """Orders A-G, and the Stripe fixture (with a real orphan charge) applied once."""
    await seed(api.container.storage, "pi_{}".format, provider="memory")
    report, _, _ = await report_with_orphan(api, tmp_path)
    return report, await run_apply(api, [report], tmp_path / "one")


def stripe_report(path: Path, *lines: tuple[str, str, str, str, str]) -> Path:
    """A Stripe itemized report of ``(category, gross, payment intent, order id, time)``."""
    header = (FIXTURES / "stripe_itemized.csv").read_text().splitlines()[0]
    path.write_text(
        header
        + "\n"
        + "".join(
            f"po_2,2026-11-05 00:00:00,txn_{n},{at},2026-11-05 00:00:00,eur,{gross},0.00,"
            f"{gross},{category},,ch_{n},{ref},ch_{n},{order}\n"
            for n, (category, gross, ref, order, at) in enumerate(lines)
        )
    )
    return path


async def open_and_closed(api: Api) -> tuple[set[str], dict[str, str | None]]:
    """The categories still open, and by which run each category was resolved."""
    storage = storage_of(api)
    still = {e.category for e in await latest_exceptions(storage, limit=50)}
    every = await latest_exceptions(storage, limit=50, open_only=False)
    return still, {e.category: e.resolved_by_run for e in every}


async def test_a_later_report_that_explains_exceptions_closes_them_with_its_run(
    api: Api, tmp_path: Path
) -> None:
    _, first = await fixture_applied(api, tmp_path)
    # The next day: ord_E's charge (paid late on the 2nd) settles, and the second charge
    # of ord_D is refunded. ord_B's wrong amount and ord_C's currency are not explained.
    later = stripe_report(
        tmp_path / "next-day.csv",
        ("charge", "40.00", "pi_E", "ord_E", "2026-11-03 09:00:00"),
        ("refund", "-30.00", "pi_D", "ord_D", "2026-11-03 09:30:00"),
    )
    second = await run_apply(api, [later], tmp_path / "two")
    assert (second.new_run, second.recorded, second.resolved) == (True, 0, 2)
    still, resolved_by = await open_and_closed(api)
    assert still == {"amount_mismatch", "currency_mismatch", "missing_in_orders"}
    assert resolved_by == {
        "amount_mismatch": None,
        "currency_mismatch": None,
        "missing_in_orders": None,
        "missing_at_provider": second.run_id,
        "duplicate": second.run_id,
    }
    assert first.run_id != second.run_id
    storage = storage_of(api)
    assert await open_exceptions_by_category(storage) == {
        "amount_mismatch": 1,
        "currency_mismatch": 1,
        "missing_in_orders": 1,
    }
    assert sum((await exceptions_by_category(storage)).values()) == 5  # recorded, all time


async def test_an_orphan_whose_order_the_sweep_recovered_is_closed_by_the_next_run(
    api: Api, tmp_path: Path
) -> None:
    await fixture_applied(api, tmp_path)
    past = datetime.now(UTC) - timedelta(days=30)
    await api.container.sweeper.sweep(since=past, until=past + timedelta(hours=1))
    # The next report does not mention the charge: the orders it is checked against do.
    later = stripe_report(
        tmp_path / "next-day.csv", ("fee", "-1.00", "", "", "2026-11-03 09:00:00")
    )
    second = await run_apply(api, [later], tmp_path / "two")
    still, resolved_by = await open_and_closed(api)
    assert "missing_in_orders" not in still
    assert resolved_by["missing_in_orders"] == second.run_id
    assert second.resolved == 1


async def test_a_report_that_repeats_an_exception_does_not_close_it(
    api: Api, tmp_path: Path
) -> None:
    report, _ = await fixture_applied(api, tmp_path)
    longer = tmp_path / "longer.csv"
    longer.write_text(
        report.read_text() + "po_1Q,,txn_9,2026-11-03 11:00:00,,eur,-1.00,0,-1.00,fee,x,,,,\n"
    )
    again = await run_apply(api, [longer], tmp_path / "two")
    assert (again.new_run, again.resolved) == (True, 0)
    still, _ = await open_and_closed(api)
    assert len(still) == 5

"""The demo's report in the terminal (``rich``)."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from orderguard.demo.audit import INVARIANTS, Report

_LABELS = {
    "acknowledged_orders_lost": "acknowledged orders lost",
    "checkouts_with_two_orders": "checkouts that became two orders",
    "orders_charged_twice": "orders charged twice",
    "charges_without_an_order": "charges without a paid order",
    "orders_stuck_unflagged": "orders stuck without a review flag",
    "paid_amount_differs": "paid orders whose charge differs from their total",
    "timeline_disagrees_with_state": "orders whose state is not their timeline's last change",
    "refunded_amount_differs": "orders whose refunds differ from the provider's ledger",
    "checkouts_refused_unexplained": "checkouts refused (409) or unanswered for no known cause",
    "charges_for_unknown_checkouts": "charges for no checkout of this run",
    "shoppers_misled": "shoppers misled or left with an unexplained error",
}


def _counts(
    title: str, counts: dict[str, int] | dict[str, float], *, key: str = "", ordered: bool = True
) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column(key or "what")
    table.add_column("count", justify="right")
    rows = list(counts.items())
    if ordered:
        rows.sort(key=lambda kv: (-float(kv[1]), kv[0]))
    for name, value in rows:
        table.add_row(name, str(value))
    return table


def render(report: Report, console: Console) -> None:
    console.print()
    console.print(
        f"[bold]{report.checkouts}[/] checkouts by simulated shoppers "
        f"({report.acknowledged} orders acknowledged, {report.gave_up} shoppers gave up) "
        f"on {report.database}; placed in {report.placed_in_s:.1f} s "
        f"({report.orders_per_s:.1f} checkouts/s), all resolved after {report.resolved_in_s:.1f} s"
    )
    s = report.schedule
    console.print(
        f"compressed recovery schedule: janitor rechecks scaled by {s['recheck_scale']} "
        f"(its {s['janitor_schedule_full_s']} s schedule runs in "
        f"{s['janitor_schedule_demo_s']} s), "
        f"client timeout {s['client_timeout_s']} s < payment budget {s['payment_time_budget_s']} s "
        f"< sandbox hold {s['sandbox_hold_s']} s, 3-D Secure expires after {s['action_expiry_s']} s"
    )
    console.print(_counts("Shopper behaviours", report.behaviours, key="behaviour"))
    console.print(_counts("Final states", report.final_states, key="state"))
    console.print(
        f"review queue: [bold]{report.orders_ever_flagged}[/] orders ever flagged, "
        f"[bold]{report.flags_still_open}[/] flags still open "
        "(a system flag clears itself when the order reaches the state that answers it)"
    )
    if report.flagged_ever:
        console.print(_counts("Ever flagged for review", report.flagged_ever, key="reason"))
    if report.flagged:
        console.print(_counts("Flags still open", report.flagged, key="reason"))
    console.print(_counts("Faults injected by the provider", report.faults, key="fault"))
    console.print(
        _counts("Trouble seen by shoppers' browsers", report.client_troubles, key="trouble")
    )
    told = report.extra.get("shoppers_told")
    if told:
        console.print(_counts("What shoppers were shown last", told, key="state"))
    console.print(
        _counts("Recoveries by mechanism", report.recoveries, key="mechanism", ordered=False)
    )
    asked = report.extra.get("back_office_refunds")
    if asked:
        console.print(
            f"back-office refunds: [bold]{asked['asked']}[/] asked for {asked['orders']} paid "
            f"orders (a part, then the rest), [bold]{asked['made']}[/] made, "
            f"{asked['repeated_same_key']} sent again with the same key, "
            f"{asked['refused']} refused, {asked['unanswered']} unanswered"
        )
    if report.extra.get("refusals"):
        console.print(
            _counts(
                "Refusals and unanswered tries, by cause", report.extra["refusals"], key="cause"
            )
        )
    r = report.resolution_s
    console.print(
        f"time to resolution: p50 {r['p50']:.2f} s, p99 {r['p99']:.2f} s, max {r['max']:.2f} s"
    )
    table = Table(
        title="Invariants (provider ledger, shoppers' own record, database)",
        title_justify="left",
    )
    table.add_column("invariant")
    table.add_column("violations", justify="right")
    table.add_column("examples", overflow="fold")
    for name in INVARIANTS:
        ids = report.invariants[name]
        colour = "red" if ids else "green"
        table.add_row(_LABELS[name], f"[{colour}]{len(ids)}[/]", ", ".join(ids[:3]))
    console.print(table)
    if report.ok:
        console.print("[green bold]every invariant holds: no order was lost, none charged twice[/]")
    else:
        broken = [_LABELS[n] for n in INVARIANTS if report.invariants[n]]
        console.print(f"[red bold]INVARIANT BROKEN: {'; '.join(broken)}[/]")

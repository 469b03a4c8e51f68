"""``orderguard demo`` as a user runs it: a real subprocess, real HTTP, real sandbox.

Smaller than the default run (which `make demo` does), on several seeds; the same run on
PostgreSQL; and with a defect planted in the service, which the demo must catch.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from orderguard.demo.audit import INVARIANTS
from tests.e2e.procs import ORDERGUARD, children, clean_env, run_cli, still_running
from tests.seeds import demo_seeds

pytestmark = pytest.mark.slow

#: Checkouts per test run: enough for every behaviour and every storm fault to occur.
CHECKOUTS = 120


#: A finished ``orderguard demo --json``, and its report.
Run = tuple[subprocess.CompletedProcess[str], dict[str, Any]]


def _demo(tmp_path: Path, *args: str, orders: int = CHECKOUTS) -> Run:
    done = run_cli(
        "demo",
        "--orders",
        str(orders),
        "--json",
        *args,
        env=clean_env("sqlite:///unused.db"),
        cwd=tmp_path,
        timeout=400,
    )
    try:
        report: dict[str, Any] = json.loads(done.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"no JSON report (exit {done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done, report


def _assert_a_real_storm(report: dict[str, Any]) -> None:
    """The run was not trivially quiet: faults struck and every mechanism had work."""
    faults = report["faults_injected"]
    # outages are rare per call (1%): not every small run meets one; the chaos test opens one
    for kind in ("timeout_after", "error_after", "error_before", "rate_limit"):
        assert faults.get(kind, 0) > 0, f"no {kind} injected: {faults}"
    for kind in ("webhook_dropped", "webhook_duplicated", "webhook_reordered"):
        assert faults.get(kind, 0) > 0, f"no {kind} injected: {faults}"
    assert report["acknowledged"] >= CHECKOUTS * 0.8, report
    assert report["recoveries"].get("janitor", 0) > 0, report["recoveries"]
    assert report["recoveries"].get("webhook", 0) > 0, report["recoveries"]
    assert report["recoveries"].get("unknown outcomes settled", 0) > 0, report["recoveries"]
    assert set(report["behaviours"]) == {
        "card",
        "double_click",
        "declined_then_paid",
        "3ds_approved",
        "3ds_refused",
        "3ds_abandoned",
        "closed_tab",
    }
    assert report["final_states"].get("paid", 0) > CHECKOUTS / 2, report["final_states"]
    assert report["final_states"].get("cancelled", 0) > 0, "abandoned 3-D Secure expired"
    # every seed used here draws a few orders for the back office to refund (5 to 14 of 120)
    refunds = report["back_office_refunds"]
    assert refunds["made"] > 0 and refunds["stored_succeeded"] >= refunds["made"], refunds
    assert report["final_states"].get("refunded", 0) > 0, report["final_states"]


@pytest.mark.parametrize("seed", demo_seeds([11, 33, 55]))
def test_every_invariant_holds_through_a_storm(tmp_path: Path, seed: int) -> None:
    done, report = _demo(tmp_path, "--seed", str(seed))
    assert report["invariants"] == dict.fromkeys(INVARIANTS, 0), report.get("violations")
    assert done.returncode == 0, done.stderr[-3000:]
    assert report["ok"] is True and report["seed"] == seed
    _assert_a_real_storm(report)
    resolution = report["resolution_seconds"]
    assert 0 < resolution["p50"] <= resolution["p99"] <= resolution["max"]


@pytest.mark.postgres
def test_the_same_run_on_postgresql(tmp_path: Path, pg_url: str) -> None:
    done, report = _demo(tmp_path, "--seed", "7", "--database-url", pg_url)
    assert report["database"] == "postgresql"
    assert report["invariants"] == dict.fromkeys(INVARIANTS, 0), report.get("violations")
    assert done.returncode == 0, done.stderr[-3000:]
    _assert_a_real_storm(report)


#: The storm with more answers lost after the charge and more webhooks lost, so that many
#: orders reach the janitor in ``payment_unknown`` with their charge made: the ground the
#: planted defects need to do harm (and the control run shows the profile alone is fine).
DEFECT_GROUND = """
base = "storm"
hold_s = 3.0
outage_s = 1.5
timeout_after = 0.3
webhook_drop = 0.8
"""
#: Checkouts of a planted-defect run (and of its control), half of those that can end paid
#: refunded by the back office, so the refund defect has room too.
DEFECT_CHECKOUTS = 60
DEFECT_ARGS = ("--seed", "11", "--refund-share", "0.5")
#: Each planted defect and the invariant the demo must name when it is on (written out here,
#: not read from ``demo/defects.py``).
DEFECTS_CAUGHT = {
    "answer_first": "acknowledged_orders_lost",
    "forget_keys": "checkouts_with_two_orders",
    "recharge_unknown": "orders_charged_twice",
    "success_ignored": "charges_without_an_order",
    "janitor_asleep": "orders_stuck_unflagged",
    "charge_amount": "paid_amount_differs",
    "silent_paid": "timeline_disagrees_with_state",
    "refund_amount": "refunded_amount_differs",
}
#: Seconds a planted-defect run waits for its orders to be resolved (a user's default is 90):
#: some defects leave orders that never are, and the harm each does is done by then (the
#: janitor's compressed schedule runs in about 15 s, 3-D Secure expires after 10 s, plus 12
#: of grace). The orders a sleeping janitor leaves stuck are its harm: it waits less.
SETTLE_TIMEOUT = {"janitor_asleep": "20"}
DEFAULT_SETTLE_TIMEOUT = "40"
#: How the ids an invariant lists begin: checkouts (lower case), charges, else orders; a
#: charge that differs from its checkout's cart is named, and so is a paid order whose
#: charge differs from its total.
LISTED: dict[str, str | tuple[str, ...]] = {
    "checkouts_with_two_orders": "demo-",
    "charges_without_an_order": "ch_",
    "paid_amount_differs": ("ch_", "ord_"),
}


def _defect_run(
    tmp_path: Path, defect: str | None
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    profile = tmp_path / "ground.toml"
    profile.write_text(DEFECT_GROUND)
    args = [*DEFECT_ARGS, "--faults", str(profile)]
    if defect is not None:
        settle = SETTLE_TIMEOUT.get(defect, DEFAULT_SETTLE_TIMEOUT)
        args += ["--plant-defect", defect, "--settle-timeout", settle]
    started = time.monotonic()
    done, report = _demo(tmp_path, *args, orders=DEFECT_CHECKOUTS)
    print(f"demo run {defect or 'control'}: {time.monotonic() - started:.1f} s")  # CI's cost
    return done, report


def test_the_ground_of_the_planted_defects_alone_breaks_nothing(tmp_path: Path) -> None:
    """The control of every planted defect: the same seed, ground and refunds, no defect.
    Refunds add up: every order the back office was told was refunded in full is refunded,
    and a repeated key never made a second refund."""
    done, report = _defect_run(tmp_path, None)
    assert report["invariants"] == dict.fromkeys(INVARIANTS, 0), report.get("violations")
    assert done.returncode == 0, done.stderr[-3000:]
    assert report["ok"] is True
    refunds = report["back_office_refunds"]
    assert refunds["made"] > 0 and refunds["repeated_same_key"] > 0, refunds
    assert refunds["asked"] == 2 * refunds["orders"] == refunds["made"], refunds
    assert report["final_states"]["refunded"] == refunds["orders"], report["final_states"]
    assert refunds["stored_succeeded"] == refunds["made"] <= report["refunds"], report
    # the ground gives each defect its room: checkouts without a reference, lost answers
    assert report["checkouts_without_reference"] > 0, report
    assert report["recoveries"]["janitor"] > 0, report["recoveries"]


@pytest.mark.parametrize("defect", sorted(DEFECTS_CAUGHT))
def test_a_planted_defect_is_caught_and_named(tmp_path: Path, defect: str) -> None:
    """The service wired with one deliberate defect: the demo exits 1 and names the
    invariant the defect breaks, listing what breaks it."""
    done, report = _defect_run(tmp_path, defect)
    invariant = DEFECTS_CAUGHT[defect]
    assert done.returncode == 1, done.stderr[-3000:]
    assert report["ok"] is False
    assert report["invariants"][invariant] > 0, report["invariants"]
    listed = report["violations"][invariant]
    prefix = LISTED.get(invariant, "ord_")
    assert listed and all(i.lower().startswith(prefix) for i in listed), listed
    if invariant == "paid_amount_differs":  # the ledger against the cart comes first
        assert listed[0].startswith("ch_"), listed
    if defect == "forget_keys":  # a retry of a checkout with a reference meets a taken one
        assert report["invariants"]["checkouts_refused_unexplained"] > 0, report["invariants"]
        assert report["refusals"]["409 duplicate-merchant-reference"] > 0, report["refusals"]


def test_the_terminal_report_names_a_broken_invariant(tmp_path: Path) -> None:
    profile = tmp_path / "ground.toml"
    profile.write_text(DEFECT_GROUND)
    done = run_cli(
        "demo", "--orders", "80", "--seed", "11", "--faults", str(profile),
        "--plant-defect", "recharge_unknown", "--settle-timeout", DEFAULT_SETTLE_TIMEOUT,
        env=clean_env("sqlite:///unused.db"), cwd=tmp_path, timeout=400,
    )  # fmt: skip
    text = " ".join(done.stdout.split())
    assert done.returncode == 1, done.stdout[-3000:]
    assert "INVARIANT BROKEN: orders charged twice" in text
    assert "seed 11" in text


def test_sigterm_stops_the_demo_and_the_sandbox_and_api_it_started(tmp_path: Path) -> None:
    demo = subprocess.Popen(
        [ORDERGUARD, "demo", "--orders", "2000", "--json"],
        env=clean_env("sqlite:///unused.db"),
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # the signal goes to the demo alone, as `kill <pid>` sends it
    )
    try:
        deadline = time.monotonic() + 60
        started: list[int] = []
        while len(started) < 2 and time.monotonic() < deadline:  # its sandbox and its API
            time.sleep(0.2)
            started = children(demo.pid)
        assert len(started) == 2, f"the demo started {started}"
        time.sleep(1.0)  # checkouts under way
        demo.terminate()
        assert demo.wait(timeout=60) == 128 + 15
        assert still_running(started, within=30) == [], "left running"
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()

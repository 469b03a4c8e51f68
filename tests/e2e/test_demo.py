"""``orderguard demo`` as a user runs it: a real subprocess, real HTTP, real sandbox.

Smaller than the default run (which `make demo` does), on several seeds; the same run on
PostgreSQL; and with a defect planted in the service, which the demo must catch.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from orderguard.demo.audit import INVARIANTS
from tests.e2e.procs import clean_env, run_cli
from tests.seeds import demo_seeds

pytestmark = pytest.mark.slow

#: Checkouts per test run: enough for every behaviour and every storm fault to occur.
CHECKOUTS = 120


def _demo(
    tmp_path: Path, *args: str, orders: int = CHECKOUTS
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
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


@pytest.mark.parametrize("seed", demo_seeds([11, 22, 33, 44, 55]))
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
#: planted defect needs to do harm (and the control run shows the profile alone is fine).
DEFECT_GROUND = """
base = "storm"
hold_s = 3.0
outage_s = 1.5
timeout_after = 0.3
webhook_drop = 0.8
"""


@pytest.mark.parametrize("defect", [None, "recharge_unknown"], ids=["control", "defect"])
def test_a_planted_defect_is_caught_and_named(tmp_path: Path, defect: str | None) -> None:
    """Rechecks that charge ``payment_unknown`` orders again under a fresh key, instead of
    asking the provider: the demo must exit 1 and name the double charges; the same run
    without the defect passes."""
    profile = tmp_path / "ground.toml"
    profile.write_text(DEFECT_GROUND)
    args = ["--seed", "11", "--faults", str(profile)]
    done, report = _demo(tmp_path, *args, *(["--plant-defect", defect] if defect else []))
    if defect is None:
        assert done.returncode == 0, report.get("violations")
        assert report["ok"] is True
        return
    assert done.returncode == 1, done.stderr[-3000:]
    assert report["ok"] is False
    assert report["invariants"]["orders_charged_twice"] > 0, report["invariants"]
    assert report["violations"]["orders_charged_twice"], "the broken orders are listed"


def test_the_terminal_report_names_a_broken_invariant(tmp_path: Path) -> None:
    profile = tmp_path / "ground.toml"
    profile.write_text(DEFECT_GROUND)
    done = run_cli(
        "demo", "--orders", "80", "--seed", "11", "--faults", str(profile),
        "--plant-defect", "recharge_unknown",
        env=clean_env("sqlite:///unused.db"), cwd=tmp_path, timeout=400,
    )  # fmt: skip
    text = " ".join(done.stdout.split())
    assert done.returncode == 1, done.stdout[-3000:]
    assert "INVARIANT BROKEN: orders charged twice" in text
    assert "seed 11" in text


#: Checkouts of the refund runs, half of those that can end paid refunded by the back office.
REFUND_CHECKOUTS = 60


@pytest.mark.parametrize("defect", [None, "refund_amount"], ids=["control", "defect"])
def test_refunds_add_up_and_a_short_refund_is_caught(tmp_path: Path, defect: str | None) -> None:
    """The back office refunds a part and then the rest of many paid orders, through the
    storm: the ledger agrees with what it was told and with the database. With the service
    wired to a provider that refunds a tenth less than it records, the demo exits 1 naming
    ``refunded_amount_differs`` and listing the orders."""
    args = ["--seed", "11", "--refund-share", "0.5"]
    planted = ["--plant-defect", defect] if defect else []
    done, report = _demo(tmp_path, *args, *planted, orders=REFUND_CHECKOUTS)
    refunds = report["back_office_refunds"]
    assert refunds["made"] > 0 and refunds["orders"] > 0, refunds
    assert refunds["repeated_same_key"] > 0, refunds
    if defect is None:
        assert report["invariants"] == dict.fromkeys(INVARIANTS, 0), report.get("violations")
        assert done.returncode == 0, done.stderr[-3000:]
        # a part and then the rest: every order the back office was told was refunded in
        # full is refunded; a repeated key never made a second refund
        assert refunds["asked"] == 2 * refunds["orders"] == refunds["made"], refunds
        assert report["final_states"]["refunded"] == refunds["orders"], report["final_states"]
        assert refunds["stored_succeeded"] == refunds["made"] <= report["refunds"], report
        return
    assert done.returncode == 1, done.stderr[-3000:]
    assert report["ok"] is False
    assert report["invariants"]["refunded_amount_differs"] > 0, report["invariants"]
    listed = report["violations"]["refunded_amount_differs"]
    assert listed and all(order_id.startswith("ord_") for order_id in listed), listed

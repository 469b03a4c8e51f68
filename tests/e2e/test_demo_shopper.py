"""``orderguard demo`` holds the service to what its shoppers were told: with paying again
after a decline broken, or the return from 3-D Secure broken (each planted at wiring, around
the service, by ``demo/defects.py``), the demo exits 1 naming ``shoppers_misled`` and
nothing else; the same run without a defect exits 0 with every charge matched to a checkout
of the simulator's own record.

One small run each (60 checkouts, about 40 s): seed 11 draws 7 shoppers who pay again after
a decline and 5 who come back from 3-D Secure, so each defect has shoppers to mislead.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from orderguard.demo.audit import INVARIANTS
from tests.e2e.procs import clean_env, run_cli

pytestmark = pytest.mark.slow

CHECKOUTS = 60
SEED = "11"


def _demo(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    done = run_cli(
        "demo", "--orders", str(CHECKOUTS), "--seed", SEED, "--json", *args,
        env=clean_env("sqlite:///unused.db"), cwd=tmp_path, timeout=400,
    )  # fmt: skip
    try:
        report: dict[str, Any] = json.loads(done.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"no JSON report (exit {done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done, report


def test_the_control_run_misleads_no_shopper_and_matches_every_charge(tmp_path: Path) -> None:
    done, report = _demo(tmp_path)
    assert report["invariants"] == dict.fromkeys(INVARIANTS, 0), report.get("violations")
    assert done.returncode == 0, done.stderr[-3000:]
    behaviours = report["behaviours"]
    assert behaviours["declined_then_paid"] >= 5 and behaviours["3ds_approved"] >= 2, behaviours
    # the shoppers were shown outcomes, and every charge is one of their checkouts'
    assert report["shoppers_told"].get("paid", 0) > CHECKOUTS / 3, report["shoppers_told"]
    assert report["shopper_errors"] == 0
    paid = report["final_states"].get("paid", 0) + report["final_states"].get("refunded", 0)
    assert report["charges_matched_to_checkouts"] >= paid > CHECKOUTS / 2, report


#: Each defect, and what the shoppers it misleads are said to have met.
DEFECTS = {
    "pay_again_old_method": "paid again with a card that works and was answered, "
    "order ended payment_failed",
    "three_ds_return_token": "their order page answered 404",
}


@pytest.mark.parametrize("defect", list(DEFECTS))
def test_a_broken_shopper_path_is_caught_and_named(tmp_path: Path, defect: str) -> None:
    done, report = _demo(tmp_path, "--plant-defect", defect)
    assert done.returncode == 1, done.stderr[-3000:]
    assert report["ok"] is False
    broken = {name for name, count in report["invariants"].items() if count}
    assert broken == {"shoppers_misled"}, report.get("violations")
    named = report["violations"]["shoppers_misled"]
    assert named and all(DEFECTS[defect] in why for why in named), named
    assert all(why.startswith("DEMO-") for why in named), named

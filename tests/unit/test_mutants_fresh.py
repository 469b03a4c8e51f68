"""The hand-written mutants of tests/mutants/mutants.py still fit the code: each one's
original text is in its file exactly once (a refactor that moves it makes this fail here, at
once, instead of the mutant silently becoming an error in ``make mutants``), and applying one
to a copy changes that copy only."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.mutants.mutants import MUTANTS, ROOT, Mutant, Stale, apply

NAMED = {
    "backward_order_edges",
    "backward_order_edges_unknown",
    "recheck_ignores_found_success",
    "key_lock_removed",
    "key_claim_ignored",
    "refunded_double_charge",
}


@pytest.mark.parametrize("mutant", MUTANTS, ids=[m.name for m in MUTANTS])
def test_each_mutant_s_original_text_is_in_its_file_once(mutant: Mutant) -> None:
    text = (ROOT / "src" / "orderguard" / mutant.file).read_text()
    assert text.count(mutant.original) == 1
    assert mutant.replacement != mutant.original
    assert mutant.tests, "a mutant names the tests that should notice it"


def test_the_issue_s_mutations_are_all_there_and_marked_named() -> None:
    assert {m.name for m in MUTANTS if m.named} == NAMED
    assert len({m.name for m in MUTANTS}) == len(MUTANTS)
    assert {m.file.split("/")[-1] for m in MUTANTS} >= {
        "states.py",
        "settle.py",
        "recheck.py",
        "payments.py",
        "idempotency.py",
        "audit.py",
    }


def test_a_mutant_changes_the_copy_and_a_stale_one_is_refused(tmp_path: Path) -> None:
    mutant = next(m for m in MUTANTS if m.name == "backward_order_edges")
    target = tmp_path / "src" / "orderguard" / mutant.file
    target.parent.mkdir(parents=True)
    real = ROOT / "src" / "orderguard" / mutant.file
    shutil.copy2(real, target)
    original = apply(tmp_path, mutant)
    assert original == real.read_text()
    assert mutant.replacement in target.read_text()
    assert mutant.original not in target.read_text()
    with pytest.raises(Stale, match="0 times"):
        apply(tmp_path, mutant)

"""The mutations issue 17 names are each caught by the suite, checked in CI: every named
mutant of tests/mutants/mutants.py is written into a temporary copy of the repository and its
tests must fail there (after passing on the unchanged copy). ``make mutants`` runs them all
and writes docs/mutants.md; this runs the named ones only (a couple of minutes)."""

from __future__ import annotations

import pytest

from tests.mutants.mutants import MUTANTS, run

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]


def test_every_named_mutant_is_killed_by_a_test() -> None:
    named = [m for m in MUTANTS if m.named]
    results = run(named)
    outcomes = {r.mutant.name: r.outcome for r in results}
    assert outcomes == {m.name: "killed" for m in named}, [
        (r.mutant.name, r.outcome, r.detail) for r in results if r.outcome != "killed"
    ]

"""``make test-deep``'s knobs: hypothesis's ``deep`` profile is random and larger than CI's,
and ``DEMO_SEEDS`` picks the demo's seeds (refusing what it cannot read)."""

from __future__ import annotations

import pytest
from hypothesis import settings

import tests.conftest  # noqa: F401  (registers the profile)
from tests.seeds import demo_seeds


def test_the_deep_profile_draws_fresh_examples_and_many_more_of_them() -> None:
    deep = settings.get_profile("deep")
    assert deep.derandomize is False
    assert deep.max_examples == 2000
    assert deep.deadline is None
    assert settings.get_profile("ci").derandomize is True  # what it replaces in CI


def test_without_demo_seeds_the_fixed_ones_run() -> None:
    assert demo_seeds([11, 22], "") == [11, 22]


def test_demo_seeds_lists_whole_numbers() -> None:
    assert demo_seeds([11, 22], "7, 8,9") == [7, 8, 9]
    assert demo_seeds([11, 22], "123") == [123]


@pytest.mark.parametrize("spec", ["7,x", "random:5", "7,,8", "-3", "1.5"])
def test_demo_seeds_it_cannot_read_are_refused(spec: str) -> None:
    with pytest.raises(ValueError, match="DEMO_SEEDS"):
        demo_seeds([11], spec)

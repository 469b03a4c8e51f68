"""The module import graph (issue 18): no cycle of files, at most two imports pointing up
the layers, fewer layers than the 17 measured before, every known exception real and
every library under a contract. Measured by tests/layering_graph.py."""

from __future__ import annotations

import grimp
import pytest

from tests import layering_graph as graph
from tests.layering_table import Pending

#: Modules on the longest import path of the code before issue 18 (measured on 1050da2
#: with tests/layering_graph.py: __main__ -> cli -> cli_keys/cli_outbox -> worker -> ...
#: -> domain.errors).
LAYERS_BEFORE = 17
#: Modules on the longest import path today (15): cli.serve -> bootstrap -> the worker's
#: checks -> observability.wiring -> container -> services.janitor -> recheck -> payments
#: -> settling -> the domain's settle -> refund -> order -> flags -> states -> errors. The
#: command's modules are imported only when they run (cli/lazy.py), the faces receive
#: narrow desks instead of importing the container, and ``orderguard.demo`` re-exports
#: nothing. A ratchet: the graph may not get deeper than this again.
LAYERS_NOW = 15


@pytest.fixture(scope="module")
def facts() -> graph.Facts:
    return graph.facts()


def test_no_files_import_each_other_in_a_circle(facts: graph.Facts) -> None:
    assert facts.target.cycles == []


def test_at_most_two_package_imports_point_up_the_layers(facts: graph.Facts) -> None:
    assert len(facts.target.upward) <= 2, facts.target.upward


def test_the_modules_stack_fewer_layers_than_before(facts: graph.Facts) -> None:
    assert facts.target.depth < LAYERS_BEFORE, facts.target.longest
    assert facts.now.depth < LAYERS_BEFORE, facts.now.longest


def test_the_modules_stack_no_deeper_than_today(facts: graph.Facts) -> None:
    assert facts.target.depth <= LAYERS_NOW, facts.target.longest


def test_every_known_exception_still_happens(facts: graph.Facts) -> None:
    # One that no longer happens is done: delete its line from .importlinter (or from
    # PENDING_CYCLE_EDGES in tests/layering_graph.py).
    assert facts.stale == []


def test_every_library_the_code_imports_is_under_a_contract(facts: graph.Facts) -> None:
    assert facts.unprotected == []


# The measures themselves, on graphs written out by hand.

EDGES = {
    "orderguard.top": {"orderguard.mid_a"},
    "orderguard.mid_a": {"orderguard.mid_b"},
    "orderguard.mid_b": {"orderguard.mid_a", "orderguard.low"},
    "orderguard.low": set(),
    "orderguard.alone": set(),
}


def test_a_cycle_of_files_is_found_and_counts_as_one_layer() -> None:
    assert sorted(graph.components(EDGES)) == [
        ["orderguard.alone"],
        ["orderguard.low"],
        ["orderguard.mid_a", "orderguard.mid_b"],
        ["orderguard.top"],
    ]
    assert graph.depth(EDGES) == (
        3,
        ["orderguard.top", "orderguard.mid_a+orderguard.mid_b", "orderguard.low"],
    )


def test_an_import_from_a_lower_layer_is_upward_and_one_from_above_is_not() -> None:
    stack = [["top"], ["mid_a", "mid_b"], ["low"]]
    edges = {**EDGES, "orderguard.low": {"orderguard.top"}}
    assert graph.upward(edges, stack) == [("low", "top")]
    assert graph.upward(EDGES, stack) == []


def test_the_package_graph_joins_modules_by_top_level_name_and_drops_the_root() -> None:
    edges = {
        "orderguard": {"orderguard.api.app"},
        "orderguard.api.app": {"orderguard.api.render", "orderguard.domain.order", "orderguard"},
        "orderguard.api.render": {"orderguard.domain.money"},
        "orderguard.domain.order": {"orderguard.domain.money"},
        "orderguard.domain.money": set(),
        "orderguard.cli": {"orderguard.api.app"},
    }
    assert graph.packages(edges) == {"api": {"domain"}, "domain": set(), "cli": {"api"}}
    assert graph.depth(graph.packages(edges)) == (3, ["cli", "api", "domain"])


def test_the_target_drops_exactly_the_known_exceptions() -> None:
    pending = [Pending("cycles", "orderguard.mid_b", "orderguard.mid_a")]
    assert graph.without(EDGES, pending)["orderguard.mid_b"] == {"orderguard.low"}
    assert graph.without(EDGES, pending)["orderguard.top"] == {"orderguard.mid_a"}


def test_an_exception_whose_import_is_gone_is_stale() -> None:
    imports = grimp.ImportGraph()
    imports.add_import(importer="orderguard.a", imported="orderguard.b")
    imports.add_module("orderguard.c")
    kept = Pending("x", "orderguard.a", "orderguard.b")
    gone = Pending("x", "orderguard.c", "orderguard.b")
    assert graph.stale(imports, [kept, gone]) == [gone]


def test_a_library_no_contract_names_is_reported_and_the_standard_library_is_not() -> None:
    imports = grimp.ImportGraph()
    imports.add_import(importer="orderguard.a", imported="httpx")
    imports.add_import(importer="orderguard.a", imported="json")
    imports.add_import(importer="orderguard.a", imported="duckdb")
    assert graph.unprotected(imports, {"duckdb"}) == ["httpx"]

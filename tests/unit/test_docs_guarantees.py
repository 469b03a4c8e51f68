"""docs/guarantees.md tells users the state machines the code enforces: its tables and
diagrams are read here and must be exactly the code's, and every test it names exists."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import pytest

from orderguard.domain.settle import ORDER_STATE_FOR
from orderguard.domain.states import (
    ATTEMPT_TRANSITIONS,
    ORDER_TRANSITIONS,
    TERMINAL_ATTEMPT_STATES,
    TERMINAL_ORDER_STATES,
    AttemptState,
    OrderState,
)

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "guarantees.md"
#: The heading of each state machine's section in the document.
SECTIONS = {"order": "## The order's states", "attempt": "## A payment attempt's states"}

Moves = dict[str, set[str]]


def section(heading: str) -> str:
    """The text from ``heading`` to the next heading of the same level."""
    text = DOC.read_text()
    start = text.index(heading + "\n")
    following = text.find("\n## ", start + len(heading))
    return text[start : following if following != -1 else len(text)]


def table(text: str) -> dict[str, tuple[bool, set[str]]]:
    """The state table: state -> (final outcome?, states it may move to)."""
    rows: dict[str, tuple[bool, set[str]]] = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not line.startswith("| `") or len(cells) < 3:
            continue
        state = cells[0].strip("`")
        assert state not in rows, f"{state} is listed twice"
        assert cells[1] in {"yes", "no"}, f"{state}: final outcome must be yes or no"
        rows[state] = (cells[1] == "yes", set(re.findall(r"`([a-z_]+)`", cells[2])))
    return rows


def diagram(text: str) -> tuple[set[str], Moves]:
    """The mermaid diagram: its start states and its moves."""
    block = re.search(r"```mermaid\n(.*?)```", text, re.S)
    assert block, "the section has no mermaid diagram"
    starts: set[str] = set()
    moves: Moves = {}
    for source, target in re.findall(r"^\s*(\S+) --> (\S+)\s*$", block[1], re.M):
        if source == "[*]":
            starts.add(target)
        else:
            moves.setdefault(source, set()).add(target)
    return starts, moves


def as_text(transitions: Mapping[StrEnum, frozenset[Any]]) -> Moves:
    """A transition table with its states as plain strings."""
    return {str(s): {str(t) for t in targets} for s, targets in transitions.items()}


@dataclass(frozen=True)
class Machine:
    """One state machine as the code defines it."""

    states: type[StrEnum]
    moves: Moves
    terminal: frozenset[str]
    first: str


CASES = {
    "order": Machine(
        OrderState,
        as_text(ORDER_TRANSITIONS),
        frozenset(map(str, TERMINAL_ORDER_STATES)),
        OrderState.RECEIVED,
    ),
    "attempt": Machine(
        AttemptState,
        as_text(ATTEMPT_TRANSITIONS),
        frozenset(map(str, TERMINAL_ATTEMPT_STATES)),
        AttemptState.PENDING,
    ),
}


@pytest.mark.parametrize("machine", list(CASES))
def test_the_state_table_in_the_guarantees_is_the_one_the_code_enforces(machine: str) -> None:
    code = CASES[machine]
    rows = table(section(SECTIONS[machine]))
    assert list(rows) == [str(s) for s in code.states], "every state, once, in the code's order"
    assert {s: targets for s, (_, targets) in rows.items()} == code.moves
    assert {s for s, (final, _) in rows.items() if final} == code.terminal


@pytest.mark.parametrize("machine", list(CASES))
def test_the_state_diagram_in_the_guarantees_draws_every_move_and_no_other(machine: str) -> None:
    code = CASES[machine]
    starts, drawn = diagram(section(SECTIONS[machine]))
    assert starts == {code.first}
    assert drawn == {s: targets for s, targets in code.moves.items() if targets}


def test_a_move_the_code_forbids_is_caught_in_the_table() -> None:
    """The check above is not vacuous: a table claiming ``paid -> received`` differs."""
    paid = "| `paid` | yes | `refunded` |"
    forged = section(SECTIONS["order"]).replace(paid, paid[:-1] + ", `received` |")
    assert table(forged)["paid"][1] == {"refunded", "received"}


def test_every_test_file_the_guarantees_name_exists() -> None:
    named = set(re.findall(r"`(tests/[\w/]+\.py)`", DOC.read_text()))
    assert named, "the guarantees name the tests that prove them"
    assert {n for n in named if not (ROOT / n).is_file()} == set()


def test_every_guarantee_says_how_it_is_kept_and_what_proves_it() -> None:
    text = DOC.read_text()
    headings = re.findall(r"^### (G\d+) ", text, re.M)
    assert headings == [f"G{n}" for n in range(1, 12)]
    for number in headings:
        part = text.split(f"### {number} ", 1)[1].split("\n### ", 1)[0]
        assert "**How it is kept.**" in part and "**Proved by.**" in part, number


def test_the_order_state_each_attempt_state_leads_to_is_the_one_settling_uses() -> None:
    text = section(SECTIONS["attempt"])
    sentence = " ".join(text.split("Each attempt's state sets its order's state:", 1)[1].split())
    written = dict(re.findall(r"`([a-z_]+)` → `([a-z_]+)`", sentence))
    assert written == {str(a): str(o) for a, o in ORDER_STATE_FOR.items()}

"""An internal error (pytest's, or a pytest-xdist worker's) is repeated once more at the
very end of the run, after the summary line.

A CI job often keeps only the tail of what the run printed. When an xdist worker stops on
an internal error, the controller prints the worker's traceback first and then its own
(``assert not crashitem``), which is all the tail then holds: the worker's cause, the one
worth reading, scrolls out of it. This plugin keeps each internal error's text and prints
the last lines of each, cause first, when pytest unconfigures. ``tests/conftest.py``
installs it.
"""

from __future__ import annotations

import sys

import pytest

#: Lines of each internal error repeated at the end (its tail holds the raise).
TAIL_LINES = 40
#: What the repeated block opens with.
HEADING = "internal errors of this run (repeated: a CI log's tail may be all that is kept)"

_seen: list[str] = []


def pytest_internalerror(excrepr: object, excinfo: pytest.ExceptionInfo[BaseException]) -> None:
    """Keep the text of an internal error (a worker's arrives at the controller this way)."""
    _seen.append(str(excrepr))


def pytest_unconfigure(config: pytest.Config) -> None:
    """Repeat the kept internal errors, the last lines of each, on standard error after
    what pytest wrote to standard output (flushed first: in a log that merges the two, the
    summary line would otherwise come out after the block). A worker repeats nothing: its
    errors reach the controller, which repeats them once."""
    if not _seen or hasattr(config, "workerinput"):
        return
    sys.stdout.flush()
    out = [f"{'=' * 20} {HEADING} {'=' * 20}"]
    for number, text in enumerate(_seen, 1):
        lines = text.splitlines()
        cut = f" (last {TAIL_LINES} of {len(lines)} lines)" if len(lines) > TAIL_LINES else ""
        out.append(f"--- internal error {number} of {len(_seen)}{cut}")
        out.extend(lines[-TAIL_LINES:])
    print("\n".join(out), file=sys.stderr, flush=True)
    _seen.clear()

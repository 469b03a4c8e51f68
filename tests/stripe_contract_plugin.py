"""Pytest plugin: every sandbox answer and webhook a test produces is checked against Stripe.

At start-up the plugin points ``ORDERGUARD_SANDBOX_CONTRACT_LOG`` at a file of its own (one
per pytest-xdist worker, in one directory the controller creates), so every sandbox the tests
run, in-process or as a process, appends its ``/v1`` answers and webhook bodies there
(:mod:`orderguard.providers.stripe.sandbox.recording`). After each test, the lines that arrived
during it are checked (:mod:`tests.stripe_contract`); a difference from Stripe's description
fails the test at teardown, naming the object, the field and the test. Lines recorded outside
any test (a session-wide sandbox shutting down) are checked when the session ends, which then
fails. ``pytest -p no:tests.stripe_contract_plugin`` records nothing and checks nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orderguard.providers.stripe.sandbox.recording import ENV
from tests.stripe_contract import Problem, check_record

#: At most this many problems are spelled out per failure.
SHOWN = 20

_LOG = pytest.StashKey["ContractLog"]()
_OWN_DIR = pytest.StashKey[Path]()


class ContractLog:
    """One process's contract log, read forward from where the last check stopped."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        #: Problems in lines recorded between tests, reported when the session ends.
        self.outside: list[tuple[Problem, str | None]] = []

    def take(self) -> list[tuple[dict[str, Any] | None, bytes]]:
        """Complete lines appended since the last call, parsed (``None`` if unreadable)."""
        try:
            with self.path.open("rb") as handle:
                handle.seek(self.offset)
                data = handle.read()
        except FileNotFoundError:
            return []
        end = data.rfind(b"\n") + 1  # a line still being written is left for next time
        self.offset += end
        lines = []
        for raw in data[:end].splitlines():
            if raw.strip():
                try:
                    lines.append((json.loads(raw), raw))
                except ValueError:
                    lines.append((None, raw))
        return lines

    def problems(self) -> list[tuple[Problem, str | None]]:
        """Problems in the new lines, each with the test the recording process named."""
        found: list[tuple[Problem, str | None]] = []
        for record, raw in self.take():
            if not isinstance(record, dict):
                found.append(
                    (Problem("contract log", "(line)", f"unreadable: {raw[:200]!r}"), None)
                )
                continue
            found += [(p, record.get("test")) for p in check_record(record)]
        return found


def report(problems: list[tuple[Problem, str | None]], where: str) -> str:
    """A failure message naming each object, field and the test."""
    count = f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"
    lines = [f"sandbox bodies differ from Stripe's OpenAPI description ({where}), {count}:"]
    for problem, test in problems[:SHOWN]:
        started = (
            f" [recorded by a sandbox serving {test}]"
            if test and not test.startswith(where)
            else ""
        )
        lines.append(f"  - {problem}{started}")
    if len(problems) > SHOWN:
        lines.append(f"  ... and {len(problems) - SHOWN} more")
    return "\n".join(lines)


def pytest_configure(config: pytest.Config) -> None:
    workerinput = getattr(config, "workerinput", None)
    if workerinput is None:  # the controller (or a run without xdist): a fresh directory
        folder = Path(tempfile.mkdtemp(prefix="orderguard-contract-"))
        config.stash[_OWN_DIR] = folder
        name = "main"
    else:  # an xdist worker: the controller's directory, inherited through the environment
        folder = Path(os.environ[ENV]).parent
        name = str(workerinput["workerid"])
    path = folder / f"{name}.jsonl"
    os.environ[ENV] = str(path)
    config.stash[_LOG] = ContractLog(path)


@pytest.fixture(autouse=True)
def _stripe_contract(request: pytest.FixtureRequest) -> Iterator[None]:
    """Check what the sandboxes answered and sent during this test, after its teardown."""
    log = request.config.stash.get(_LOG, None)
    if log is not None:  # recorded between tests: reported when the session ends
        log.outside += log.problems()
    yield
    if log is None:
        return
    problems = log.problems()
    if problems:
        pytest.fail(report(problems, request.node.nodeid), pytrace=False)


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Check lines recorded outside any test; the controller collects every worker's."""
    config = session.config
    log = config.stash.get(_LOG, None)
    if log is None:
        return
    problems = log.outside + log.problems()
    if problems and hasattr(config, "workerinput"):
        text = report(problems, "outside any test")
        (log.path.parent / f"{log.path.stem}.problems").write_text(text)
        return
    folder = config.stash.get(_OWN_DIR, None)
    texts = [report(problems, "outside any test")] if problems else []
    if folder is not None:
        texts += [p.read_text() for p in sorted(folder.glob("*.problems"))]
    if texts:
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        for text in texts:
            if reporter is not None:
                reporter.write_line(text, red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_unconfigure(config: pytest.Config) -> None:
    folder = config.stash.get(_OWN_DIR, None)
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)

"""Under ``CI=true`` no test may skip: a skip there hides a test that never ran (a missing
service, a missing browser, a forgotten ``skipif``), and an expected failure hides a broken
one. Both are turned into failures that say why. ``tests/conftest.py`` installs these hooks;
on a laptop (``CI`` unset) a skip stays a skip.
"""

from __future__ import annotations

import os
from collections.abc import Generator

import pytest

#: Whether the suite runs in CI (``CI`` is ``1``, ``true`` or ``yes``).
CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def _refuse(report: pytest.TestReport | pytest.CollectReport) -> None:
    """Turn a skipped report into a failure naming what was skipped and why."""
    if not (CI and report.skipped):
        return
    reason = getattr(report, "wasxfail", None)
    if reason is not None:
        why = f"an expected failure (xfail: {reason or 'no reason given'})"
    elif isinstance(report.longrepr, tuple):
        why = f"a skip ({report.longrepr[2]})"
    else:
        why = f"a skip ({report.longrepr})"
    report.outcome = "failed"
    report.longrepr = f"CI=true: {report.nodeid} ended in {why}; in CI every test must run"
    if hasattr(report, "wasxfail"):
        del report.wasxfail


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item) -> Generator[None, pytest.TestReport, None]:
    """Fail, under CI, a test that skipped or was an expected failure."""
    outcome = yield
    _refuse(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(
    collector: pytest.Collector,
) -> Generator[None, pytest.CollectReport, None]:
    """Fail, under CI, a module that skipped itself while being collected."""
    outcome = yield
    _refuse(outcome.get_result())

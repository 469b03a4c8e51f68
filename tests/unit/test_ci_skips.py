"""Under CI=true a skip or an expected failure fails the run (tests/ci_skips.py); on a laptop
it stays a skip. Run on a small suite of its own in a child pytest."""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

SUITE = {
    "test_mixed.py": """
import pytest

def test_runs():
    assert True

def test_skips():
    pytest.skip("no browser here")

@pytest.mark.skipif(True, reason="not on this machine")
def test_skipped_by_mark():
    pass

@pytest.mark.xfail(reason="known bug")
def test_expected_to_fail():
    assert False
""",
    "test_whole_module.py": """
import pytest

pytest.skip("no PostgreSQL", allow_module_level=True)

def test_never_collected():
    pass
""",
}


def _run(tmp_path: Path, ci: str | None) -> dict[str, str]:
    """Each test's (or module's) outcome in a child pytest, ``CI`` set to ``ci``."""
    for name, text in SUITE.items():
        (tmp_path / name).write_text(text)
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "src")])
    if ci is not None:
        env["CI"] = ci
    report = tmp_path / "report.xml"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.ci_skips", "-p", "no:cacheprovider",
         "-q", "--continue-on-collection-errors", "--junitxml", str(report),
         "--rootdir", str(tmp_path), "-c", os.devnull, str(tmp_path)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert report.is_file(), done.stdout + done.stderr
    outcomes = {}
    for case in ET.parse(report).iter("testcase"):
        name = f"{case.get('classname')}::{case.get('name')}".strip(":")
        kinds = [child.tag for child in case if child.tag in {"failure", "error", "skipped"}]
        outcomes[name] = kinds[0] if kinds else "passed"
    return outcomes


def test_under_ci_every_skip_and_expected_failure_fails(tmp_path: Path) -> None:
    # a skip in the test body fails its call; a skip mark fails its set-up (an error); a
    # module that skips itself fails its collection
    assert _run(tmp_path, "true") == {
        "test_mixed::test_runs": "passed",
        "test_mixed::test_skips": "failure",
        "test_mixed::test_skipped_by_mark": "error",
        "test_mixed::test_expected_to_fail": "failure",
        "test_whole_module": "error",
    }


@pytest.mark.parametrize("ci", [None, "false"])
def test_off_ci_a_skip_stays_a_skip(tmp_path: Path, ci: str | None) -> None:
    assert _run(tmp_path, ci) == {
        "test_mixed::test_runs": "passed",
        "test_mixed::test_skips": "skipped",
        "test_mixed::test_skipped_by_mark": "skipped",
        "test_mixed::test_expected_to_fail": "skipped",
        "test_whole_module": "skipped",
    }


def test_the_suite_s_conftest_installs_the_hooks(pytestconfig: pytest.Config) -> None:
    from tests import ci_skips, conftest

    assert "tests.ci_skips" in conftest.pytest_plugins
    assert pytestconfig.pluginmanager.is_registered(ci_skips)

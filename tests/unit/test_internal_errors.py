"""An xdist worker's internal error is repeated after the run's summary line
(tests/internal_errors.py), where a CI log's tail still holds it. Run on a small suite of
its own in a child pytest with two workers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

#: A worker that raises out of pytest's reporting (outside any test, so pytest calls it an
#: internal error) after the test named ``test_b``: the worker stops with tests pending.
SUITE = {
    "conftest.py": """
import os

def pytest_runtest_logreport(report):
    worker = "PYTEST_XDIST_WORKER" in os.environ
    if worker and report.when == "teardown" and report.nodeid.endswith("test_b"):
        raise SystemExit("worker-cause-7f3a: raised while reporting test_b")
""",
    "test_small.py": """
import time

def test_a():
    time.sleep(0.2)

def test_b():
    pass

def test_c():
    time.sleep(0.2)

def test_d():
    time.sleep(0.2)
""",
}


def _run(tmp_path: Path, *plugins: str) -> subprocess.CompletedProcess[str]:
    for name, text in SUITE.items():
        (tmp_path / name).write_text(text)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "src")])
    loads = [arg for plugin in plugins for arg in ("-p", plugin)]
    return subprocess.run(
        [sys.executable, "-m", "pytest", *loads, "-p", "no:cacheprovider", "-p", "no:randomly",
         "-n", "2", "--dist", "worksteal", "-q", "--rootdir", str(tmp_path),
         "-c", os.devnull, str(tmp_path)],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        timeout=120,
    )  # fmt: skip


def test_a_workers_internal_error_is_repeated_after_the_summary_line(tmp_path: Path) -> None:
    done = _run(tmp_path, "tests.internal_errors")
    out = done.stdout  # standard error merged in, as a CI log holds them
    assert done.returncode == 3, out[-3000:]
    summary = max(out.rfind(" passed in "), out.rfind(" passed, "))
    repeated = out.find("internal errors of this run")
    # one block, the controller's (a worker repeats nothing), after the summary line
    assert summary != -1 and repeated > summary, out[-3000:]
    assert out.count("internal errors of this run") == 1, out[-5000:]
    # the worker's own cause is in what is repeated, not only the controller's assertion
    tail = out[repeated:]
    assert "worker-cause-7f3a" in tail, tail
    assert "SystemExit" in tail, tail


def test_without_the_plugin_the_cause_is_not_after_the_summary(tmp_path: Path) -> None:
    """What the plugin is for: without it, the tail after the summary line lacks the cause."""
    done = _run(tmp_path)
    out = done.stdout
    assert done.returncode == 3, out[-3000:]
    summary = max(out.rfind(" passed in "), out.rfind(" passed, "))
    assert summary != -1, out[-3000:]
    assert "worker-cause-7f3a" not in out[summary:]

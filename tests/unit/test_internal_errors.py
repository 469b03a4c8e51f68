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
#: internal error) after the first test any worker finishes: that worker stops with tests
#: pending (none can have been taken from it yet: no other worker has finished a test). It
#: was "after test_b": on a loaded machine one worker could start seconds after the other,
#: which took test_b's neighbours first, and the run ended 0 with nothing pending.
SUITE = {
    "conftest.py": """
import os

def pytest_runtest_logreport(report):
    if "PYTEST_XDIST_WORKER" not in os.environ or report.when != "teardown":
        return
    try:  # the first teardown of the run, whichever worker: the file is made once
        os.close(os.open(os.path.join(os.path.dirname(__file__), "raised"),
                         os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return
    raise SystemExit("worker-cause-7f3a: raised while reporting " + report.nodeid)
""",
    "test_small.py": """
import time

def test_a():
    time.sleep(0.2)

def test_b():
    time.sleep(0.2)

def test_c():
    time.sleep(0.2)

def test_d():
    time.sleep(0.2)

def test_e():
    time.sleep(0.2)

def test_f():
    time.sleep(0.2)

def test_g():
    time.sleep(0.2)

def test_h():
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

"""The alert rules are valid, behave as their unit tests say (``promtool``), and each one
points at a runbook section that exists, with a summary."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from tests.conftest import service_missing

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
RULE_TESTS = ROOT / "deploy" / "prometheus" / "alerts.test.yml"
RUNBOOK = ROOT / "docs" / "runbook.md"


def _promtool() -> str:
    found = shutil.which("promtool") or (
        "/usr/bin/promtool" if Path("/usr/bin/promtool").exists() else None
    )
    if found is None:
        service_missing("promtool", "install Debian's prometheus package")
    assert found is not None
    return found


def _alerts() -> dict[str, str]:
    """Each alert's name and the text of its rule."""
    blocks = re.split(r"^\s+- alert: ", RULES.read_text(), flags=re.MULTILINE)[1:]
    return {block.split("\n", 1)[0].strip(): block for block in blocks}


def test_promtool_accepts_the_alert_rules() -> None:
    done = subprocess.run(
        [_promtool(), "check", "rules", str(RULES)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(_alerts())} rules found" in done.stdout


def test_promtool_unit_tests_of_the_alert_rules_pass() -> None:
    done = subprocess.run(
        [_promtool(), "test", "rules", RULE_TESTS.name],
        cwd=RULE_TESTS.parent,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_every_alert_has_a_summary_a_runbook_section_and_a_unit_test() -> None:
    anchors = {
        re.sub(r"[^a-z0-9 -]", "", heading.lower()).replace(" ", "-")
        for heading in re.findall(r"^## (.+)$", RUNBOOK.read_text(), re.MULTILINE)
    }
    tested = set(re.findall(r"alertname: (\w+)", RULE_TESTS.read_text()))
    names = set(_alerts())
    for name, rule in _alerts().items():
        assert re.search(r'^\s+summary: "\S.+"$', rule, re.MULTILINE), name
        [runbook] = re.findall(r'^\s+runbook: "docs/runbook\.md#([a-z-]+)"$', rule, re.MULTILINE)
        assert runbook in anchors, f"{name}: no section #{runbook} in docs/runbook.md"
    assert names == tested, f"alerts without a promtool unit test: {names - tested}"
    wanted = {
        "OrderguardStuckOrders", "OrderguardProviderErrorRate", "OrderguardCircuitOpen",
        "OrderguardJanitorLagging", "OrderguardWebhookFailures", "OrderguardOutboxLag",
        "OrderguardDeadLetters", "OrderguardReviewQueueGrowing",
    }  # fmt: skip
    assert wanted <= names


def test_the_grafana_dashboard_only_queries_metrics_orderguard_exports() -> None:
    import json

    dashboard = json.loads((ROOT / "deploy" / "grafana" / "orderguard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    assert exprs
    exported = set(re.findall(r'"(orderguard_\w+)"', _metric_sources()))
    for expr in exprs:
        for name in re.findall(r"\b(orderguard_\w+)", expr):
            base = re.sub(r"_(total|bucket|count|sum)$", "", name)
            assert base in exported, f"dashboard queries unknown metric {name}"


def _metric_sources() -> str:
    src = ROOT / "src" / "orderguard" / "observability"
    return (src / "metrics.py").read_text() + (src / "collector.py").read_text()

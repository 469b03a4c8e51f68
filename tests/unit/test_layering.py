"""The import rules of docs/architecture.md hold: lint-imports keeps every contract of
.importlinter, and breaks the right one when a forbidden import is added to a copy."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: lint-imports, run by the interpreter running the tests.
LINT_IMPORTS = [
    sys.executable,
    "-c",
    "import sys; from importlinter.cli import lint_imports_command; "
    "sys.exit(lint_imports_command())",
    "--no-cache",
]


def lint_imports(src: Path, config: Path) -> subprocess.CompletedProcess[str]:
    """lint-imports over the orderguard package found in ``src``."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    return subprocess.run(
        [*LINT_IMPORTS, "--config", str(config)],
        cwd=config.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_lint_imports_keeps_every_contract() -> None:
    done = lint_imports(ROOT / "src", ROOT / ".importlinter")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


@pytest.mark.parametrize(
    ("module", "line", "contracts", "culprit"),
    [
        (
            "domain/money.py",
            "import orderguard.api",
            ["domain imports only what its row allows", "layers, top to bottom"],
            "orderguard.domain.money -> orderguard.api",
        ),
        (
            "services/intake.py",
            "import orderguard.storage.sqlite",
            ["services imports only what its row allows"],
            "orderguard.services.intake -> orderguard.storage.sqlite",
        ),
        (
            "web/forms.py",
            "import orderguard.bootstrap",
            [
                "web imports only what its row allows",
                "layers, top to bottom",
                "api and web are leaves, given what they need",
            ],
            "orderguard.web.forms -> orderguard.bootstrap",
        ),
        (
            "api/health.py",
            "import orderguard.observability.wiring",
            ["api and web are leaves, given what they need"],
            "orderguard.api.health -> orderguard.observability.wiring",
        ),
        (
            "web/shopper_page.py",
            "import orderguard.providers.registry",
            [
                "web imports only what its row allows",
                "api and web are leaves, given what they need",
            ],
            "orderguard.web.shopper_page -> orderguard.providers.registry",
        ),
        (
            "demo/run.py",
            "import orderguard.services.intake",
            ["demo imports only what its row allows"],
            "orderguard.demo.run -> orderguard.services.intake",
        ),
        (
            "config.py",
            "import orderguard.providers.stripe.settings",
            ["config imports only what its row allows"],
            "orderguard.config -> orderguard.providers.stripe.settings",
        ),
        (
            "domain/ids.py",
            "import httpx",
            ["the HTTP client: providers, outbox, observability (doctor), demo, client"],
            "orderguard.domain.ids -> httpx",
        ),
        (
            "client/models.py",
            "import orderguard.api.schemas",
            ["client imports only what its row allows", "layers, top to bottom"],
            "orderguard.client.models -> orderguard.api.schemas",
        ),
    ],
)
def test_a_forbidden_import_in_a_copy_breaks_its_contract(
    tmp_path: Path, module: str, line: str, contracts: list[str], culprit: str
) -> None:
    copy = tmp_path / "src" / "orderguard"
    shutil.copytree(ROOT / "src" / "orderguard", copy, ignore=shutil.ignore_patterns("__pycache__"))
    config = tmp_path / ".importlinter"
    shutil.copy(ROOT / ".importlinter", config)
    target = copy / module
    target.write_text(target.read_text(encoding="utf-8") + f"\n{line}  # noqa\n", "utf-8")

    done = lint_imports(tmp_path / "src", config)

    assert done.returncode == 1, done.stdout + done.stderr
    for name in contracts:
        assert f"{name} BROKEN" in done.stdout
    assert culprit in done.stdout
    assert f", {len(contracts)} broken." in done.stdout

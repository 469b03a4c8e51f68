"""Every link in README.md and docs/*.md that is not a web address leads to a file of this
repository (and to a heading that exists, when it names one): someone who clones the
project never meets a dead link."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
#: ``[text](target)`` and ``![alt](target)``, up to an optional title.
LINK = re.compile(r"\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"^```.*?^```", re.M | re.S)
#: Addresses that are not files of the repository.
EXTERNAL = ("http://", "https://", "mailto:")


def links(document: Path) -> list[str]:
    """The link targets of a Markdown file, outside fenced code blocks."""
    return LINK.findall(FENCE.sub("", document.read_text()))


def anchors(document: Path) -> set[str]:
    """The anchors GitHub gives the headings of ``document``."""
    found: set[str] = set()
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*$", FENCE.sub("", document.read_text()), re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        candidate, n = slug, 0
        while candidate in found:
            n += 1
            candidate = f"{slug}-{n}"
        found.add(candidate)
    return found


def dead_links(document: Path, root: Path = ROOT) -> list[str]:
    """The links of ``document`` that leave the repository at ``root`` or lead nowhere."""
    dead = []
    for target in links(document):
        if target.startswith(EXTERNAL):
            continue
        path, _, anchor = target.partition("#")
        file = (document.parent / path).resolve() if path else document
        if not file.is_relative_to(root):
            dead.append(f"{target}: outside the repository")
        elif not file.exists():
            dead.append(f"{target}: no such file")
        elif anchor and file.suffix == ".md" and anchor not in anchors(file):
            dead.append(f"{target}: no heading #{anchor} in {file.name}")
    return dead


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda d: str(d.relative_to(ROOT)))
def test_every_relative_link_leads_to_a_file_of_the_repository(document: Path) -> None:
    assert dead_links(document) == []


def test_the_readme_links_to_the_guarantees_and_the_threat_model() -> None:
    targets = links(ROOT / "README.md")
    assert "docs/guarantees.md" in targets and "docs/security.md" in targets


def test_a_link_outside_the_repository_or_to_a_missing_heading_is_found(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    broken = tmp_path / "docs" / "page.md"
    broken.write_text(
        "# Title\n[a](../../shared/design/PRODUCT.md) [b](#title) [c](#nowhere)"
        " [d](https://example.com/x)\n```\n[e](inside-a-code-block.md)\n```\n"
    )
    assert links(broken) == [
        "../../shared/design/PRODUCT.md",
        "#title",
        "#nowhere",
        "https://example.com/x",
    ]
    found = dead_links(broken, root=tmp_path)
    assert [f.split(":")[0] for f in found] == ["../../shared/design/PRODUCT.md", "#nowhere"]

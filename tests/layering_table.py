"""The "Who may import whom" table of docs/architecture.md, written from .importlinter.

The contracts are the rules; this script only words them. ``python tests/layering_table.py``
prints the table; ``--write`` puts it into docs/architecture.md between the markers (run
it after changing .importlinter; tests/unit/test_layering_doc.py fails while they differ).

How the contracts read (see the comment at the top of .importlinter):

- the ``layers`` contract lists the packages from top to bottom;
- a ``forbidden`` contract per row forbids ``orderguard.*`` and allows, in its
  ``ignore_imports``, what the row may import; the lines below a ``# pending: ...`` comment
  are known exceptions awaiting the work the comment names, and are not part of the table;
- any other ``forbidden`` contract (over several packages, forbidding named modules) is a
  rule of its own, worded below the table;
- a ``protected`` contract per group of libraries names who may import them.
"""

from __future__ import annotations

import configparser
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONTRACTS = ROOT / ".importlinter"
DOC = ROOT / "docs" / "architecture.md"
BEGIN = "<!-- import table: begin (written by tests/layering_table.py from .importlinter) -->"
END = "<!-- import table: end -->"
PACKAGE = "orderguard"


@dataclass(frozen=True)
class Pending:
    """One import a contract lets through for now (the work that removes it is named in
    .importlinter, in the comment above it)."""

    contract: str
    importer: str
    imported: str


def read(path: Path = CONTRACTS) -> configparser.ConfigParser:
    """The contracts, read the way import-linter reads them."""
    config = configparser.ConfigParser()
    config.read(path, encoding="utf-8")
    return config


def lines(value: str) -> list[str]:
    """A multi-line option as its non-empty lines."""
    return [line.strip() for line in value.splitlines() if line.strip()]


def short(module: str) -> str:
    """``orderguard.storage.ports`` -> ``storage.ports``; ``orderguard.domain.**`` -> ``domain``."""
    return module.removeprefix(f"{PACKAGE}.").removesuffix(".**")


def contracts(config: configparser.ConfigParser, kind: str) -> list[configparser.SectionProxy]:
    """The contracts of one type, in file order."""
    return [
        config[name]
        for name in config.sections()
        if name.startswith("importlinter:contract:") and config[name].get("type") == kind
    ]


def layers(config: configparser.ConfigParser) -> list[list[str]]:
    """The layers, top to bottom, each a list of its packages."""
    (contract,) = contracts(config, "layers")
    return [
        [short(part.strip()) for part in line.replace(":", "|").split("|")]
        for line in lines(contract["layers"])
    ]


def ignored(contract: configparser.SectionProxy) -> list[tuple[str, str]]:
    """The contract's ignore_imports as (importer, imported) pairs."""
    pairs = []
    for line in lines(contract.get("ignore_imports", "")):
        importer, imported = (side.strip() for side in line.split("->"))
        pairs.append((importer, imported))
    return pairs


def pending_lines(path: Path = CONTRACTS) -> dict[str, set[tuple[str, str]]]:
    """Section -> the ignore lines written under a ``# pending: ...`` comment.

    configparser drops comments, so the file is read once more line by line: in a section,
    every ``a -> b`` line after a ``# pending`` comment is a known exception.
    """
    found: dict[str, set[tuple[str, str]]] = {}
    section, pending = "", False
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if line.startswith("["):
            section, pending = line.strip("[]"), False
        elif line.startswith("# pending"):
            pending = True
        elif pending and "->" in line and not line.startswith("#"):
            importer, imported = (side.strip() for side in line.split("->"))
            found.setdefault(section, set()).add((importer, imported))
        elif not raw.startswith((" ", "\t")) and line:
            pending = False
    return found


def is_row(contract: configparser.SectionProxy) -> bool:
    """Whether a forbidden contract is a row of the table (its one package may import
    nothing of orderguard but what it ignores)."""
    return lines(contract["forbidden_modules"]) == [f"{PACKAGE}.*"]


def row_rules(config: configparser.ConfigParser, path: Path = CONTRACTS) -> dict[str, list[str]]:
    """Each row's package -> what of orderguard it may import, as Markdown: an import only
    one module of the package may make names that module."""
    waiting = pending_lines(path)
    rules: dict[str, list[str]] = {}
    for contract in filter(is_row, contracts(config, "forbidden")):
        (row,) = (short(m) for m in lines(contract["source_modules"]))
        later = waiting.get(contract.name, set())
        allowed = [pair for pair in ignored(contract) if pair not in later]
        rules[row] = [
            f"`{short(imported)}`"
            + (f" (`{short(importer)}` only)" if short(importer) != row else "")
            for importer, imported in allowed
        ]
    return rules


def exceptions(path: Path = CONTRACTS) -> list[Pending]:
    """Every known exception of every contract."""
    return [
        Pending(section.removeprefix("importlinter:contract:"), importer, imported)
        for section, pairs in pending_lines(path).items()
        for importer, imported in sorted(pairs)
    ]


def libraries(config: configparser.ConfigParser) -> dict[str, list[str]]:
    """Each package -> the libraries it may import."""
    allowed: dict[str, list[str]] = {}
    for contract in contracts(config, "protected"):
        for importer in lines(contract["allowed_importers"]):
            allowed.setdefault(short(importer), []).extend(lines(contract["protected_modules"]))
    return allowed


def render(config: configparser.ConfigParser) -> str:
    """The layers and the table, as Markdown."""
    out = [
        "Layers, top to bottom: a package imports only packages below it, directly or",
        "through others; packages on one line (`|`) do not import each other.",
        "",
    ]
    stack = layers(config)
    out += [
        f"{n}. " + " | ".join(f"`{p}`" for p in layer) for n, layer in enumerate(stack, start=1)
    ]
    rules, libs = row_rules(config), libraries(config)
    out += [
        "",
        "| package | may import (of orderguard) | libraries it may import |",
        "|---|---|---|",
    ]
    for layer in reversed(stack):
        for package in layer:
            if package in rules:
                allowed = ", ".join(rules[package]) or "nothing"
            else:
                allowed = "everything"
            lib = ", ".join(f"`{m}`" for m in sorted(libs.get(package, [])))
            out.append(f"| `{package}` | {allowed} | {lib or 'none: the standard library only'} |")
    rules_of_their_own = [c for c in contracts(config, "forbidden") if not is_row(c)]
    if rules_of_their_own:
        out += ["", "Beyond the table:", ""]
    for contract in rules_of_their_own:
        sources = ", ".join(f"`{short(m)}`" for m in lines(contract["source_modules"]))
        banned = ", ".join(f"`{short(m)}`" for m in lines(contract["forbidden_modules"]))
        out.append(f"- {contract['name']}: {sources} import none of {banned}.")
    return "\n".join(out) + "\n"


def section(text: str) -> str:
    """The part of the document between the markers."""
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    return text[start:end].strip("\n") + "\n"


def write(config: configparser.ConfigParser, doc: Path = DOC) -> None:
    """Put the rendered table into the document between the markers."""
    text = doc.read_text(encoding="utf-8")
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    doc.write_text(text[:start] + "\n" + render(config) + text[end:], encoding="utf-8")


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        write(read())
    else:
        print(render(read()), end="")

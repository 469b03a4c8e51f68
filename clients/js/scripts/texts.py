"""Copies the words the checkout script shows from orderguard's one catalog into
``src/texts.json``, so the shop's checkout page and the shopper's page say the same thing
in the same languages.

``python clients/js/scripts/texts.py`` rewrites the file; ``--check`` only compares and
exits 1 when the catalog changed and the file did not (run by the test suite).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from orderguard.catalog import CATALOG, LANGUAGES

#: The file the library bundles.
TEXTS = Path(__file__).resolve().parent.parent / "src" / "texts.json"
#: Whole namespaces it shows: its own, and the page's state, next-step, decline and wallet words.
PREFIXES = ("checkout.", "state.", "next.", "why.", "scan.", "wallet.")
#: Single words of the page it shows too (the 3-D Secure and wallet buttons, the QR label).
PAGE_KEYS = ("page.authenticate", "page.open_wallet", "page.qr_label", "page.pay_again_shop")


def texts() -> dict[str, dict[str, str]]:
    """language -> key -> text, for every language of the catalog."""
    keys = sorted(k for k in CATALOG if k.startswith(PREFIXES) or k in PAGE_KEYS)
    return {language: {k: CATALOG[k][language] for k in keys} for language in LANGUAGES}


def rendered() -> str:
    """The file's expected content."""
    return json.dumps(texts(), ensure_ascii=False, indent=1, sort_keys=True) + "\n"


def main(argv: list[str]) -> int:
    expected = rendered()
    if "--check" in argv:
        current = TEXTS.read_text(encoding="utf-8") if TEXTS.exists() else ""
        if current != expected:
            print(f"{TEXTS} is stale: run python clients/js/scripts/texts.py", file=sys.stderr)
            return 1
        return 0
    TEXTS.write_text(expected, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

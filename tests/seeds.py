"""Which seeds the demo runs are made with: the fixed ones by default, others with
``DEMO_SEEDS`` (``make test-deep`` draws random ones)."""

from __future__ import annotations

import os


def demo_seeds(fixed: list[int], spec: str | None = None) -> list[int]:
    """The seeds to run: ``fixed``, or the comma-separated whole numbers of ``DEMO_SEEDS``
    (or ``spec``), e.g. ``DEMO_SEEDS=7,8,9``: the same list in every xdist worker."""
    spec = (os.environ.get("DEMO_SEEDS", "") if spec is None else spec).strip()
    if not spec:
        return fixed
    parts = [p.strip() for p in spec.split(",")]
    if not all(p.isdigit() for p in parts):
        raise ValueError(f"DEMO_SEEDS={spec!r}: expected whole numbers like 7,8,9")
    return [int(p) for p in parts]

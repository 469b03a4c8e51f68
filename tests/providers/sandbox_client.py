"""Small helpers to drive a running sandbox's admin endpoints from tests."""

from __future__ import annotations

from typing import Any

import httpx

from tests.providers.harness import API_KEY

#: Headers that authenticate against the sandbox API.
AUTH = {"Authorization": f"Bearer {API_KEY}"}


async def set_faults(base_url: str, **settings: Any) -> None:
    """Replace the sandbox's fault profile (no settings: no faults)."""
    async with httpx.AsyncClient(base_url=base_url) as http:
        (await http.post("/_sandbox/faults", json=settings)).raise_for_status()


async def ledger(base_url: str) -> dict[str, Any]:
    """The sandbox's ``GET /ledger``."""
    async with httpx.AsyncClient(base_url=base_url) as http:
        response = await http.get("/ledger")
        response.raise_for_status()
        book: dict[str, Any] = response.json()
        return book


async def charges_for(base_url: str, order_id: str) -> list[dict[str, Any]]:
    """Succeeded charges in the ledger whose metadata names ``order_id``."""
    book = await ledger(base_url)
    return [
        c
        for c in book["charges"]
        if c["status"] == "succeeded" and c["metadata"].get("order_id") == order_id
    ]


async def fault_counts(base_url: str) -> dict[str, int]:
    """Injected faults counted by kind."""
    async with httpx.AsyncClient(base_url=base_url) as http:
        counts: dict[str, int] = (await http.get("/_sandbox/faults")).json()["counts"]
        return counts


async def fault_kinds(base_url: str) -> list[str]:
    """Injected fault kinds in the order they struck."""
    async with httpx.AsyncClient(base_url=base_url) as http:
        log = (await http.get("/_sandbox/faults")).json()["log"]
        return [entry["kind"] for entry in log]


async def script_answer(base_url: str, **answer: Any) -> None:
    """Make the sandbox's next API call(s) answer this Stripe error (``/_sandbox/answers``)."""
    async with httpx.AsyncClient(base_url=base_url) as http:
        (await http.post("/_sandbox/answers", json=answer)).raise_for_status()

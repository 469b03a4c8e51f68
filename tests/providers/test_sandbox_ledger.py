"""The sandbox's ledger opens a file an earlier version wrote, adding what it lacks."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from orderguard.providers.stripe.sandbox.ledger import Ledger

#: The two tables as the first release created them (no storing or saving times).
OLD_SCHEMA = """
CREATE TABLE objects (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE NOT NULL, kind TEXT NOT NULL,
  created INTEGER NOT NULL, body TEXT NOT NULL);
CREATE TABLE idempotency (
  key TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, status INTEGER NOT NULL, body TEXT NOT NULL);
"""


def test_an_old_ledger_gains_the_new_columns_and_keeps_its_objects(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    old = sqlite3.connect(path)
    old.executescript(OLD_SCHEMA)
    intent = {"id": "pi_old", "object": "payment_intent", "created": 5, "metadata": {}}
    old.execute(
        "INSERT INTO objects (id, kind, created, body) VALUES (?, ?, ?, ?)",
        ("pi_old", "payment_intent", 5, json.dumps(intent)),
    )
    old.execute("INSERT INTO idempotency VALUES ('k-old', 'f', 200, '{}')")
    old.commit()
    old.close()

    now = 1_000_000.0
    ledger = Ledger(str(path), clock=lambda: now)
    try:
        assert ledger.get("pi_old", "payment_intent") == intent
        assert [obj["id"] for _, obj in ledger.indexed("payment_intent", stored_before=0)] == [
            "pi_old"
        ]
        # a key saved before saving times were kept counts as expired, never as replayable
        assert ledger.replay("k-old", saved_after=now - 86400) is None
        ledger.remember("k-old", "f2", 200, {"id": "pi_new"})
        assert ledger.replay("k-old", saved_after=now - 86400) == ("f2", 200, {"id": "pi_new"})
    finally:
        ledger.close()
    Ledger(str(path)).close()  # opening it again adds nothing twice

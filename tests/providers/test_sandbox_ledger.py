"""The sandbox's ledger opens a file an earlier version wrote, adding what it lacks."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
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


#: A child that commits one object to the ledger, says so, and waits to be killed.
KILLED_WRITER = """
import sys, time
from orderguard.providers.stripe.sandbox.ledger import Ledger
ledger = Ledger(sys.argv[1])
with ledger.transaction():
    ledger.put({"id": "pi_kept", "object": "payment_intent", "created": 1, "metadata": {}})
print("committed", flush=True)
time.sleep(60)
"""


def test_what_a_killed_sandbox_committed_is_in_its_ledger_though_it_never_fsyncs(
    tmp_path: Path,
) -> None:
    """The ledger does not fsync (a checkpoint's held every charge in flight), which a
    killed sandbox does not need: its commit is the operating system's once made, and the
    ledger still holds it after SIGKILL (as it would with any ``synchronous`` setting: the
    setting itself is pinned by the ``PRAGMA`` read)."""
    path = tmp_path / "ledger.db"
    child = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, str(path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "committed"
    finally:
        child.kill()
        child.wait()
        assert child.stdout is not None
        child.stdout.close()
    ledger = Ledger(str(path))
    try:
        assert ledger._db.execute("PRAGMA synchronous").fetchone()[0] == 0  # OFF
        assert ledger.get("pi_kept", "payment_intent") == {
            "id": "pi_kept", "object": "payment_intent", "created": 1, "metadata": {},
        }  # fmt: skip
    finally:
        ledger.close()

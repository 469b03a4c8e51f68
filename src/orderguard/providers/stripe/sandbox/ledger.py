"""The sandbox's ledger: every object, idempotent response, fault and event in one SQLite file.

A restart of the sandbox, or its process killed, loses nothing. It does not fsync, so a crash
of the machine itself may lose the last writes or leave the file corrupt (SQLite says so of
``synchronous=OFF``): start a fresh ledger then. This is the sandbox's own private store (a
test oracle), not orderguard's storage layer.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import orjson

Obj = dict[str, Any]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE NOT NULL, kind TEXT NOT NULL,
  created INTEGER NOT NULL, body TEXT NOT NULL, stored_at REAL NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS idempotency (
  key TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, status INTEGER NOT NULL, body TEXT NOT NULL,
  saved_at REAL NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS faults (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, detail TEXT NOT NULL,
  at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS events (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE NOT NULL, type TEXT NOT NULL,
  body TEXT NOT NULL, state TEXT NOT NULL DEFAULT 'pending', attempts INTEGER NOT NULL DEFAULT 0);
"""
#: No fsync, not even at a checkpoint: the ledger survives the sandbox's process being killed
#: (its writes are then the operating system's), not the machine crashing or losing power.
#: With ``NORMAL`` each checkpoint's fsync held every charge in flight: a fifth fewer
#: charges/s.
SYNCHRONOUS = "OFF"
#: Columns added after the first release, for ledgers a previous version created (their rows
#: count as stored at time 0: visible to search and expired as idempotency keys).
_ADDED_COLUMNS = (
    ("objects", "stored_at", "REAL NOT NULL DEFAULT 0"),
    ("idempotency", "saved_at", "REAL NOT NULL DEFAULT 0"),
)


class Ledger:
    """Objects stored as JSON by id and kind (``payment_intent``, ``charge``, ``refund``).

    ``clock`` (unix seconds, the sandbox's movable clock) stamps when an object was first
    stored (search's indexing lag counts from it) and when an idempotent result was saved.
    """

    def __init__(self, path: str, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={SYNCHRONOUS}")
        self._db.executescript(_SCHEMA)
        for table, column, declaration in _ADDED_COLUMNS:
            present = {row[1] for row in self._db.execute(f"PRAGMA table_info({table})")}
            if column not in present:
                self._db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")

    def close(self) -> None:
        """Close the database."""
        self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Everything inside commits together or not at all."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def put(self, obj: Obj) -> Obj:
        """Insert or replace an object by its id (its first storing time is kept)."""
        self._db.execute(
            "INSERT INTO objects (id, kind, created, body, stored_at) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (id) DO UPDATE SET body = excluded.body",
            (obj["id"], obj["object"], obj["created"], _text(obj), self._clock()),
        )
        return obj

    def get(self, object_id: str, kind: str) -> Obj | None:
        """One object, or None."""
        row = self._db.execute(
            "SELECT body FROM objects WHERE id = ? AND kind = ?", (object_id, kind)
        ).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def all(self, kind: str) -> list[Obj]:
        """Every object of a kind, newest first (Stripe's list order)."""
        rows = self._db.execute(
            "SELECT body FROM objects WHERE kind = ? ORDER BY created DESC, seq DESC", (kind,)
        )
        return [dict(json.loads(body)) for (body,) in rows]

    def indexed(self, kind: str, *, stored_before: float) -> list[tuple[int, Obj]]:
        """(seq, object) of a kind first stored at or before ``stored_before``, newest first."""
        rows = self._db.execute(
            "SELECT seq, body FROM objects WHERE kind = ? AND stored_at <= ? ORDER BY seq DESC",
            (kind, stored_before),
        )
        return [(seq, dict(json.loads(body))) for seq, body in rows]

    def replay(self, key: str, *, saved_after: float) -> tuple[str, int, Obj] | None:
        """The stored (fingerprint, status, body) of an idempotency key saved after a time.

        An older record is expired: the key is free again, as Stripe prunes keys.
        """
        row = self._db.execute(
            "SELECT fingerprint, status, body FROM idempotency WHERE key = ? AND saved_at > ?",
            (key, saved_after),
        ).fetchone()
        return None if row is None else (row[0], row[1], json.loads(row[2]))

    def remember(self, key: str, fingerprint: str, status: int, body: Obj) -> None:
        """Store the response given to an idempotency key (replacing an expired one)."""
        self._db.execute(
            "INSERT OR REPLACE INTO idempotency (key, fingerprint, status, body, saved_at) "
            "VALUES (?, ?, ?, ?, ?)",
            (key, fingerprint, status, _text(body), self._clock()),
        )

    def record_fault(self, kind: str, detail: str) -> None:
        """Count one injected fault."""
        self._db.execute(
            "INSERT INTO faults (kind, detail, at) VALUES (?, ?, ?)", (kind, detail, time.time())
        )

    def faults(self) -> list[Obj]:
        """Every injected fault in order."""
        rows = self._db.execute("SELECT seq, kind, detail, at FROM faults ORDER BY seq")
        return [{"seq": s, "kind": k, "detail": d, "at": a} for s, k, d, a in rows]

    def add_event(self, evt: Obj) -> None:
        """Store an event awaiting delivery."""
        self._db.execute(
            "INSERT INTO events (id, type, body) VALUES (?, ?, ?)",
            (evt["id"], evt["type"], _text(evt)),
        )

    def set_event_state(self, event_id: str, state: str, *, attempts: int = 0) -> None:
        """Mark an event ``delivered``, ``dropped`` or ``failed`` after ``attempts`` tries."""
        self._db.execute(
            "UPDATE events SET state = ?, attempts = attempts + ? WHERE id = ?",
            (state, attempts, event_id),
        )

    def events(self, state: str | None = None) -> list[Obj]:
        """Events in creation order, with their delivery state."""
        rows = self._db.execute("SELECT body, state, attempts FROM events ORDER BY seq")
        found = [{**json.loads(b), "_delivery": {"state": s, "attempts": a}} for b, s, a in rows]
        return [e for e in found if state is None or e["_delivery"]["state"] == state]


def json_bytes(obj: Obj) -> bytes:
    """``obj`` as compact UTF-8 JSON, as starlette's ``JSONResponse`` writes it: by orjson,
    several times faster than the standard library's encoder (which was a tenth of the
    sandbox's CPU per charge), or by that encoder for what orjson refuses (an integer past
    64 bits, nesting past its limit: a scripted answer may hold either). The ledger's rows
    and the API's answers are written by it."""
    try:
        return orjson.dumps(obj)
    except TypeError:  # orjson.JSONEncodeError included
        return json.dumps(obj, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


def _text(obj: Obj) -> str:
    return json_bytes(obj).decode()

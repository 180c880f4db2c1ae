"""SQLite files medbench writes to: one way to open them, take write locks and check formats.

Shared by the answer cache and the embedding store, both of which several processes may
write at once: WAL journal, a long busy timeout, and write transactions taken eagerly.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from medbench.errors import CacheError

BUSY_TIMEOUT_S = 60.0
_META = "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)"


_LOCK_RETRIES = int(BUSY_TIMEOUT_S * 10)  # 0.1 s apart: as long as the busy timeout


def _execute_retrying(db: sqlite3.Connection, statement: str) -> sqlite3.Cursor:
    """Run `statement`, retrying while another process holds the lock.

    SQLite answers "database is locked" at once, without waiting out the busy timeout, to
    BEGIN IMMEDIATE and to the switch to WAL when another connection is creating the same
    file; two processes opening a new store together must both succeed."""
    for attempt in range(_LOCK_RETRIES):
        try:
            return db.execute(statement)
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or attempt == _LOCK_RETRIES - 1:
                raise
            time.sleep(0.1)
    raise AssertionError("unreachable")


@contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[None]:
    """A write transaction taken eagerly (BEGIN IMMEDIATE), committed on success."""
    _execute_retrying(db, "BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def open_store(path: Path, schema: str, version: int, what: str, hint: str) -> sqlite3.Connection:
    """Open (creating if needed) a store at `path` with `schema`, whose `meta` table must
    hold `version` as its format; `what` names the store and `hint` says what to do in errors."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        db.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        _execute_retrying(db, "PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")
        with transaction(db):
            db.execute(
                "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)"
            )
            for statement in schema.split(";"):
                if statement.strip():
                    db.execute(statement)
            row = db.execute("SELECT value FROM meta WHERE name = 'format'").fetchone()
            if row is None:
                db.execute("INSERT INTO meta VALUES ('format', ?)", (str(version),))
            elif row[0] != str(version):
                raise CacheError(
                    f"{path}: {what} format {row[0]}, this medbench uses {version}. {hint}"
                )
    except sqlite3.Error as e:
        raise CacheError(f"{path}: cannot open the {what} ({e}). {hint}") from e
    return db

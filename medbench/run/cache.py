"""The content-addressed answer store: SQLite in WAL mode, one row per content key."""

from __future__ import annotations

import hashlib
import os
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from medbench import __version__
from medbench.data import canonical_json
from medbench.errors import CacheError
from medbench.home import medbench_home
from medbench.run.store import open_store, transaction

CACHE_FORMAT = 1
"""Part of every content key and of the database: bump when either changes meaning."""
CACHE_SCHEMA = 3
"""The layout of the answers table, migrated in place (keys keep their meaning):
2 adds how each answer was produced, `batch_size` and `precision`; 3 adds `finish_reason`."""
CACHE_ENV = "MEDBENCH_CACHE"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS answers (
    key TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    task TEXT NOT NULL,
    family TEXT NOT NULL,
    variant TEXT NOT NULL,
    sample TEXT NOT NULL,
    prompt TEXT NOT NULL,
    output TEXT,
    error TEXT,
    seconds REAL NOT NULL,
    medbench_version TEXT NOT NULL,
    created TEXT NOT NULL,
    batch_size INTEGER,
    precision TEXT,
    finish_reason TEXT
);
CREATE TABLE IF NOT EXISTS file_hashes (
    path TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    sha256 TEXT NOT NULL
);
"""

_TYPES = {
    **dict.fromkeys(("model", "task", "family", "variant", "sample", "prompt"), "'text'"),
    **dict.fromkeys(("medbench_version", "created"), "'text'"),
    **dict.fromkeys(("output", "error", "precision"), "'text', 'null'"),
    "seconds": "'real', 'integer'",
    "batch_size": "'integer', 'null'",
}
"""The SQLite types each answers column may hold (`_answer` reads a row only of these)."""
_MALFORMED = "(" + " OR ".join(f"typeof({{t}}{c}) NOT IN ({k})" for c, k in _TYPES.items()) + ")"
"""A row whose cells `_answer` would not read as they are (a hand-edited or hostile cache)."""
# A finished answer is never replaced; a failed or malformed one is replaced by a later try.
_UPSERT = """
INSERT INTO answers (key, model, task, family, variant, sample, prompt, output, error, seconds,
                     batch_size, precision, finish_reason, medbench_version, created)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT(key) DO UPDATE SET
    model = excluded.model, task = excluded.task, family = excluded.family,
    variant = excluded.variant, sample = excluded.sample, prompt = excluded.prompt,
    output = excluded.output, error = excluded.error, seconds = excluded.seconds,
    batch_size = excluded.batch_size, precision = excluded.precision,
    finish_reason = excluded.finish_reason,
    medbench_version = excluded.medbench_version, created = excluded.created
WHERE answers.error IS NOT NULL OR """ + _MALFORMED.format(t="answers.")


_COLUMNS = (
    "key, model, task, family, variant, sample, prompt, output, error, seconds, "
    "medbench_version, created, batch_size, precision, finish_reason"
)
"""The answers columns in `Answer`'s field order (whatever order a migration left them in)."""


def content_key(payload: dict[str, Any]) -> str:
    """The sha256 of a payload's canonical JSON, with the cache format folded in."""
    return hashlib.sha256(canonical_json({"v": CACHE_FORMAT, **payload}).encode()).hexdigest()


CACHE_FILE = "answers.sqlite"


def default_cache_path() -> Path:
    """`$MEDBENCH_CACHE` if set, else `answers.sqlite` in medbench's home folder
    (`$MEDBENCH_HOME`, by default the user cache folder)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    return medbench_home() / CACHE_FILE


def cache_file(path: Path) -> Path:
    """The SQLite file for a cache path: `answers.sqlite` inside it when it is a folder."""
    return path / CACHE_FILE if path.is_dir() else path


@dataclass(frozen=True)
class Answer:
    """One stored row."""

    key: str
    model: str
    task: str
    family: str
    variant: str
    sample: str
    prompt: str
    output: str | None
    error: str | None
    seconds: float
    medbench_version: str
    created: str
    batch_size: int | None = None
    """How many requests the model answered together with this one (not in the key)."""
    precision: str | None = None
    """The dtype the model computed in, e.g. `bfloat16`; None where unknown (APIs, baselines)."""
    finish_reason: str | None = None
    """Why the answer ended: `stop`, or `length` (cut at its token budget: truncated); None
    where unknown (baselines, answers stored before cache schema 3)."""


_TEXT, _OPTIONAL_TEXT = frozenset({0, 1, 2, 3, 4, 5, 6, 10, 11}), frozenset({7, 8, 13})
_NAMES = [name.strip() for name in _COLUMNS.split(",")]


def _answer(row: tuple[Any, ...]) -> Answer:
    """A stored row as an Answer. A row whose cells are not of their column's type (a hand-edited
    or hostile cache: bytes for a text, a text for a number) becomes a failed answer saying
    which column, so scoring reads it as missing and the next run answers it again."""
    bad = [
        _NAMES[i]
        for i, value in enumerate(row)
        if (i in _TEXT and not isinstance(value, str))
        or (i in _OPTIONAL_TEXT and value is not None and not isinstance(value, str))
        or (i == 9 and (isinstance(value, bool) or not isinstance(value, int | float)))
        or (
            i == 12
            and value is not None
            and (isinstance(value, bool) or not isinstance(value, int))
        )
    ]
    if not bad:
        return Answer(*row)
    key, model, task, family, variant, sample, prompt = (
        v if isinstance(v, str) else repr(v)[:80] for v in row[:7]
    )
    version, created = (v if isinstance(v, str) else "" for v in row[10:12])
    error = f"the cached row is malformed (column {', '.join(bad)}); the next run answers it again"
    return Answer(
        key, model, task, family, variant, sample, prompt, None, error, 0.0, version, created
    )


class Cache:
    """The answer store. Safe for several processes at once (WAL, busy timeout, upserts)."""

    def __init__(self, path: Path) -> None:
        path = cache_file(path)
        self.path = path
        self._known_hashes: dict[str, tuple[int, int, str]] | None = None
        self._new_hashes: list[tuple[str, int, int, str]] = []
        self._db = open_store(
            path,
            _SCHEMA,
            CACHE_FORMAT,
            "answer cache",
            f"Use a new cache file (--cache) or set {CACHE_ENV}; or delete this one.",
        )
        self._migrate()

    def _migrate(self) -> None:
        """Bring an older answers table to `CACHE_SCHEMA` (adding columns keeps every row)."""
        with self.transaction():
            row = self._db.execute("SELECT value FROM meta WHERE name = 'schema'").fetchone()
            schema = int(row[0]) if row is not None else 1
            if schema > CACHE_SCHEMA:
                raise CacheError(
                    f"{self.path}: answer cache schema {schema}, this medbench knows up to "
                    f"{CACHE_SCHEMA}. Upgrade medbench, or use a new cache file (--cache)."
                )
            columns = {r[1] for r in self._db.execute("PRAGMA table_info(answers)")}
            added = (("batch_size", "INTEGER"), ("precision", "TEXT"), ("finish_reason", "TEXT"))
            for name, kind in added:
                if name not in columns:
                    self._db.execute(f"ALTER TABLE answers ADD COLUMN {name} {kind}")
            self._db.execute(
                "INSERT OR REPLACE INTO meta VALUES ('schema', ?)", (str(CACHE_SCHEMA),)
            )

    def transaction(self) -> AbstractContextManager[None]:
        """A write transaction taken eagerly (BEGIN IMMEDIATE), committed on exit."""
        return transaction(self._db)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Cache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # answers

    def finished_keys(self) -> set[str]:
        """Keys of every answer stored without error."""
        query = f"SELECT key FROM answers WHERE error IS NULL AND NOT {_MALFORMED.format(t='')}"
        return {row[0] for row in self._db.execute(query)}

    def put_many(self, rows: Iterable[tuple[Any, ...]]) -> None:
        """Store rows (key, model, task, family, variant, sample, prompt, output, error, seconds
        [, batch_size, precision, finish_reason]) in one transaction: the unit that survives a
        crash."""
        created = datetime.now(timezone.utc).isoformat(timespec="seconds")
        values = [(*row, *(None,) * (13 - len(row)), __version__, created) for row in rows]
        try:
            with self.transaction():
                self._db.executemany(_UPSERT, values)
        except (sqlite3.OperationalError, OSError) as e:
            # A full disk: the transaction rolled back, every answer stored before is kept.
            raise CacheError(
                f"{self.path}: cannot store answers ({e}). Free space in {self.path.parent} "
                "and run again: the answers stored so far are kept."
            ) from e

    def get_many(self, keys: Iterable[str]) -> dict[str, Answer]:
        """The stored rows for these keys (missing keys are absent)."""
        found: dict[str, Answer] = {}
        unique = sorted(set(keys))
        for start in range(0, len(unique), 500):
            chunk = unique[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for row in self._db.execute(
                f"SELECT {_COLUMNS} FROM answers WHERE key IN ({marks})", chunk
            ):
                found[row[0]] = _answer(row)
        return found

    def delete(self, keys: Iterable[str]) -> int:
        """Remove the rows of these keys in one transaction; returns how many were removed."""
        unique = sorted(set(keys))
        removed = 0
        with self.transaction():
            for start in range(0, len(unique), 500):
                chunk = unique[start : start + 500]
                marks = ",".join("?" * len(chunk))
                cursor = self._db.execute(f"DELETE FROM answers WHERE key IN ({marks})", chunk)
                removed += cursor.rowcount
        return removed

    def iter_answers(self) -> Iterator[Answer]:
        """Every stored row, ordered by key."""
        for row in self._db.execute(f"SELECT {_COLUMNS} FROM answers ORDER BY key"):
            yield _answer(row)

    def stats(self) -> dict[str, Any]:
        """Counts per model: answers, failures, seconds spent."""
        rows = self._db.execute(
            "SELECT model, COUNT(*), SUM(error IS NOT NULL), SUM(seconds) FROM answers "
            "GROUP BY model ORDER BY model"
        ).fetchall()
        return {
            "path": str(self.path),
            "bytes": self.path.stat().st_size if self.path.exists() else 0,
            "models": [
                {"model": m, "answers": n - int(f), "failed": int(f), "seconds": round(s or 0.0, 3)}
                for m, n, f, s in rows
            ],
        }

    # file hashes

    def hash_file(self, path: Path) -> str:
        """A file's sha256, computed once per (path, size, mtime) and remembered
        (call `flush_hashes` to store new ones)."""
        from medbench.data import sha256_file

        if self._known_hashes is None:
            rows = self._db.execute("SELECT path, size, mtime_ns, sha256 FROM file_hashes")
            self._known_hashes = {p: (size, mtime, sha) for p, size, mtime, sha in rows}
        stat = path.stat()
        resolved = str(path.resolve())
        known = self._known_hashes.get(resolved)
        if known is not None and known[:2] == (stat.st_size, stat.st_mtime_ns):
            return known[2]
        digest = sha256_file(path)
        self._known_hashes[resolved] = (stat.st_size, stat.st_mtime_ns, digest)
        self._new_hashes.append((resolved, stat.st_size, stat.st_mtime_ns, digest))
        return digest

    def flush_hashes(self) -> None:
        """Store the file hashes computed since the last flush, in one transaction."""
        if self._new_hashes:
            with self.transaction():
                self._db.executemany(
                    "INSERT OR REPLACE INTO file_hashes VALUES (?, ?, ?, ?)", self._new_hashes
                )
            self._new_hashes = []

"""The embedding cache: one vector per (text, model, version, dimensions, normalisation, prefix,
input type).

Why SQLite (the stdlib's `sqlite3`) and not numpy files or chDB: a lookup is by key, one batch
at a time, and a write must be all-or-nothing even when the process is SIGKILLed mid-batch.
SQLite gives an indexed primary key, transactions (WAL mode: a committed batch survives a
killed process; `synchronous=NORMAL` may lose the last commits only on a power cut) and safe
use by several processes, in one file and no dependency. Numpy files per chunk would need an
index and an atomic-rename protocol of their own; chDB is the analytics store, claimed by one
process at a time, and vectors do not belong beside the pairs everyone may query.

**Where vectors live and for how long.** Vectors are sensitive: text can be recovered from
them. They are kept only in the file the caller names (the CLI's default is
`var/embeddings/cache.sqlite3` under the working directory), created readable by its owner
only (0600), and never in the store, the bus or a log. The text itself is not stored, only
its SHA-256. Retention is enforced by `prune()`: rows older than `max_age_days` (default 30,
counted from when the vector was embedded) are deleted, and past `max_entries` the oldest go
first. `open()` prunes once; a long-running user calls `prune()` on its own schedule.
Deleted rows leave free pages in the file (SQLite reuses them); `vacuum()` gives them back.

A file written before the key had its `input_type` column (the vectors of calls that sent
none) is rebuilt with that column empty when it opens, in one transaction; its vectors stay
valid.

Thread-safe (one connection behind a lock), so async callers can use `asyncio.to_thread`.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType

import numpy as np
import numpy.typing as npt

from mirror.embeddings.model import CacheKey

Vector = npt.NDArray[np.float32]

DEFAULT_MAX_AGE_DAYS = 30.0
_DAY_S = 86_400.0
_NO_DIMENSIONS = 0  # SQLite's NULLs are all distinct in a primary key: "native width" is 0

_TABLE = """
CREATE TABLE IF NOT EXISTS {name} (
    model TEXT NOT NULL,
    version TEXT NOT NULL,
    dimensions INTEGER NOT NULL,
    normalize INTEGER NOT NULL,
    prefix TEXT NOT NULL,
    input_type TEXT NOT NULL DEFAULT '',
    text_sha256 BLOB NOT NULL,
    width INTEGER NOT NULL,
    vector BLOB NOT NULL,
    created_at REAL NOT NULL,
    UNIQUE (model, version, dimensions, normalize, prefix, input_type, text_sha256)
);
"""
_INDEX = "CREATE INDEX IF NOT EXISTS vectors_created_at ON vectors (created_at);"
_SCHEMA = _TABLE.format(name="vectors") + _INDEX
_COLUMNS = "model, version, dimensions, normalize, prefix, text_sha256, width, vector, created_at"
#: A file from before `input_type` was part of the key: the same rows, with no input type.
_ADD_INPUT_TYPE = (
    _TABLE.format(name="vectors_keyed"),
    f"INSERT INTO vectors_keyed ({_COLUMNS}) SELECT {_COLUMNS} FROM vectors",
    "DROP TABLE vectors",
    "ALTER TABLE vectors_keyed RENAME TO vectors",
)


def _key_row(key: CacheKey) -> tuple[str, str, int, int, str, str, bytes]:
    dims = _NO_DIMENSIONS if key.dimensions is None else key.dimensions
    return (
        key.model, key.version, dims, int(key.normalize), key.prefix, key.input_type,
        key.text_sha256,
    )  # fmt: skip


class EmbeddingCache:
    """Vectors by `CacheKey` in one SQLite file; use `EmbeddingCache.open(path)`."""

    def __init__(
        self,
        connection: sqlite3.Connection,
        *,
        max_age_days: float | None = DEFAULT_MAX_AGE_DAYS,
        max_entries: int | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        _check_limits(max_age_days, max_entries)
        self._db = connection
        self._lock = threading.Lock()
        self.max_age_days = max_age_days
        self.max_entries = max_entries
        self._clock = clock

    @classmethod
    def open(
        cls,
        path: Path | str,
        *,
        max_age_days: float | None = DEFAULT_MAX_AGE_DAYS,
        max_entries: int | None = None,
        clock: Callable[[], float] = time.time,
    ) -> EmbeddingCache:
        """Open (or create, owner-only) the cache at `path`, then prune it once."""
        _check_limits(max_age_days, max_entries)
        file = Path(path)
        file.parent.mkdir(parents=True, exist_ok=True)
        if not file.exists():
            os.close(os.open(file, os.O_CREAT | os.O_WRONLY, 0o600))
        connection = sqlite3.connect(file, check_same_thread=False, isolation_level=None)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        connection.execute("PRAGMA busy_timeout=30000")
        _add_input_type(connection)
        connection.executescript(_SCHEMA)
        cache = cls(connection, max_age_days=max_age_days, max_entries=max_entries, clock=clock)
        cache.prune()
        return cache

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> EmbeddingCache:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def get_many(self, keys: Iterable[CacheKey]) -> dict[CacheKey, Vector]:
        """The cached vectors of those keys that have one (read-only copies)."""
        found: dict[CacheKey, Vector] = {}
        with self._lock:
            for key in keys:
                row = self._db.execute(
                    "SELECT vector FROM vectors WHERE model = ? AND version = ? AND"
                    " dimensions = ? AND normalize = ? AND prefix = ? AND input_type = ? AND"
                    " text_sha256 = ?",
                    _key_row(key),
                ).fetchone()
                if row is not None:
                    found[key] = np.frombuffer(row[0], dtype="<f4").astype(np.float32)
        return found

    def put_many(self, vectors: Mapping[CacheKey, Vector]) -> None:
        """Store the vectors in one transaction (all or none; a key stored again is replaced)."""
        now = self._clock()
        rows = [
            (*_key_row(key), int(vector.shape[-1]), _blob(vector), now)
            for key, vector in vectors.items()
        ]
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany(
                    "INSERT OR REPLACE INTO vectors (model, version, dimensions, normalize, prefix,"
                    " input_type, text_sha256, width, vector, created_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    rows,
                )
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def __len__(self) -> int:
        with self._lock:
            (count,) = self._db.execute("SELECT count(*) FROM vectors").fetchone()
        return int(count)

    def count(self, model: str, version: str) -> int:
        """Vectors held for one model version (all dimensions, prefixes, normalisations)."""
        with self._lock:
            (count,) = self._db.execute(
                "SELECT count(*) FROM vectors WHERE model = ? AND version = ?", (model, version)
            ).fetchone()
        return int(count)

    def prune(self) -> int:
        """Delete what the retention limits no longer allow; returns the rows deleted."""
        deleted = 0
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                if self.max_age_days is not None:
                    cutoff = self._clock() - self.max_age_days * _DAY_S
                    deleted += self._db.execute(
                        "DELETE FROM vectors WHERE created_at < ?", (cutoff,)
                    ).rowcount
                if self.max_entries is not None:
                    (count,) = self._db.execute("SELECT count(*) FROM vectors").fetchone()
                    excess = int(count) - self.max_entries
                    if excess > 0:
                        deleted += self._db.execute(_DELETE_OLDEST, (excess,)).rowcount
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        return deleted

    def vacuum(self) -> None:
        """Give the pages of deleted rows back to the file system."""
        with self._lock:
            self._db.execute("VACUUM")


_DELETE_OLDEST = """
DELETE FROM vectors WHERE rowid IN (SELECT rowid FROM vectors ORDER BY created_at LIMIT ?)
"""


def _add_input_type(db: sqlite3.Connection) -> None:
    """Rebuild a `vectors` table from before `input_type` was part of its key (see the module
    docstring); nothing to do for a new file or one already rebuilt."""
    db.execute("BEGIN IMMEDIATE")  # another process opening the same file waits, then sees it
    try:
        columns = {row[1] for row in db.execute("PRAGMA table_info(vectors)")}
        if columns and "input_type" not in columns:
            for statement in _ADD_INPUT_TYPE:
                db.execute(statement)
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _check_limits(max_age_days: float | None, max_entries: int | None) -> None:
    if max_age_days is not None and not max_age_days > 0:
        raise ValueError(f"max_age_days must be positive, got {max_age_days!r}")
    if max_entries is not None and max_entries < 1:
        raise ValueError(f"max_entries must be positive, got {max_entries!r}")


def _blob(vector: Vector | Sequence[float]) -> bytes:
    return np.ascontiguousarray(vector, dtype="<f4").tobytes()

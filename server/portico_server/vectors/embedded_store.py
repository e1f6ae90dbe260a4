"""The embedded backend's durable half: one SQLite file holding every collection and record.

SQLite is the source of truth; the ANN index (`embedded_index.py`) is derived from it and
can always be rebuilt. Every write transaction takes the next number of a store-wide
sequence and stamps the rows it writes with it (and a tombstone per row it deletes), so
any process holding an index can bring it up to date by reading what came after the
last number it applied. Writers serialise on SQLite's write lock (BEGIN IMMEDIATE), so
sequence numbers become visible in order.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .model import Collection, Distance, Record

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sequence (id INTEGER PRIMARY KEY CHECK (id = 0), value INTEGER NOT NULL);
INSERT OR IGNORE INTO sequence VALUES (0, 0);
CREATE TABLE IF NOT EXISTS collections (
    name TEXT PRIMARY KEY,
    uid INTEGER NOT NULL UNIQUE,
    dimensions INTEGER NOT NULL,
    distance TEXT NOT NULL,
    embedding_provider TEXT NOT NULL,
    embedding_model TEXT NOT NULL,
    create_time REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS records (
    label INTEGER PRIMARY KEY AUTOINCREMENT,
    uid INTEGER NOT NULL,
    id TEXT NOT NULL,
    vector BLOB NOT NULL,
    metadata TEXT NOT NULL,
    text TEXT,
    seq INTEGER NOT NULL,
    UNIQUE (uid, id)
);
CREATE INDEX IF NOT EXISTS records_by_seq ON records (uid, seq);
CREATE TABLE IF NOT EXISTS tombstones (uid INTEGER NOT NULL, label INTEGER NOT NULL, seq INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS tombstones_by_seq ON tombstones (uid, seq);
"""


@dataclass(frozen=True)
class StoredCollection:
    collection: Collection
    #: Which incarnation of the name: a collection deleted and created again gets a new one.
    uid: int


@dataclass
class Row:
    label: int
    id: str
    vector: np.ndarray
    metadata: dict[str, Any]
    text: str | None

    def record(self) -> Record:
        return Record(self.id, self.vector, self.metadata, self.text)


def _vector(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype="<f4").astype(np.float32)


class Store:
    """The SQLite file. One connection per process, used by one thread at a time (the
    lock); WAL lets other processes read while one writes."""

    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30.0)
        self.lock = threading.RLock()
        self._db.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode: a committed write survives the process dying; only a power
        # loss can take the last transactions back.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def writing(self) -> Iterator[None]:
        """A write transaction: no other process writes until it commits, so what it
        reads (and `next_sequence`) stays current. The caller holds `lock`."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def next_sequence(self) -> int:
        (seq,) = self._db.execute("UPDATE sequence SET value = value + 1 RETURNING value").fetchone()
        return int(seq)

    def sequence(self) -> int:
        (value,) = self._db.execute("SELECT value FROM sequence").fetchone()
        return int(value)

    # -- collections ------------------------------------------------------------------

    def collection(self, name: str) -> StoredCollection | None:
        row = self._db.execute(
            "SELECT name, dimensions, distance, embedding_provider, embedding_model, create_time, uid"
            " FROM collections WHERE name = ?", (name,)).fetchone()
        return None if row is None else _stored(row)

    def collections(self, offset: int, limit: int) -> list[StoredCollection]:
        rows = self._db.execute(
            "SELECT name, dimensions, distance, embedding_provider, embedding_model, create_time, uid"
            " FROM collections ORDER BY name LIMIT ? OFFSET ?", (limit, offset)).fetchall()
        return [_stored(row) for row in rows]

    def add_collection(self, collection: Collection, seq: int) -> None:
        self._db.execute(
            "INSERT INTO collections VALUES (?, ?, ?, ?, ?, ?, ?)",
            (collection.name, seq, collection.dimensions, collection.distance.value,
             collection.embedding_provider, collection.embedding_model, collection.create_time))

    def remove_collection(self, stored: StoredCollection) -> None:
        self._db.execute("DELETE FROM collections WHERE uid = ?", (stored.uid,))
        self._db.execute("DELETE FROM records WHERE uid = ?", (stored.uid,))
        self._db.execute("DELETE FROM tombstones WHERE uid = ?", (stored.uid,))

    # -- records ----------------------------------------------------------------------

    def put(self, uid: int, records: list[Record], seq: int) -> list[int]:
        """Insert or replace; a replaced record keeps its label. Returns the labels."""
        labels = []
        for record in records:
            (label,) = self._db.execute(
                "INSERT INTO records (uid, id, vector, metadata, text, seq) VALUES (?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (uid, id) DO UPDATE SET vector = excluded.vector, metadata = excluded.metadata,"
                " text = excluded.text, seq = excluded.seq RETURNING label",
                (uid, record.id, record.vector.astype("<f4").tobytes(),
                 json.dumps(record.metadata, ensure_ascii=False), record.text, seq)).fetchone()
            labels.append(int(label))
        return labels

    def remove(self, uid: int, labels: list[int], seq: int) -> int:
        removed = 0
        for label in labels:
            cursor = self._db.execute("DELETE FROM records WHERE +uid = ? AND label = ?", (uid, label))
            if cursor.rowcount:
                removed += 1
                self._db.execute("INSERT INTO tombstones VALUES (?, ?, ?)", (uid, label, seq))
        return removed

    def labels_of(self, uid: int, ids: list[str]) -> dict[str, int]:
        found: dict[str, int] = {}
        for chunk in _chunks(ids):
            marks = ",".join("?" * len(chunk))
            for record_id, label in self._db.execute(
                    f"SELECT id, label FROM records WHERE uid = ? AND id IN ({marks})", (uid, *chunk)):
                found[record_id] = int(label)
        return found

    def rows(self, uid: int, labels: list[int]) -> dict[int, Row]:
        found: dict[int, Row] = {}
        for chunk in _chunks(labels):
            marks = ",".join("?" * len(chunk))
            # `+uid`: look rows up by label (the primary key), not by scanning the
            # collection's (uid, id) index.
            for row in self._db.execute(
                    f"SELECT label, id, vector, metadata, text FROM records WHERE +uid = ? AND label IN ({marks})",
                    (uid, *chunk)):
                found[int(row[0])] = Row(int(row[0]), row[1], _vector(row[2]), json.loads(row[3]), row[4])
        return found

    def changed_since(self, uid: int, seq: int) -> Iterator[tuple[int, np.ndarray, dict[str, Any]]]:
        """Label, vector and metadata of every record written after `seq` (all of them for 0)."""
        for label, blob, metadata in self._db.execute(
                "SELECT label, vector, metadata FROM records WHERE uid = ? AND seq > ?", (uid, seq)):
            yield int(label), _vector(blob), json.loads(metadata)

    def metadata(self, uid: int) -> Iterator[tuple[int, dict[str, Any]]]:
        for label, metadata in self._db.execute("SELECT label, metadata FROM records WHERE uid = ?", (uid,)):
            yield int(label), json.loads(metadata)

    def deleted_since(self, uid: int, seq: int) -> list[int]:
        return [int(label) for (label,) in self._db.execute(
            "SELECT label FROM tombstones WHERE uid = ? AND seq > ?", (uid, seq))]


def _stored(row: tuple[Any, ...]) -> StoredCollection:
    name, dimensions, distance, provider, model, create_time, uid = row
    return StoredCollection(Collection(name, dimensions, Distance(distance), provider, model, create_time), uid)


def _chunks(items: list[Any], size: int = 500) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]

"""`embedded`: the default backend. Persistent, approximate, no server.

Records live in one SQLite file under the data directory (`vectors.sqlite3`); each
collection also has a usearch HNSW graph in memory for approximate nearest-neighbour
search, saved as a snapshot under `snapshots/` when the backend closes and rebuilt from
SQLite when a snapshot is missing or stale.

Filters are applied with the `memory` backend's evaluator (`matching.py`), so they mean
the same thing. A filtered query over-fetches from the graph (4x top_k, growing 4x at a
time) and keeps the candidates the filter allows; when that does not find top_k of them
within `MAX_OVERFETCH` candidates (a selective filter), it searches the records the
filter allows exactly instead. Scores are always recomputed exactly from the stored
vectors, so they equal the `memory` backend's for the same records.

Several processes (`portico serve --workers N`) may share one data directory: every
write takes the next number of a store-wide sequence, and before each call a process
replays into its graph whatever the store wrote after the last number it applied. Each
process holds its own graph, so memory grows with the number of workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from pydantic import BaseModel, ConfigDict

from .. import paging
from ..config import StartupError
from ..errors import AlreadyExists, InvalidRequest, NotFound
from . import checks
from .embedded_index import CollectionIndex, remove_snapshots
from .embedded_store import Store
from .matching import matches
from .model import Collection, Distance, Filter, Match, Record, Vector
from .registry import options, register

#: Collections up to this size are searched exactly (cheaper than the graph, and exact).
EXACT_BELOW = 1_024
#: A filtered query gives up on the graph after this many candidates and searches exactly.
MAX_OVERFETCH = 4_096
OVERFETCH = 4

_T = TypeVar("_T")


class EmbeddedBackend:
    def __init__(self, data_dir: str | Path, *, exact_below: int = EXACT_BELOW) -> None:
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._store = Store(self.data_dir / "vectors.sqlite3")
        self._snapshots = self.data_dir / "snapshots"
        self._indexes: dict[str, CollectionIndex] = {}
        self._exact_below = exact_below
        self._closed = False

    async def _run(self, work: Callable[[], _T]) -> _T:
        """Run blocking store and graph work in a thread, one call at a time per process."""
        def locked() -> _T:
            with self._store.lock:
                if self._closed:
                    raise RuntimeError("the embedded vector store is closed")
                return work()
        return await asyncio.to_thread(locked)

    def _index(self, name: str) -> CollectionIndex:
        """The collection's graph, up to date with the store. Caller holds the lock."""
        stored = self._store.collection(name)
        index = self._indexes.get(name)
        if stored is None:
            self._indexes.pop(name, None)
            raise NotFound("collection", name)
        if index is None or index.stored.uid != stored.uid:
            index = self._indexes[name] = CollectionIndex.open(self._store, stored, self._snapshots)
        else:
            index.catch_up(self._store)
        return index

    # -- collections ----------------------------------------------------------------------

    async def create_collection(self, collection: Collection) -> Collection:
        checks.check_collection(collection)
        stored = Collection(collection.name, collection.dimensions, collection.distance,
                            collection.embedding_provider, collection.embedding_model, time.time())

        def create() -> Collection:
            with self._store.writing():
                if self._store.collection(collection.name) is not None:
                    raise AlreadyExists("collection", collection.name)
                self._store.add_collection(stored, self._store.next_sequence())
            return stored
        return await self._run(create)

    async def get_collection(self, name: str) -> Collection:
        stored = await self._run(lambda: self._store.collection(name))
        if stored is None:
            raise NotFound("collection", name)
        return stored.collection

    async def list_collections(self, page_size: int, page_token: str) -> tuple[list[Collection], str]:
        start = paging.decode_token(page_token)
        page = await self._run(lambda: self._store.collections(start, page_size + 1))
        more = len(page) > page_size
        return [s.collection for s in page[:page_size]], paging.encode_token(start + page_size) if more else ""

    async def delete_collection(self, name: str) -> None:
        def delete() -> None:
            with self._store.writing():
                stored = self._store.collection(name)
                if stored is None:
                    raise NotFound("collection", name)
                self._store.next_sequence()
                self._store.remove_collection(stored)
            self._indexes.pop(name, None)
            remove_snapshots(self._snapshots, stored.uid)
        await self._run(delete)

    # -- records --------------------------------------------------------------------------

    async def upsert(self, name: str, records: list[Record]) -> int:
        def upsert() -> int:
            index = self._index(name)
            checks.check_records(index.stored.collection, records)
            if not records:
                return 0
            with self._store.writing():
                index.catch_up(self._store)
                seq = self._store.next_sequence()
                labels = self._store.put(index.stored.uid, records, seq)
            self._apply(name, index, lambda: index.put(
                np.array(labels, dtype=np.uint64), np.stack([r.vector for r in records]).astype(np.float32)))
            for label, record in zip(labels, records, strict=True):
                index.metadata[label] = record.metadata
            index.seq = seq
            return len(records)
        return await self._run(upsert)

    def _apply(self, name: str, index: CollectionIndex, change: Callable[[], None]) -> None:
        """Mirror a committed write in the graph; if that fails, drop the graph so the next
        call rebuilds it from the store (which has the write)."""
        try:
            change()
        except BaseException:
            self._indexes.pop(name, None)
            raise

    async def delete(self, name: str, ids: list[str] | None = None, filter: Filter | None = None) -> int:
        if (ids is None) == (filter is None):
            raise InvalidRequest([("ids", "give either ids or a filter")])

        def delete() -> int:
            index = self._index(name)
            with self._store.writing():
                index.catch_up(self._store)
                if filter is not None:
                    labels = index.selected(filter)
                else:
                    labels = list(self._store.labels_of(index.stored.uid, ids or []).values())
                seq = self._store.next_sequence()
                removed = self._store.remove(index.stored.uid, labels, seq)
            self._apply(name, index, lambda: index.forget(labels))
            index.seq = seq
            return removed
        return await self._run(delete)

    async def get(self, name: str, ids: list[str]) -> list[Record]:
        def get() -> list[Record]:
            index = self._index(name)
            labels = self._store.labels_of(index.stored.uid, ids)
            rows = self._store.rows(index.stored.uid, list(labels.values()))
            return [rows[labels[i]].record() for i in ids if i in labels]
        return await self._run(get)

    async def count(self, name: str, filter: Filter | None = None) -> int:
        def count() -> int:
            index = self._index(name)
            return len(index) if filter is None else len(index.selected(filter))
        return await self._run(count)

    async def query(
        self, name: str, vector: Vector, top_k: int, filter: Filter | None = None,
        min_score: float | None = None, include_vectors: bool = False, include_metadata: bool = True,
    ) -> list[Match]:
        checks.check_top_k(top_k)

        def query() -> list[Match]:
            index = self._index(name)
            checks.check_vector(index.stored.collection, vector, "vector")
            labels = self._candidates(index, vector, top_k, filter)
            return self._best(index, labels, vector, top_k, min_score, include_vectors, include_metadata)
        return await self._run(query)

    def _candidates(self, index: CollectionIndex, vector: Vector, top_k: int, filter: Filter | None) -> list[int]:
        """Labels among which the best top_k (of those the filter allows) are."""
        size = len(index)
        if size <= self._exact_below:
            return index.selected(filter) if filter is not None else list(index.metadata)
        if filter is None:
            # Over-fetched and rescored exactly in _best; a graph walk that finds fewer than
            # wanted (small or churned graphs can) falls back to all records, never short.
            wanted = min(top_k, size)
            found = [int(label) for label in index.nearest(vector, min(size, wanted * OVERFETCH))]
            return found if len(found) >= wanted else list(index.metadata)
        fetch = top_k * OVERFETCH
        while fetch <= min(size, MAX_OVERFETCH):
            allowed = [int(label) for label in index.nearest(vector, fetch)
                       if matches(filter, index.metadata[int(label)])]
            if len(allowed) >= top_k:
                return allowed
            fetch *= OVERFETCH
        return index.selected(filter)

    def _best(self, index: CollectionIndex, labels: list[int], vector: Vector, top_k: int,
              min_score: float | None, include_vectors: bool, include_metadata: bool) -> list[Match]:
        if not labels:
            return []
        scores = _scores(index.stored.collection.distance, index.vectors(labels), vector)
        keep = np.ones(len(labels), dtype=bool) if min_score is None else scores >= min_score
        rows = np.flatnonzero(keep)
        if len(rows) > top_k:
            # Everything scoring at least the k-th best, so ties at the edge go by id below.
            kth = np.partition(scores[rows], len(rows) - top_k)[len(rows) - top_k]
            rows = rows[scores[rows] >= kth]
        chosen = [labels[r] for r in rows.tolist()]
        score_of = {labels[r]: float(scores[r]) for r in rows.tolist()}
        records = self._store.rows(index.stored.uid, chosen)
        best = sorted(chosen, key=lambda label: (-score_of[label], records[label].id))[:top_k]
        return [_match(records[label], score_of[label], include_vectors, include_metadata) for label in best]

    async def close(self) -> None:
        def close() -> None:
            for index in self._indexes.values():
                with contextlib.suppress(OSError, RuntimeError):
                    index.save()
            self._indexes.clear()
            self._store.close()
            self._closed = True
        with contextlib.suppress(RuntimeError):
            await self._run(close)


def _scores(distance: Distance, vectors: np.ndarray, query: Vector) -> np.ndarray:
    """The `memory` backend's scores, computed the same way."""
    if distance is Distance.DOT:
        scores = vectors @ query
    elif distance is Distance.COSINE:
        scores = (vectors @ query) / (np.linalg.norm(vectors, axis=1) * np.linalg.norm(query))
    else:
        scores = -np.linalg.norm(vectors - query, axis=1)
    return np.asarray(scores, dtype=np.float64)


def _match(row: Any, score: float, include_vectors: bool, include_metadata: bool) -> Match:
    return Match(row.id, score, row.vector if include_vectors else None,
                 row.metadata if include_metadata else None, row.text if include_metadata else None)


def default_data_dir() -> Path:
    """`$PORTICO_DATA_DIR/vectors`, else `$XDG_DATA_HOME/portico/vectors`, else
    `~/.local/share/portico/vectors`."""
    base = os.environ.get("PORTICO_DATA_DIR")
    if base:
        return Path(base) / "vectors"
    xdg = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(xdg) / "portico" / "vectors"


class _Options(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: Where the SQLite file and graph snapshots live (created if missing).
    data_dir: Path | None = None
    #: Collections up to this many records are searched exactly.
    exact_below: int = EXACT_BELOW


@register("embedded")
def _create(given: dict[str, Any], where: str) -> EmbeddedBackend:
    settings = options(_Options, given, where)
    data_dir = settings.data_dir or default_data_dir()
    try:
        return EmbeddedBackend(data_dir.expanduser(), exact_below=settings.exact_below)
    except (OSError, sqlite3.Error) as e:
        raise StartupError(f"{where}.data_dir: cannot open the vector store in {data_dir}: {e}") from None

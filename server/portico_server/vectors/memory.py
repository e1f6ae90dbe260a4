"""`memory`: every vector in one numpy matrix per collection, searched exactly.

For tests, small sets, and as the reference the approximate backends' recall is measured
against. Nothing survives a restart. A query over a large collection runs in a worker
thread, so the event loop stays free; a lock per collection keeps writes out meanwhile.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict

from .. import paging
from ..errors import AlreadyExists, InvalidRequest, NotFound
from . import checks
from .matching import matches
from .model import Collection, Distance, Filter, Match, Record, Vector
from .registry import options, register

#: Above this many stored floats a query leaves the event loop (about a millisecond of work).
_THREAD_FLOATS = 1_000_000


class _Store:
    """One collection's records: row i of `vectors` belongs to `ids[i]`; a deleted row is
    filled with the last one, so the first `size` rows are always the live ones."""

    def __init__(self, collection: Collection) -> None:
        self.collection = collection
        self.lock = asyncio.Lock()
        self.vectors = np.zeros((16, collection.dimensions), dtype=np.float32)
        self.norms = np.zeros(16, dtype=np.float32)
        self.ids: list[str] = []
        self.metadata: list[dict[str, Any]] = []
        self.texts: list[str | None] = []
        self.rows: dict[str, int] = {}

    @property
    def size(self) -> int:
        return len(self.ids)

    def put(self, record: Record) -> None:
        row = self.rows.get(record.id)
        if row is None:
            row = self.size
            if row == len(self.vectors):
                self.vectors = np.resize(self.vectors, (row * 2, self.collection.dimensions))
                self.norms = np.resize(self.norms, row * 2)
            self.rows[record.id] = row
            self.ids.append(record.id)
            self.metadata.append(record.metadata)
            self.texts.append(record.text)
        else:
            self.metadata[row] = record.metadata
            self.texts[row] = record.text
        self.vectors[row] = record.vector
        self.norms[row] = np.linalg.norm(record.vector)

    def remove(self, record_id: str) -> bool:
        row = self.rows.pop(record_id, None)
        if row is None:
            return False
        last = self.size - 1
        if row != last:
            self.vectors[row], self.norms[row] = self.vectors[last], self.norms[last]
            self.ids[row], self.metadata[row], self.texts[row] = self.ids[last], self.metadata[last], self.texts[last]
            self.rows[self.ids[row]] = row
        del self.ids[last], self.metadata[last], self.texts[last]
        return True

    def record(self, row: int) -> Record:
        return Record(self.ids[row], self.vectors[row].copy(), self.metadata[row], self.texts[row])

    def selected(self, filter: Filter | None) -> np.ndarray:
        """The rows a filter keeps, as a boolean mask."""
        if filter is None:
            return np.ones(self.size, dtype=bool)
        return np.fromiter((matches(filter, m) for m in self.metadata), dtype=bool, count=self.size)

    def scores(self, query: Vector) -> np.ndarray:
        live = self.vectors[: self.size]
        distance = self.collection.distance
        scores: np.ndarray
        if distance is Distance.DOT:
            scores = live @ query
        elif distance is Distance.COSINE:
            scores = (live @ query) / (self.norms[: self.size] * np.linalg.norm(query))
        else:
            scores = -np.linalg.norm(live - query, axis=1)
        return scores

    def search(self, query: Vector, top_k: int, filter: Filter | None, min_score: float | None,
               include_vectors: bool, include_metadata: bool) -> list[Match]:
        if self.size == 0:
            return []
        scores = self.scores(query).astype(np.float64)
        keep = self.selected(filter)
        if min_score is not None:
            keep &= scores >= min_score
        rows = np.flatnonzero(keep)
        if len(rows) > top_k:
            # Every row scoring at least the k-th best, so ties at the edge are settled by id below.
            kth = np.partition(scores[rows], len(rows) - top_k)[len(rows) - top_k]
            rows = rows[scores[rows] >= kth]
        best = sorted(rows.tolist(), key=lambda r: (-scores[r], self.ids[r]))[:top_k]
        return [
            Match(self.ids[r], float(scores[r]),
                  self.vectors[r].copy() if include_vectors else None,
                  self.metadata[r] if include_metadata else None,
                  self.texts[r] if include_metadata else None)
            for r in best
        ]


class MemoryBackend:
    def __init__(self) -> None:
        self._stores: dict[str, _Store] = {}

    def _store(self, name: str) -> _Store:
        store = self._stores.get(name)
        if store is None:
            raise NotFound("collection", name)
        return store

    async def create_collection(self, collection: Collection) -> Collection:
        checks.check_collection(collection)
        if collection.name in self._stores:
            raise AlreadyExists("collection", collection.name)
        stored = Collection(collection.name, collection.dimensions, collection.distance,
                            collection.embedding_provider, collection.embedding_model, time.time())
        self._stores[collection.name] = _Store(stored)
        return stored

    async def get_collection(self, name: str) -> Collection:
        return self._store(name).collection

    async def list_collections(self, page_size: int, page_token: str) -> tuple[list[Collection], str]:
        start = paging.decode_token(page_token)
        names = sorted(self._stores)
        page = [self._stores[name].collection for name in names[start : start + page_size]]
        more = start + page_size < len(names)
        return page, paging.encode_token(start + page_size) if more else ""

    async def delete_collection(self, name: str) -> None:
        self._store(name)
        del self._stores[name]

    async def upsert(self, name: str, records: list[Record]) -> int:
        store = self._store(name)
        checks.check_records(store.collection, records)
        async with store.lock:
            for record in records:
                store.put(record)
        return len(records)

    async def query(
        self, name: str, vector: Vector, top_k: int, filter: Filter | None = None,
        min_score: float | None = None, include_vectors: bool = False, include_metadata: bool = True,
    ) -> list[Match]:
        store = self._store(name)
        checks.check_vector(store.collection, vector, "vector")
        checks.check_top_k(top_k)
        args = (vector, top_k, filter, min_score, include_vectors, include_metadata)
        async with store.lock:
            if store.size * store.collection.dimensions > _THREAD_FLOATS:
                return await asyncio.to_thread(store.search, *args)
            return store.search(*args)

    async def get(self, name: str, ids: list[str]) -> list[Record]:
        store = self._store(name)
        return [store.record(store.rows[i]) for i in ids if i in store.rows]

    async def delete(self, name: str, ids: list[str] | None = None, filter: Filter | None = None) -> int:
        store = self._store(name)
        if (ids is None) == (filter is None):
            raise InvalidRequest([("ids", "give either ids or a filter")])
        async with store.lock:
            if filter is not None:
                ids = [store.ids[row] for row in np.flatnonzero(store.selected(filter))]
            return sum(store.remove(i) for i in ids or ())

    async def count(self, name: str, filter: Filter | None = None) -> int:
        store = self._store(name)
        return int(store.selected(filter).sum()) if filter is not None else store.size

    async def close(self) -> None:
        self._stores.clear()


class _NoOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")


@register("memory")
def _create(given: dict[str, Any], where: str) -> MemoryBackend:
    options(_NoOptions, given, where)
    return MemoryBackend()

"""One collection's in-process search state: a usearch HNSW graph over its vectors and
its records' metadata (for filters), both derived from the SQLite store and brought up
to date from it before use (`catch_up`), so several processes on one store agree.

Snapshots: `save` writes the graph to `<uid>-<seq>.usearch` (the sequence number it is
up to date with); `open` loads the newest one and replays what the store wrote since,
so a restart does not rebuild the graph from every vector. A missing or unreadable
snapshot only costs the rebuild.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
from usearch.index import Index

from .embedded_store import Store, StoredCollection
from .matching import matches
from .model import Distance, Filter

log = logging.getLogger("portico.vectors")

_METRICS = {Distance.COSINE: "cos", Distance.DOT: "ip", Distance.EUCLIDEAN: "l2sq"}
#: Graph degree and candidate-list sizes: recall@10 above 0.95 at 100k x 384 (bench/vectors.py).
CONNECTIVITY = 16
EXPANSION_ADD = 128
EXPANSION_SEARCH = 96


class CollectionIndex:
    def __init__(self, stored: StoredCollection, snapshots: Path) -> None:
        self.stored = stored
        self.snapshots = snapshots
        collection = stored.collection
        self.graph = Index(ndim=collection.dimensions, metric=_METRICS[collection.distance], dtype="f32",
                           connectivity=CONNECTIVITY, expansion_add=EXPANSION_ADD,
                           expansion_search=EXPANSION_SEARCH)
        self.metadata: dict[int, dict[str, Any]] = {}
        #: The store's sequence number this state reflects.
        self.seq = 0
        self.saved_seq = -1

    @classmethod
    def open(cls, store: Store, stored: StoredCollection, snapshots: Path) -> CollectionIndex:
        index = cls(stored, snapshots)
        snapshot = index._newest_snapshot()
        if snapshot is not None:
            path, seq = snapshot
            try:
                index.graph.load(str(path))
                index.seq = index.saved_seq = seq
                index.metadata = dict(store.metadata(stored.uid))
            except (OSError, RuntimeError, ValueError) as e:
                log.warning("vector index snapshot %s unreadable (%s); rebuilding from the store", path.name, e)
                index = cls(stored, snapshots)
        index.catch_up(store)
        return index

    def catch_up(self, store: Store) -> None:
        """Apply what the store wrote after `self.seq` (by this process or another)."""
        now = store.sequence()
        if now == self.seq:
            return
        uid = self.stored.uid
        gone = np.array(store.deleted_since(uid, self.seq), dtype=np.uint64)
        if len(gone) and len(self.graph):
            # A snapshot's graph can hold labels deleted since; the metadata is read fresh.
            self.graph.remove(gone[self.graph.contains(gone)])
        for label in gone.tolist():
            self.metadata.pop(label, None)
        labels: list[int] = []
        vectors: list[np.ndarray] = []
        for label, vector, metadata in store.changed_since(uid, self.seq):
            labels.append(label)
            vectors.append(vector)
            self.metadata[label] = metadata
        if labels:
            self.put(np.array(labels, dtype=np.uint64), np.stack(vectors))
        self.seq = now

    def put(self, labels: np.ndarray, vectors: np.ndarray) -> None:
        """Add vectors; a label already in the graph is replaced."""
        present = labels[self.graph.contains(labels)] if len(self.graph) else labels[:0]
        if len(present):
            self.graph.remove(present)
        self.graph.add(labels, vectors, threads=2)

    def forget(self, labels: list[int]) -> None:
        labels = [label for label in labels if label in self.metadata]
        if labels:
            self.graph.remove(np.array(labels, dtype=np.uint64))
            for label in labels:
                del self.metadata[label]

    def __len__(self) -> int:
        return len(self.metadata)

    def selected(self, filter: Filter) -> list[int]:
        return [label for label, metadata in self.metadata.items() if matches(filter, metadata)]

    def nearest(self, query: np.ndarray, count: int) -> np.ndarray:
        found = self.graph.search(query, count, threads=1)
        return np.asarray(found.keys, dtype=np.uint64)

    def vectors(self, labels: list[int]) -> np.ndarray:
        return np.asarray(self.graph.get(np.array(labels, dtype=np.uint64)), dtype=np.float32).reshape(
            len(labels), self.stored.collection.dimensions)

    # -- snapshots ----------------------------------------------------------------------

    def save(self) -> None:
        if self.saved_seq == self.seq:
            return
        self.snapshots.mkdir(parents=True, exist_ok=True)
        final = self.snapshots / f"{self.stored.uid}-{self.seq}.usearch"
        partial = final.with_suffix(f".{os.getpid()}.partial")
        self.graph.save(str(partial))
        os.replace(partial, final)
        self.saved_seq = self.seq
        for path, _ in self._snapshots():
            if path != final:
                with contextlib.suppress(OSError):
                    path.unlink()

    def _snapshots(self) -> list[tuple[Path, int]]:
        found = []
        for path in self.snapshots.glob(f"{self.stored.uid}-*.usearch"):
            with contextlib.suppress(ValueError):
                found.append((path, int(path.stem.split("-", 1)[1])))
        return sorted(found, key=lambda item: item[1])

    def _newest_snapshot(self) -> tuple[Path, int] | None:
        found = self._snapshots()
        return found[-1] if found else None


def remove_snapshots(snapshots: Path, uid: int) -> None:
    for path in snapshots.glob(f"{uid}-*.usearch"):
        with contextlib.suppress(OSError):
            path.unlink()

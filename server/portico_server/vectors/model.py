"""The vector store's domain: collections, records, matches, the filter tree, and the
interface every backend implements.

Backends (`memory`, the embedded default, Postgres) see only these types; the servicer
is the one place that maps them to and from protobuf.

Scores are higher-is-better on every backend, so one `min_score` and one sort order work
everywhere: the cosine similarity for COSINE, the dot product for DOT, and the negated
Euclidean distance for EUCLIDEAN.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Protocol, TypeAlias

import numpy as np
from numpy.typing import NDArray

Vector: TypeAlias = NDArray[np.float32]
#: A JSON scalar a filter compares with. bool is kept apart from numbers (True is not 1).
Scalar: TypeAlias = str | float | bool


class Distance(enum.Enum):
    COSINE = "cosine"
    DOT = "dot"
    EUCLIDEAN = "euclidean"


@dataclass(frozen=True)
class Collection:
    name: str
    dimensions: int
    distance: Distance
    #: The provider and model that embed text for this collection ("": routing decides).
    embedding_provider: str = ""
    embedding_model: str = ""
    #: Seconds since the epoch; the backend sets it when it stores the collection.
    create_time: float = 0.0


@dataclass
class Record:
    id: str
    #: float32, one dimension, of the collection's length.
    vector: Vector
    #: A JSON object.
    metadata: dict[str, Any]
    text: str | None = None


@dataclass
class Match:
    id: str
    score: float
    #: None unless asked for.
    vector: Vector | None
    #: None when metadata was omitted.
    metadata: dict[str, Any] | None
    text: str | None


# -- the filter tree ------------------------------------------------------------------
# Fields are metadata keys; a dotted path ("author.name") reaches into nested objects.
# A record lacking the field matches no Eq, In or Range on it (and so matches Not of one).


@dataclass(frozen=True)
class Eq:
    field: str
    value: Scalar


@dataclass(frozen=True)
class In:
    field: str
    values: tuple[Scalar, ...]


@dataclass(frozen=True)
class Range:
    field: str
    gt: float | None = None
    gte: float | None = None
    lt: float | None = None
    lte: float | None = None


@dataclass(frozen=True)
class And:
    clauses: tuple[Filter, ...]


@dataclass(frozen=True)
class Or:
    clauses: tuple[Filter, ...]


@dataclass(frozen=True)
class Not:
    clause: Filter


Filter: TypeAlias = Eq | In | Range | And | Or | Not


class VectorBackend(Protocol):
    """Where collections live. Every method is a coroutine and may be called
    concurrently. Failures are the gateway's errors: `errors.NotFound` for an unknown
    collection, `errors.AlreadyExists` for a taken name, `errors.InvalidRequest` naming the
    field (`records[2].vector`, `vector`) for input that does not fit the collection
    (`checks.py` has the shared checks)."""

    async def create_collection(self, collection: Collection) -> Collection:
        """Store a new collection; returns it with `create_time` set."""
        ...

    async def get_collection(self, name: str) -> Collection: ...

    async def list_collections(self, page_size: int, page_token: str) -> tuple[list[Collection], str]:
        """A page of collections by name, and the next page's token ("" after the last)."""
        ...

    async def delete_collection(self, name: str) -> None: ...

    async def upsert(self, name: str, records: list[Record]) -> int:
        """Insert or replace records by id; returns how many were written."""
        ...

    async def query(
        self,
        name: str,
        vector: Vector,
        top_k: int,
        filter: Filter | None = None,
        min_score: float | None = None,
        include_vectors: bool = False,
        include_metadata: bool = True,
    ) -> list[Match]:
        """The best `top_k` matches, best first (ties by id)."""
        ...

    async def get(self, name: str, ids: list[str]) -> list[Record]:
        """Records in the order of `ids`; ids not there are left out."""
        ...

    async def delete(self, name: str, ids: list[str] | None = None, filter: Filter | None = None) -> int:
        """Delete by ids or by filter; returns how many went."""
        ...

    async def count(self, name: str, filter: Filter | None = None) -> int: ...

    async def close(self) -> None: ...

"""Checks every backend makes the same way, so a caller gets the same INVALID_ARGUMENT,
naming the same field, whichever backend is configured."""

from __future__ import annotations

import re
from collections.abc import Sequence, Set

import numpy as np

from ..errors import InvalidRequest
from .model import Collection, Distance, Record, Vector

MAX_DIMENSIONS = 16_384
MAX_ID_CHARS = 512
MAX_TOP_K = 1_000
#: Lowercase, so that a name means the same collection to every backend (a Postgres
#: table, a directory on a case-insensitive file system).
_NAME = re.compile(r"[a-z][a-z0-9_-]{0,62}")


def check_collection(collection: Collection, field: str = "collection") -> None:
    problems: list[tuple[str, str]] = []
    if not _NAME.fullmatch(collection.name):
        problems.append((f"{field}.name", "must be 1 to 63 characters: lowercase letters, digits, '-' and '_', "
                                          "starting with a letter"))
    if not 1 <= collection.dimensions <= MAX_DIMENSIONS:
        problems.append((f"{field}.dimensions", f"must be from 1 to {MAX_DIMENSIONS}"))
    if problems:
        raise InvalidRequest(problems)


def check_name(name: str, field: str) -> None:
    """A collection name in a request (a wrong one can only be NOT_FOUND, but one that
    could never exist is a mistake worth naming)."""
    if not name:
        raise InvalidRequest([(field, "is required: the collection's name")])


def check_vector(collection: Collection, vector: Vector, field: str) -> None:
    if vector.ndim != 1 or vector.shape[0] != collection.dimensions:
        raise InvalidRequest([(field, f"has {vector.size} values; collection {collection.name!r} "
                                      f"has {collection.dimensions} dimensions")])
    if not np.isfinite(vector).all():
        raise InvalidRequest([(field, "holds a value that is not a finite number")])
    if collection.distance is Distance.COSINE and not vector.any():
        raise InvalidRequest([(field, "is all zeros, which has no direction for cosine similarity")])


def check_records(
    collection: Collection, records: Sequence[Record], field: str = "records", pending: Set[int] = frozenset()
) -> None:
    """Ids present, short enough and not repeated in one request (which of two would win
    is not something to leave to a backend); vectors of the collection's shape, except at
    the positions in `pending` (texts not embedded yet)."""
    seen: dict[str, int] = {}
    for i, record in enumerate(records):
        if not record.id:
            raise InvalidRequest([(f"{field}[{i}].id", "is required")])
        if len(record.id) > MAX_ID_CHARS:
            raise InvalidRequest([(f"{field}[{i}].id", f"is longer than {MAX_ID_CHARS} characters")])
        if record.id in seen:
            raise InvalidRequest([(f"{field}[{i}].id", f"repeats {field}[{seen[record.id]}].id {record.id!r}")])
        seen[record.id] = i
        if i not in pending:
            check_vector(collection, record.vector, f"{field}[{i}].vector")


def check_top_k(top_k: int, field: str = "top_k") -> None:
    if not 1 <= top_k <= MAX_TOP_K:
        raise InvalidRequest([(field, f"must be from 1 to {MAX_TOP_K}")])

"""VectorService messages to and from the domain of `model.py`: the one place that knows
both. Input mistakes are INVALID_ARGUMENT naming the field."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from google.protobuf.timestamp_pb2 import Timestamp
from portico.v1 import vector_service_pb2 as vpb

from .. import bounded_json
from ..errors import InvalidRequest
from . import checks, filters
from .model import Collection, Distance, Filter, Match, Record, Vector

_DISTANCE_IN = {vpb.DISTANCE_COSINE: Distance.COSINE, vpb.DISTANCE_DOT: Distance.DOT,
                vpb.DISTANCE_EUCLIDEAN: Distance.EUCLIDEAN}
_DISTANCE_OUT = {v: k for k, v in _DISTANCE_IN.items()}
DEFAULT_TOP_K = 10


def collection_in(message: vpb.Collection, field: str = "collection") -> Collection:
    distance = _DISTANCE_IN.get(message.distance)
    if distance is None:
        raise InvalidRequest([(f"{field}.distance",
                               "is required: DISTANCE_COSINE, DISTANCE_DOT or DISTANCE_EUCLIDEAN")])
    collection = Collection(message.name, message.dimensions, distance,
                            message.embedding_provider, message.embedding_model)
    checks.check_collection(collection, field)
    return collection


def collection_out(collection: Collection) -> vpb.Collection:
    created = Timestamp()
    created.FromNanoseconds(int(collection.create_time * 1e9))
    return vpb.Collection(name=collection.name, dimensions=collection.dimensions,
                          distance=_DISTANCE_OUT[collection.distance],
                          embedding_provider=collection.embedding_provider,
                          embedding_model=collection.embedding_model, create_time=created)


def vector_in(values: Any) -> Vector:
    """A `repeated float` as float32, copied once from protobuf's container."""
    return np.array(values, dtype=np.float32)


def metadata_in(text: str, field: str) -> dict[str, Any]:
    if not text:
        return {}
    try:
        bounded_json.check_depth(text)
        value = json.loads(text, parse_constant=_no_constant)
    except bounded_json.JsonTooDeep as exc:
        raise InvalidRequest([(field, f"is JSON that {exc}")]) from None
    except ValueError as exc:
        raise InvalidRequest([(field, f"is not JSON: {exc}")]) from None
    if not isinstance(value, dict):
        raise InvalidRequest([(field, "must be a JSON object, such as {\"lang\": \"en\"}")])
    return value


def _no_constant(name: str) -> Any:
    # NaN and Infinity are not JSON; a store such as Postgres jsonb refuses them.
    raise ValueError(f"{name} is not a JSON value")


def metadata_out(metadata: dict[str, Any] | None) -> str:
    if metadata is None:
        return ""
    return json.dumps(metadata, ensure_ascii=False, separators=(",", ":"))


def records_in(messages: Any, field: str = "records") -> tuple[list[Record], list[int]]:
    """The records of an upsert, and the positions of those whose vector must be embedded
    from their text (their `vector` is empty until then)."""
    records: list[Record] = []
    to_embed: list[int] = []
    for i, message in enumerate(messages):
        text = message.text if message.HasField("text") else None
        if not message.vector:
            if not text:
                raise InvalidRequest([(f"{field}[{i}].vector", "give a vector, or a text to embed")])
            to_embed.append(i)
        records.append(Record(message.id, vector_in(message.vector),
                              metadata_in(message.metadata_json, f"{field}[{i}].metadata_json"), text))
    return records, to_embed


def record_out(record: Record) -> vpb.Record:
    return vpb.Record(id=record.id, vector=record.vector.tolist(), metadata_json=metadata_out(record.metadata),
                      text=record.text)


def match_out(match: Match) -> vpb.Match:
    return vpb.Match(id=match.id, score=match.score,
                     vector=match.vector.tolist() if match.vector is not None else (),
                     metadata_json=metadata_out(match.metadata), text=match.text)


def filter_in(message: Any, present: bool, field: str = "filter") -> Filter | None:
    return filters.parse(message, field) if present else None


def top_k(requested: int) -> int:
    if requested == 0:
        return DEFAULT_TOP_K
    checks.check_top_k(requested)
    return requested

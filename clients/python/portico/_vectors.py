"""`client.vectors`: the VectorService with typed records, blocking and asyncio."""

from __future__ import annotations

import datetime
import json
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias, Unpack

from ._request import CallOptions, check_options
from .filters import FilterLike, to_filter
from .v1 import vector_service_pb2 as vpb
from .v1 import vector_service_pb2_grpc

DistanceName: TypeAlias = Literal["cosine", "dot", "euclidean"]
_DISTANCES: dict[str, int] = {"cosine": vpb.DISTANCE_COSINE, "dot": vpb.DISTANCE_DOT,
                              "euclidean": vpb.DISTANCE_EUCLIDEAN}
_DISTANCE_NAMES = {v: k for k, v in _DISTANCES.items()}


@dataclass(frozen=True)
class VectorCollection:
    name: str
    dimensions: int
    #: "cosine", "dot" or "euclidean".
    distance: str
    embedding_provider: str
    embedding_model: str
    create_time: datetime.datetime

    @classmethod
    def from_message(cls, message: vpb.Collection) -> VectorCollection:
        return cls(message.name, message.dimensions, _DISTANCE_NAMES.get(message.distance, "unspecified"),
                   message.embedding_provider, message.embedding_model,
                   message.create_time.ToDatetime(tzinfo=datetime.UTC))


@dataclass
class VectorRecord:
    """A record to upsert, or one read back. Give `vector`, or `text` for the gateway to
    embed with the collection's model (a text given with a vector is only stored)."""

    id: str
    vector: Sequence[float] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    text: str | None = None

    def to_message(self) -> vpb.Record:
        return vpb.Record(id=self.id, vector=list(self.vector or ()), text=self.text,
                          metadata_json=json.dumps(self.metadata, ensure_ascii=False) if self.metadata else "")

    @classmethod
    def from_message(cls, message: vpb.Record) -> VectorRecord:
        return cls(message.id, list(message.vector), _metadata(message.metadata_json),
                   message.text if message.HasField("text") else None)


@dataclass(frozen=True)
class VectorMatch:
    id: str
    #: Higher is more similar: cosine similarity, dot product, or the negated distance.
    score: float
    #: Empty unless `include_vectors=True`.
    vector: list[float]
    #: None when `include_metadata=False`.
    metadata: dict[str, Any] | None
    text: str | None

    @classmethod
    def from_message(cls, message: vpb.Match, with_metadata: bool) -> VectorMatch:
        return cls(message.id, message.score, list(message.vector),
                   _metadata(message.metadata_json) if with_metadata else None,
                   message.text if message.HasField("text") else None)


@dataclass(frozen=True)
class UpsertResult:
    upserted: int
    #: Of those, records the gateway embedded from their text.
    embedded: int


RecordLike: TypeAlias = VectorRecord | Mapping[str, Any]


def _metadata(text: str) -> dict[str, Any]:
    return json.loads(text) if text else {}


def _record(record: RecordLike) -> vpb.Record:
    if isinstance(record, VectorRecord):
        return record.to_message()
    return VectorRecord(**record).to_message()


def _create_request(name: str, dimensions: int, distance: DistanceName, embedding_provider: str,
                    embedding_model: str) -> vpb.CreateCollectionRequest:
    if distance not in _DISTANCES:
        raise ValueError(f"distance must be one of {', '.join(_DISTANCES)}, not {distance!r}")
    return vpb.CreateCollectionRequest(collection=vpb.Collection(
        name=name, dimensions=dimensions, distance=_DISTANCES[distance],  # type: ignore[arg-type]
        embedding_provider=embedding_provider, embedding_model=embedding_model))


def _query_request(collection: str, vector: Sequence[float] | None, text: str | None, top_k: int,
                   filter: FilterLike | None, min_score: float | None, include_vectors: bool,
                   include_metadata: bool) -> vpb.QueryRequest:
    if (vector is None) == (text is None):
        raise TypeError("query() takes a vector or text=..., exactly one")
    request = vpb.QueryRequest(collection=collection, vector=list(vector or ()), text=text or "", top_k=top_k,
                               include_vectors=include_vectors, include_metadata=include_metadata)
    if filter is not None:
        request.filter.CopyFrom(to_filter(filter))
    if min_score is not None:
        request.min_score = min_score
    return request


def _delete_request(collection: str, ids: Iterable[str] | None, filter: FilterLike | None) -> vpb.DeleteRequest:
    if (ids is None) == (filter is None):
        raise TypeError("delete() takes ids or filter=..., exactly one")
    request = vpb.DeleteRequest(collection=collection, ids=list(ids or ()))
    if filter is not None:
        request.filter.CopyFrom(to_filter(filter))
    return request


def _count_request(collection: str, filter: FilterLike | None) -> vpb.CountRequest:
    request = vpb.CountRequest(collection=collection)
    if filter is not None:
        request.filter.CopyFrom(to_filter(filter))
    return request


#: `Client._call` / `AsyncClient._call`: (stub method, request, options) -> response.
Call: TypeAlias = Callable[[Any, Any, CallOptions], Any]
AsyncCall: TypeAlias = Callable[[Any, Any, CallOptions], Awaitable[Any]]


class Vectors:
    """VectorService through `Client.vectors`; every method takes `timeout` and `metadata`."""

    def __init__(self, channel: Any, call: Call) -> None:
        #: The generated stub, for anything the helpers below do not cover.
        self.stub = vector_service_pb2_grpc.VectorServiceStub(channel)
        self._call = call

    def create_collection(self, name: str, dimensions: int, distance: DistanceName = "cosine", *,
                          embedding_provider: str = "", embedding_model: str = "",
                          **options: Unpack[CallOptions]) -> VectorCollection:
        """A new collection; `embedding_provider`/`embedding_model` embed its texts."""
        check_options(options, CallOptions, "create_collection")
        request = _create_request(name, dimensions, distance, embedding_provider, embedding_model)
        return VectorCollection.from_message(self._call(self.stub.CreateCollection, request, options))

    def get_collection(self, name: str, **options: Unpack[CallOptions]) -> VectorCollection:
        check_options(options, CallOptions, "get_collection")
        request = vpb.GetCollectionRequest(name=name)
        return VectorCollection.from_message(self._call(self.stub.GetCollection, request, options))

    def list_collections(self, **options: Unpack[CallOptions]) -> list[VectorCollection]:
        """Every collection, by name (all pages)."""
        check_options(options, CallOptions, "list_collections")
        found: list[VectorCollection] = []
        token = ""
        while True:
            page = self._call(self.stub.ListCollections, vpb.ListCollectionsRequest(page_token=token), options)
            found += [VectorCollection.from_message(c) for c in page.collections]
            token = page.next_page_token
            if not token:
                return found

    def delete_collection(self, name: str, **options: Unpack[CallOptions]) -> None:
        check_options(options, CallOptions, "delete_collection")
        self._call(self.stub.DeleteCollection, vpb.DeleteCollectionRequest(name=name), options)

    def upsert(self, collection: str, records: Iterable[RecordLike], **options: Unpack[CallOptions]) -> UpsertResult:
        """Insert or replace records by id (dicts with the fields of `VectorRecord` do too)."""
        check_options(options, CallOptions, "upsert")
        request = vpb.UpsertRequest(collection=collection, records=[_record(r) for r in records])
        answer = self._call(self.stub.Upsert, request, options)
        return UpsertResult(answer.upserted_count, answer.embedded_count)

    def query(self, collection: str, vector: Sequence[float] | None = None, *, text: str | None = None,
              top_k: int = 10, filter: FilterLike | None = None, min_score: float | None = None,
              include_vectors: bool = False, include_metadata: bool = True,
              **options: Unpack[CallOptions]) -> list[VectorMatch]:
        """The `top_k` records most similar to `vector` (or to `text`, embedded), best first."""
        check_options(options, CallOptions, "query")
        request = _query_request(collection, vector, text, top_k, filter, min_score, include_vectors,
                                 include_metadata)
        answer = self._call(self.stub.Query, request, options)
        return [VectorMatch.from_message(m, include_metadata) for m in answer.matches]

    def get(self, collection: str, ids: Iterable[str], **options: Unpack[CallOptions]) -> list[VectorRecord]:
        """The records with these ids, in their order; ids not there are left out."""
        check_options(options, CallOptions, "get")
        answer = self._call(self.stub.Get, vpb.GetRequest(collection=collection, ids=list(ids)), options)
        return [VectorRecord.from_message(r) for r in answer.records]

    def delete(self, collection: str, ids: Iterable[str] | None = None, *, filter: FilterLike | None = None,
               **options: Unpack[CallOptions]) -> int:
        """Delete by ids or by filter; returns how many records went."""
        check_options(options, CallOptions, "delete")
        answer = self._call(self.stub.Delete, _delete_request(collection, ids, filter), options)
        return int(answer.deleted_count)

    def count(self, collection: str, filter: FilterLike | None = None, **options: Unpack[CallOptions]) -> int:
        check_options(options, CallOptions, "count")
        return int(self._call(self.stub.Count, _count_request(collection, filter), options).count)


class AsyncVectors:
    """VectorService through `AsyncClient.vectors`: `Vectors` with coroutines."""

    def __init__(self, channel: Any, call: AsyncCall) -> None:
        #: The generated stub, for anything the helpers below do not cover.
        self.stub = vector_service_pb2_grpc.VectorServiceStub(channel)
        self._call = call

    async def create_collection(self, name: str, dimensions: int, distance: DistanceName = "cosine", *,
                                embedding_provider: str = "", embedding_model: str = "",
                                **options: Unpack[CallOptions]) -> VectorCollection:
        check_options(options, CallOptions, "create_collection")
        request = _create_request(name, dimensions, distance, embedding_provider, embedding_model)
        return VectorCollection.from_message(await self._call(self.stub.CreateCollection, request, options))

    async def get_collection(self, name: str, **options: Unpack[CallOptions]) -> VectorCollection:
        check_options(options, CallOptions, "get_collection")
        request = vpb.GetCollectionRequest(name=name)
        return VectorCollection.from_message(await self._call(self.stub.GetCollection, request, options))

    async def list_collections(self, **options: Unpack[CallOptions]) -> list[VectorCollection]:
        check_options(options, CallOptions, "list_collections")
        found: list[VectorCollection] = []
        token = ""
        while True:
            page = await self._call(self.stub.ListCollections, vpb.ListCollectionsRequest(page_token=token), options)
            found += [VectorCollection.from_message(c) for c in page.collections]
            token = page.next_page_token
            if not token:
                return found

    async def delete_collection(self, name: str, **options: Unpack[CallOptions]) -> None:
        check_options(options, CallOptions, "delete_collection")
        await self._call(self.stub.DeleteCollection, vpb.DeleteCollectionRequest(name=name), options)

    async def upsert(self, collection: str, records: Iterable[RecordLike],
                     **options: Unpack[CallOptions]) -> UpsertResult:
        check_options(options, CallOptions, "upsert")
        request = vpb.UpsertRequest(collection=collection, records=[_record(r) for r in records])
        answer = await self._call(self.stub.Upsert, request, options)
        return UpsertResult(answer.upserted_count, answer.embedded_count)

    async def query(self, collection: str, vector: Sequence[float] | None = None, *, text: str | None = None,
                    top_k: int = 10, filter: FilterLike | None = None, min_score: float | None = None,
                    include_vectors: bool = False, include_metadata: bool = True,
                    **options: Unpack[CallOptions]) -> list[VectorMatch]:
        check_options(options, CallOptions, "query")
        request = _query_request(collection, vector, text, top_k, filter, min_score, include_vectors,
                                 include_metadata)
        answer = await self._call(self.stub.Query, request, options)
        return [VectorMatch.from_message(m, include_metadata) for m in answer.matches]

    async def get(self, collection: str, ids: Iterable[str], **options: Unpack[CallOptions]) -> list[VectorRecord]:
        check_options(options, CallOptions, "get")
        answer = await self._call(self.stub.Get, vpb.GetRequest(collection=collection, ids=list(ids)), options)
        return [VectorRecord.from_message(r) for r in answer.records]

    async def delete(self, collection: str, ids: Iterable[str] | None = None, *, filter: FilterLike | None = None,
                     **options: Unpack[CallOptions]) -> int:
        check_options(options, CallOptions, "delete")
        answer = await self._call(self.stub.Delete, _delete_request(collection, ids, filter), options)
        return int(answer.deleted_count)

    async def count(self, collection: str, filter: FilterLike | None = None,
                    **options: Unpack[CallOptions]) -> int:
        check_options(options, CallOptions, "count")
        return int((await self._call(self.stub.Count, _count_request(collection, filter), options)).count)

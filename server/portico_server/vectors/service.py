"""The VectorService servicer: converts (convert.py), embeds texts through the gateway's
Embed path (embedding.py), calls the backend, converts back.

Calls are admitted like LLMService's (shutdown, load shedding; the auth interceptor
already wants a caller key when keys are configured) and fail through the same error
table. A call that embeds text carries the attempt trace of its Embed calls.
"""

from __future__ import annotations

from typing import Any

from portico.v1 import vector_service_pb2 as vpb
from portico.v1 import vector_service_pb2_grpc

from .. import convert as llm_convert
from .. import paging
from ..call import CallContext
from ..errors import InvalidRequest
from ..resilience.trace import Trace
from ..servicer import Context, LLMServicer, unary
from . import checks
from . import convert as vconvert
from .embedding import TextEmbedder
from .model import Collection, VectorBackend

SERVICE_NAME = "portico.v1.VectorService"


class VectorServicer(vector_service_pb2_grpc.VectorServiceServicer):
    def __init__(self, backend: VectorBackend, llm: LLMServicer, embed_batch: int) -> None:
        self.backend = backend
        self.llm = llm
        self.embedder = TextEmbedder(llm, embed_batch)

    def _call(self, request: Any, context: Context, request_id: str) -> CallContext:
        caller = self.llm.admit(request, context)
        return llm_convert.call_context(None, context.time_remaining(), request_id, caller)

    @unary
    async def CreateCollection(
        self, request: vpb.CreateCollectionRequest, context: Context, request_id: str, trace: Trace
    ) -> vpb.Collection:
        self._call(request, context, request_id)
        if not request.HasField("collection"):
            raise InvalidRequest([("collection", "is required")])
        collection = vconvert.collection_in(request.collection)
        return vconvert.collection_out(await self.backend.create_collection(collection))

    @unary
    async def GetCollection(
        self, request: vpb.GetCollectionRequest, context: Context, request_id: str, trace: Trace
    ) -> vpb.Collection:
        self._call(request, context, request_id)
        checks.check_name(request.name, "name")
        return vconvert.collection_out(await self.backend.get_collection(request.name))

    @unary
    async def ListCollections(
        self, request: vpb.ListCollectionsRequest, context: Context, request_id: str, trace: Trace
    ) -> vpb.ListCollectionsResponse:
        self._call(request, context, request_id)
        size = paging.page_size(request.page_size)
        page, token = await self.backend.list_collections(size, request.page_token)
        return vpb.ListCollectionsResponse(collections=[vconvert.collection_out(c) for c in page],
                                           next_page_token=token)

    @unary
    async def DeleteCollection(
        self, request: vpb.DeleteCollectionRequest, context: Context, request_id: str, trace: Trace
    ) -> vpb.DeleteCollectionResponse:
        self._call(request, context, request_id)
        checks.check_name(request.name, "name")
        await self.backend.delete_collection(request.name)
        return vpb.DeleteCollectionResponse()

    @unary
    async def Upsert(
        self, request: vpb.UpsertRequest, context: Context, request_id: str, trace: Trace
    ) -> vpb.UpsertResponse:
        call = self._call(request, context, request_id)
        collection = await self._collection(request.collection)
        if not request.records:
            raise InvalidRequest([("records", "at least one record is required")])
        records, pending = vconvert.records_in(request.records)
        # Everything that can be checked is, before any embedding is paid for.
        checks.check_records(collection, records, pending=frozenset(pending))
        if pending:
            trace.active = True
            texts = [records[i].text or "" for i in pending]
            vectors = await self.embedder.embed(collection, texts, [f"records[{i}].text" for i in pending], call, trace)
            for i, vector in zip(pending, vectors, strict=True):
                records[i].vector = vector
        written = await self.backend.upsert(collection.name, records)
        return vpb.UpsertResponse(upserted_count=written, embedded_count=len(pending))

    @unary
    async def Query(
        self, request: vpb.QueryRequest, context: Context, request_id: str, trace: Trace
    ) -> vpb.QueryResponse:
        call = self._call(request, context, request_id)
        collection = await self._collection(request.collection)
        top_k = vconvert.top_k(request.top_k)
        where = vconvert.filter_in(request.filter, request.HasField("filter"))
        if request.vector and request.text:
            raise InvalidRequest([("text", "give either a vector or a text, not both")])
        if request.vector:
            vector = vconvert.vector_in(request.vector)
        elif request.text:
            trace.active = True
            (vector,) = await self.embedder.embed(collection, [request.text], ["text"], call, trace)
        else:
            raise InvalidRequest([("vector", "give a vector, or a text to embed")])
        matches = await self.backend.query(
            collection.name, vector, top_k, where,
            request.min_score if request.HasField("min_score") else None,
            request.include_vectors,
            request.include_metadata if request.HasField("include_metadata") else True,
        )
        return vpb.QueryResponse(matches=[vconvert.match_out(m) for m in matches])

    @unary
    async def Get(self, request: vpb.GetRequest, context: Context, request_id: str, trace: Trace) -> vpb.GetResponse:
        self._call(request, context, request_id)
        checks.check_name(request.collection, "collection")
        if not request.ids:
            raise InvalidRequest([("ids", "at least one id is required")])
        records = await self.backend.get(request.collection, list(request.ids))
        return vpb.GetResponse(records=[vconvert.record_out(r) for r in records])

    @unary
    async def Delete(
        self, request: vpb.DeleteRequest, context: Context, request_id: str, trace: Trace
    ) -> vpb.DeleteResponse:
        self._call(request, context, request_id)
        checks.check_name(request.collection, "collection")
        has_filter = request.HasField("filter")
        if bool(request.ids) == has_filter:
            raise InvalidRequest([("ids", "give either ids or a filter (exactly one)")])
        if has_filter:
            deleted = await self.backend.delete(request.collection, filter=vconvert.filter_in(request.filter, True))
        else:
            deleted = await self.backend.delete(request.collection, ids=list(request.ids))
        return vpb.DeleteResponse(deleted_count=deleted)

    @unary
    async def Count(
        self, request: vpb.CountRequest, context: Context, request_id: str, trace: Trace
    ) -> vpb.CountResponse:
        self._call(request, context, request_id)
        checks.check_name(request.collection, "collection")
        where = vconvert.filter_in(request.filter, request.HasField("filter"))
        return vpb.CountResponse(count=await self.backend.count(request.collection, where))

    async def _collection(self, name: str) -> Collection:
        checks.check_name(name, "collection")
        return await self.backend.get_collection(name)

"""VectorService over real gRPC: a gateway on a loopback port, the memory backend, text
embedded by the `fake` provider or by an OpenAI-compatible upstream on loopback."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from harness import RunningGateway, rpc_details, running_gateway
from portico.v1 import vector_service_pb2 as vpb
from portico.v1 import vector_service_pb2_grpc
from portico_server.providers.fake import hash_embedding
from upstream import Reply, Upstream

FAKE = {"name": "fake", "kind": "fake", "models": ["fake-chat"], "embedding_model": "fake-embed"}
DOCS = vpb.Collection(name="docs", dimensions=3, distance=vpb.DISTANCE_COSINE)
NOTES = vpb.Collection(name="notes", dimensions=16, distance=vpb.DISTANCE_COSINE, embedding_provider="fake")


@pytest.fixture
async def gw() -> AsyncIterator[RunningGateway]:
    async with running_gateway({"providers": [FAKE]}) as gw:
        yield gw


def stub(gw: RunningGateway) -> vector_service_pb2_grpc.VectorServiceStub:
    return vector_service_pb2_grpc.VectorServiceStub(gw.channel)


async def refused(call: Any) -> tuple[grpc.StatusCode, dict[str, Any]]:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value.code(), rpc_details(caught.value)


def record(id: str, vector: list[float] | None = None, **metadata: Any) -> vpb.Record:
    return vpb.Record(id=id, vector=vector or [], metadata_json=json.dumps(metadata))


async def test_collection_lifecycle_and_its_errors(gw: RunningGateway) -> None:
    vs = stub(gw)
    created = await vs.CreateCollection(vpb.CreateCollectionRequest(collection=DOCS))
    assert created.name == "docs" and created.dimensions == 3 and created.create_time.seconds > 0
    code, details = await refused(vs.CreateCollection(vpb.CreateCollectionRequest(collection=DOCS)))
    assert code == grpc.StatusCode.ALREADY_EXISTS
    assert details["reason"] == "ERROR_REASON_ALREADY_EXISTS"
    assert details["metadata"]["name"] == "docs"
    await vs.CreateCollection(vpb.CreateCollectionRequest(collection=NOTES))
    first = await vs.ListCollections(vpb.ListCollectionsRequest(page_size=1))
    second = await vs.ListCollections(vpb.ListCollectionsRequest(page_size=1, page_token=first.next_page_token))
    assert [c.name for c in (*first.collections, *second.collections)] == ["docs", "notes"]
    assert second.next_page_token == ""
    await vs.DeleteCollection(vpb.DeleteCollectionRequest(name="docs"))
    code, details = await refused(vs.GetCollection(vpb.GetCollectionRequest(name="docs")))
    assert code == grpc.StatusCode.NOT_FOUND and details["reason"] == "ERROR_REASON_NOT_FOUND"
    code, _ = await refused(vs.Query(vpb.QueryRequest(collection="docs", vector=[1, 0, 0])))
    assert code == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize(("collection", "field"), [
    (vpb.Collection(name="Docs", dimensions=3, distance=vpb.DISTANCE_DOT), "collection.name"),
    (vpb.Collection(name="docs", dimensions=0, distance=vpb.DISTANCE_DOT), "collection.dimensions"),
    (vpb.Collection(name="docs", dimensions=3), "collection.distance"),
])
async def test_an_invalid_collection_names_its_field(gw: RunningGateway, collection: vpb.Collection,
                                                     field: str) -> None:
    code, details = await refused(stub(gw).CreateCollection(vpb.CreateCollectionRequest(collection=collection)))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert details["violations"][0][0] == field


async def test_upsert_query_get_count_delete_by_vector(gw: RunningGateway) -> None:
    vs = stub(gw)
    await vs.CreateCollection(vpb.CreateCollectionRequest(collection=DOCS))
    written = await vs.Upsert(vpb.UpsertRequest(collection="docs", records=[
        record("a", [1, 0, 0], lang="en", year=2020), record("b", [0.9, 0.1, 0], lang="de", year=2021),
        record("c", [0, 1, 0], lang="en", year=2022),
    ]))
    assert (written.upserted_count, written.embedded_count) == (3, 0)
    answer = await vs.Query(vpb.QueryRequest(collection="docs", vector=[1, 0, 0], top_k=2))
    assert [m.id for m in answer.matches] == ["a", "b"]
    assert answer.matches[0].score == pytest.approx(1.0, abs=1e-6)
    assert json.loads(answer.matches[0].metadata_json) == {"lang": "en", "year": 2020}
    assert list(answer.matches[0].vector) == []  # vectors only when asked for
    english = vpb.Filter(equals=vpb.FieldEquals(field="lang", value=vpb.FilterValue(string_value="en")))
    recent = vpb.Filter(range=vpb.FieldRange(field="year", gte=2021))
    both = vpb.Filter(all=vpb.FilterList(filters=[english, recent]))
    answer = await vs.Query(vpb.QueryRequest(collection="docs", vector=[1, 0, 0], filter=both, include_vectors=True,
                                             include_metadata=False))
    assert [(m.id, list(m.vector), m.metadata_json) for m in answer.matches] == [("c", [0, 1, 0], "")]
    answer = await vs.Query(vpb.QueryRequest(collection="docs", vector=[1, 0, 0], min_score=0.5))
    assert [m.id for m in answer.matches] == ["a", "b"]
    assert (await vs.Count(vpb.CountRequest(collection="docs", filter=english))).count == 2
    got = await vs.Get(vpb.GetRequest(collection="docs", ids=["c", "zz", "a"]))
    assert [(r.id, list(r.vector)) for r in got.records] == [("c", [0, 1, 0]), ("a", [1, 0, 0])]
    assert (await vs.Delete(vpb.DeleteRequest(collection="docs", filter=english))).deleted_count == 2
    assert (await vs.Delete(vpb.DeleteRequest(collection="docs", ids=["b", "zz"]))).deleted_count == 1
    assert (await vs.Count(vpb.CountRequest(collection="docs"))).count == 0


async def test_wrong_dimension_is_invalid_argument_naming_the_record(gw: RunningGateway) -> None:
    vs = stub(gw)
    await vs.CreateCollection(vpb.CreateCollectionRequest(collection=DOCS))
    code, details = await refused(vs.Upsert(vpb.UpsertRequest(collection="docs", records=[
        record("a", [1, 0, 0]), record("b", [1, 0])])))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert details["reason"] == "ERROR_REASON_INVALID_REQUEST"
    assert details["violations"][0][0] == "records[1].vector"
    assert "3 dimensions" in details["violations"][0][1]
    code, details = await refused(vs.Query(vpb.QueryRequest(collection="docs", vector=[1, 0, 0, 0])))
    assert (code, details["violations"][0][0]) == (grpc.StatusCode.INVALID_ARGUMENT, "vector")
    assert (await vs.Count(vpb.CountRequest(collection="docs"))).count == 0


@pytest.mark.parametrize(("request_", "field"), [
    (vpb.QueryRequest(collection="docs", vector=[1, 0, 0], filter=vpb.Filter(
        any=vpb.FilterList(filters=[vpb.Filter(), vpb.Filter(range=vpb.FieldRange(field="year"))]))),
     "filter.any.filters[0]"),
    (vpb.QueryRequest(collection="docs", vector=[1, 0, 0], filter=vpb.Filter(
        negate=vpb.Filter(range=vpb.FieldRange(field="year")))), "filter.negate.range"),
    (vpb.QueryRequest(collection="docs", vector=[1, 0, 0], filter=vpb.Filter(
        **{"in": vpb.FieldIn(field="lang", values=[vpb.FilterValue(string_value="en"), vpb.FilterValue()])})),
     "filter.in.values[1]"),
    (vpb.QueryRequest(collection="docs", vector=[1, 0, 0], filter=vpb.Filter(
        equals=vpb.FieldEquals(field="a..b", value=vpb.FilterValue(bool_value=True)))), "filter.equals.field"),
    (vpb.QueryRequest(collection="docs", vector=[1, 0, 0], top_k=5000), "top_k"),
    (vpb.QueryRequest(collection="docs"), "vector"),
    (vpb.QueryRequest(collection="docs", vector=[1, 0, 0], text="both"), "text"),
    (vpb.QueryRequest(collection="docs", vector=[0, 0, 0]), "vector"),
])
async def test_invalid_queries_name_the_field(gw: RunningGateway, request_: vpb.QueryRequest, field: str) -> None:
    await stub(gw).CreateCollection(vpb.CreateCollectionRequest(collection=DOCS))
    code, details = await refused(stub(gw).Query(request_))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert details["violations"][0][0] == field


@pytest.mark.parametrize(("metadata_json", "problem"), [
    ("[1, 2]", "JSON object"), ("{not json", "not JSON"), ('{"x": NaN}', "not JSON"),
    ("[" * 100 + "]" * 100, "nests"),
])
async def test_metadata_must_be_a_json_object(gw: RunningGateway, metadata_json: str, problem: str) -> None:
    await stub(gw).CreateCollection(vpb.CreateCollectionRequest(collection=DOCS))
    code, details = await refused(stub(gw).Upsert(vpb.UpsertRequest(collection="docs", records=[
        vpb.Record(id="a", vector=[1, 0, 0]), vpb.Record(id="b", vector=[0, 1, 0], metadata_json=metadata_json)])))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert details["violations"][0][0] == "records[1].metadata_json"
    assert problem in details["violations"][0][1]


async def test_text_is_embedded_by_the_collections_provider_end_to_end(gw: RunningGateway) -> None:
    vs = stub(gw)
    await vs.CreateCollection(vpb.CreateCollectionRequest(collection=NOTES))
    texts = {"cat": "the cat sat on the mat", "dog": "a dog barked twice", "sea": "waves on a grey sea"}
    call = vs.Upsert(vpb.UpsertRequest(collection="notes", records=[
        vpb.Record(id=key, text=text, metadata_json='{"kind": "note"}') for key, text in texts.items()]))
    written = await call
    assert (written.upserted_count, written.embedded_count) == (3, 3)
    attempts = json.loads(dict(await call.trailing_metadata())["portico-attempts"])
    assert attempts[0]["provider"] == "fake" and attempts[0]["outcome"] == "ok"
    got = await vs.Get(vpb.GetRequest(collection="notes", ids=["dog"]))
    # The vector is the provider's own embedding of the text, at the collection's dimensions.
    np.testing.assert_allclose(list(got.records[0].vector), hash_embedding(texts["dog"], 16), rtol=1e-6)
    assert got.records[0].text == texts["dog"]
    answer = await vs.Query(vpb.QueryRequest(collection="notes", text="a dog barked twice", top_k=1))
    assert answer.matches[0].id == "dog" and answer.matches[0].text == texts["dog"]
    assert answer.matches[0].score == pytest.approx(1.0, abs=1e-5)


async def test_a_record_without_vector_or_text_is_refused(gw: RunningGateway) -> None:
    await stub(gw).CreateCollection(vpb.CreateCollectionRequest(collection=NOTES))
    code, details = await refused(stub(gw).Upsert(vpb.UpsertRequest(collection="notes", records=[
        vpb.Record(id="a", text="fine"), vpb.Record(id="b")])))
    assert (code, details["violations"][0][0]) == (grpc.StatusCode.INVALID_ARGUMENT, "records[1].vector")


async def test_an_unknown_embedding_provider_is_not_found(gw: RunningGateway) -> None:
    vs = stub(gw)
    lost = vpb.Collection(name="lost", dimensions=4, distance=vpb.DISTANCE_DOT, embedding_provider="nobody")
    await vs.CreateCollection(vpb.CreateCollectionRequest(collection=lost))
    code, details = await refused(vs.Upsert(vpb.UpsertRequest(collection="lost", records=[
        vpb.Record(id="a", text="hello")])))
    assert code == grpc.StatusCode.NOT_FOUND and details["reason"] == "ERROR_REASON_UNKNOWN_PROVIDER"


def openai_embeddings(received: Any) -> Reply:
    inputs = received.json()["input"]
    dims = received.json()["dimensions"]
    data = [{"object": "embedding", "index": i, "embedding": [float(len(text))] + [1.0] * (dims - 1)}
            for i, text in enumerate(inputs)]
    body = {"object": "list", "data": data, "model": "emb-1",
            "usage": {"prompt_tokens": len(inputs), "total_tokens": len(inputs)}}
    return Reply(200, {"content-type": "application/json"}, json.dumps(body).encode())


async def test_texts_go_in_batches_through_the_embed_path_with_its_retries() -> None:
    async with Upstream() as up:
        up.add("POST", "/v1/embeddings", Reply(503, {"content-type": "application/json"},
                                                 b'{"error": {"message": "busy"}}'))

        async def answer(received: Any) -> Reply:
            return openai_embeddings(received)

        up.respond("POST", "/v1/embeddings", answer)
        config = {
            "vectors": {"embed_batch": 4},
            "providers": [{"name": "up", "kind": "vllm", "base_url": f"{up.url}/v1", "embedding_model": "emb-1",
                           "retry": {"backoff_initial": 0.01, "backoff_max": 0.02}}],
        }
        async with running_gateway(config) as gw:
            vs = stub(gw)
            await vs.CreateCollection(vpb.CreateCollectionRequest(collection=vpb.Collection(
                name="words", dimensions=5, distance=vpb.DISTANCE_EUCLIDEAN, embedding_provider="up")))
            words = ["x" * n for n in range(1, 11)]
            written = await vs.Upsert(vpb.UpsertRequest(collection="words", records=[
                vpb.Record(id=f"w{len(w)}", text=w) for w in words]))
            assert written.embedded_count == 10
            sent = [r.json() for r in up.received]
            # The first call failed with 503 and was retried; then batches of at most 4.
            assert [len(body["input"]) for body in sent] == [4, 4, 4, 2]
            assert {body["dimensions"] for body in sent} == {5}
            assert {body["model"] for body in sent} == {"emb-1"}
            answer = await vs.Query(vpb.QueryRequest(collection="words", text="xxx", top_k=3))
            assert [m.id for m in answer.matches] == ["w3", "w2", "w4"]


async def test_health_and_reflection_list_the_vector_service(gw: RunningGateway) -> None:
    health = health_pb2_grpc.HealthStub(gw.channel)
    answer = await health.Check(health_pb2.HealthCheckRequest(service="portico.v1.VectorService"))
    assert answer.status == health_pb2.HealthCheckResponse.SERVING
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    reflect = reflection_pb2_grpc.ServerReflectionStub(gw.channel)
    names: list[str] = []
    async for reply in reflect.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")])):
        names += [s.name for s in reply.list_services_response.service]
    assert "portico.v1.VectorService" in names


async def test_the_service_can_be_turned_off() -> None:
    async with running_gateway({"providers": [FAKE], "vectors": {"enabled": False}}) as gw:
        code, _ = await refused(stub(gw).ListCollections(vpb.ListCollectionsRequest()))
        assert code == grpc.StatusCode.UNIMPLEMENTED


async def test_a_caller_key_is_needed_when_keys_are_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VEC_CALLER_KEY", "caller-secret-0123456789")
    monkeypatch.setenv("VEC_ADMIN_KEY", "admin-secret-0123456789")
    config = {"providers": [FAKE], "auth": {"keys": [{"name": "app", "env": "VEC_CALLER_KEY"}],
                                            "admin_keys": [{"name": "ops", "env": "VEC_ADMIN_KEY"}]}}
    async with running_gateway(config) as gw:
        vs = stub(gw)
        code, _ = await refused(vs.ListCollections(vpb.ListCollectionsRequest()))
        assert code == grpc.StatusCode.UNAUTHENTICATED
        code, _ = await refused(vs.ListCollections(vpb.ListCollectionsRequest(),
                                                   metadata=(("authorization", "Bearer admin-secret-0123456789"),)))
        assert code == grpc.StatusCode.PERMISSION_DENIED
        listed = await vs.ListCollections(vpb.ListCollectionsRequest(),
                                          metadata=(("authorization", "Bearer caller-secret-0123456789"),))
        assert list(listed.collections) == []


async def test_an_unknown_backend_or_option_is_a_configuration_error_naming_it() -> None:
    from portico_server.config import ConfigError, parse_config
    from portico_server.vectors import registry

    config = parse_config({"vectors": {"backend": "nowhere"}})
    with pytest.raises(ConfigError, match=r"vectors\.backend: no vector backend 'nowhere'; known: .*memory"):
        registry.create(config.vectors)
    config = parse_config({"vectors": {"options": {"path": "data"}}})
    with pytest.raises(ConfigError, match=r"vectors\.options\.path"):
        registry.create(config.vectors)

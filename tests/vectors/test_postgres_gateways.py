"""Two `portico serve` processes configured with the same Postgres store: what one
writes, the other reads at once — the point of the postgres backend."""

from __future__ import annotations

import json
from pathlib import Path

import grpc
import pytest
from harness import rpc_details, running_gateway, spawned_gateway
from portico.v1 import vector_service_pb2 as vpb
from portico.v1 import vector_service_pb2_grpc

from vectors.postgres_server import PostgresServer, postgres_fixture  # noqa: F401  (the `postgres` fixture)

FAKE = {"name": "fake", "kind": "fake", "models": ["fake-chat"], "embedding_model": "fake-embed"}
NOTES = vpb.Collection(name="notes", dimensions=16, distance=vpb.DISTANCE_COSINE, embedding_provider="fake")


def config(dsn: str) -> str:
    return json.dumps({"providers": [FAKE], "vectors": {"backend": "postgres", "options": {"dsn": dsn}}})


@pytest.mark.timeout(360)
async def test_two_gateway_processes_sharing_a_store_see_each_others_writes(
        postgres: PostgresServer, tmp_path: Path) -> None:
    dsn = await postgres.create_database("shared")
    # Started one after the other: each imports the whole gateway, slow on a busy machine.
    with spawned_gateway(config(dsn), tmp_path, ready_seconds=120) as (_, first_address), \
            spawned_gateway(config(dsn), tmp_path, ready_seconds=120) as (_, second_address):
        async with grpc.aio.insecure_channel(first_address) as a_channel, \
                grpc.aio.insecure_channel(second_address) as b_channel:
            a = vector_service_pb2_grpc.VectorServiceStub(a_channel)
            b = vector_service_pb2_grpc.VectorServiceStub(b_channel)
            await a.CreateCollection(vpb.CreateCollectionRequest(collection=NOTES))
            assert (await b.GetCollection(vpb.GetCollectionRequest(name="notes"))).dimensions == 16

            # Text embedded by the `fake` provider in process B, found by the same text through A.
            await b.Upsert(vpb.UpsertRequest(collection="notes", records=[
                vpb.Record(id="tea", text="green tea with jasmine", metadata_json='{"kind": "drink"}'),
                vpb.Record(id="map", text="a map of the harbour", metadata_json='{"kind": "paper"}'),
            ]))
            found = await a.Query(vpb.QueryRequest(collection="notes", text="green tea with jasmine", top_k=2))
            assert found.matches[0].id == "tea"
            assert found.matches[0].score == pytest.approx(1.0, abs=1e-5)

            # An overwrite and a delete by filter through A are what B counts.
            await a.Upsert(vpb.UpsertRequest(collection="notes", records=[
                vpb.Record(id="map", text="a map of the harbour", metadata_json='{"kind": "drink"}')]))
            drinks = vpb.Filter(equals=vpb.FieldEquals(field="kind", value=vpb.FilterValue(string_value="drink")))
            assert (await b.Count(vpb.CountRequest(collection="notes", filter=drinks))).count == 2
            await a.Delete(vpb.DeleteRequest(collection="notes", filter=drinks))
            assert (await b.Count(vpb.CountRequest(collection="notes"))).count == 0

            await b.DeleteCollection(vpb.DeleteCollectionRequest(name="notes"))
            with pytest.raises(grpc.aio.AioRpcError) as gone:
                await a.Upsert(vpb.UpsertRequest(collection="notes", records=[vpb.Record(id="x", text="x")]))
            assert gone.value.code() == grpc.StatusCode.NOT_FOUND


async def test_a_store_that_cannot_be_reached_is_unavailable_and_the_password_stays_hidden(
        postgres: PostgresServer) -> None:
    dsn = postgres.dsn(password="wrong-secret-123")
    tree = {"providers": [FAKE], "vectors": {"backend": "postgres", "options": {"dsn": dsn}}}
    async with running_gateway(tree) as gw:
        vs = vector_service_pb2_grpc.VectorServiceStub(gw.channel)
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await vs.GetCollection(vpb.GetCollectionRequest(name="notes"), timeout=30)
    assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
    text = json.dumps(rpc_details(failed.value)) + (failed.value.details() or "")
    assert "wrong-secret-123" not in text
    assert "postgres:***@127.0.0.1" in text

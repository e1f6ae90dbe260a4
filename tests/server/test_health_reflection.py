"""Standard health entries and server reflection."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase
from harness import running_gateway

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING

CONFIG = {
    "server": {"health_probe_interval": 0.05},
    "providers": [
        {"name": "good", "kind": "fake", "models": ["a"]},
        {"name": "bad", "kind": "fake", "models": ["b"], "options": {"healthy": False}},
    ],
}


async def status_of(stub, service: str) -> int:
    return (await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)).status


async def wait_for(stub, service: str, wanted: int) -> None:
    """Follow the entry with Watch until it reports `wanted` (bounded by the test timeout)."""
    async for update in stub.Watch(health_pb2.HealthCheckRequest(service=service), timeout=10):
        if update.status == wanted:
            return


async def test_process_entries_serve_while_a_provider_is_down():
    async with running_gateway(CONFIG) as gw:
        health = health_pb2_grpc.HealthStub(gw.channel)
        await wait_for(health, "portico.provider.bad", NOT_SERVING)
        assert await status_of(health, "") == SERVING
        assert await status_of(health, "portico.v1.LLMService") == SERVING
        assert await status_of(health, "portico.provider.good") == SERVING
        assert await status_of(health, "portico.provider.bad") == NOT_SERVING
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await status_of(health, "portico.provider.missing")
        assert info.value.code() == grpc.StatusCode.NOT_FOUND


async def test_watch_follows_a_provider_recovering():
    async with running_gateway(CONFIG) as gw:
        health = health_pb2_grpc.HealthStub(gw.channel)
        await wait_for(health, "portico.provider.bad", NOT_SERVING)
        gw.provider("bad").options.healthy = True
        await asyncio.wait_for(wait_for(health, "portico.provider.bad", SERVING), 10)
        from portico.v1 import llm_service_pb2 as pb

        listed = await gw.stub.ListProviders(pb.ListProvidersRequest())
        assert {p.name: p.health for p in listed.providers} == {
            "good": pb.PROVIDER_HEALTH_SERVING, "bad": pb.PROVIDER_HEALTH_SERVING}


def test_reflection_lists_and_describes_the_services():
    async def run():
        async with running_gateway({"providers": [{"name": "fake", "kind": "fake"}]}) as gw:
            return await asyncio.to_thread(reflect, gw.address)

    services, method_names = asyncio.run(run())
    assert set(services) >= {"portico.v1.LLMService", "grpc.health.v1.Health",
                             "grpc.reflection.v1alpha.ServerReflection"}
    assert method_names == ["Chat", "StreamChat", "Embed", "CountTokens", "GetCapabilities", "ListProviders"]


def reflect(address: str) -> tuple[list[str], list[str]]:
    with grpc.insecure_channel(address) as channel:
        db = ProtoReflectionDescriptorDatabase(channel)
        services = list(db.get_services())
        from google.protobuf.descriptor_pool import DescriptorPool

        pool = DescriptorPool(db)
        service = pool.FindServiceByName("portico.v1.LLMService")
        return services, [m.name for m in service.methods]

"""AdminService is on the same server, and reflection describes it (grpcurl can call it)."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from google.protobuf.descriptor_pool import DescriptorPool
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase
from harness import running_gateway
from portico.v1 import admin_service_pb2 as admin
from portico.v1 import admin_service_pb2_grpc
from portico.v1 import llm_service_pb2 as pb

FAKE = {"providers": [{"name": "fake", "kind": "fake"}]}


def admin_methods(address: str) -> tuple[list[str], list[str]]:
    with grpc.insecure_channel(address) as channel:
        db = ProtoReflectionDescriptorDatabase(channel)
        service = DescriptorPool(db).FindServiceByName("portico.v1.AdminService")
        return list(db.get_services()), [m.name for m in service.methods]


async def test_reflection_lists_and_describes_the_admin_service() -> None:
    async with running_gateway(FAKE) as gw:
        services, methods = await asyncio.to_thread(admin_methods, gw.address)
    assert {"portico.v1.LLMService", "portico.v1.AdminService"} <= set(services)
    assert methods == ["ListBreakers", "ResetBreaker", "SwitchRoute", "ReloadConfig", "ListAdminEvents"]


async def test_a_gateway_started_without_a_configuration_file_refuses_to_reload() -> None:
    async with running_gateway(FAKE) as gw:
        stub = admin_service_pb2_grpc.AdminServiceStub(gw.channel)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.ReloadConfig(admin.ReloadConfigRequest())
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "without a configuration file" in refused.value.details()
        listed = await gw.stub.ListProviders(pb.ListProvidersRequest())
        assert [p.name for p in listed.providers] == ["fake"]

"""ListProviders pages through the configured providers (AIP-158)."""

from __future__ import annotations

import grpc
import pytest
from harness import rpc_details, running_gateway
from portico.v1 import llm_service_pb2 as pb


def providers(count: int) -> dict:
    return {"providers": [{"name": f"p{i:04d}", "kind": "fake", "models": [f"m{i}"]} for i in range(count)]}


async def test_pages_follow_configuration_order_until_the_token_is_empty():
    async with running_gateway(providers(5)) as gw:
        pages, token = [], ""
        while True:
            page = await gw.stub.ListProviders(pb.ListProvidersRequest(page_size=2, page_token=token))
            pages.append([p.name for p in page.providers])
            token = page.next_page_token
            if not token:
                break
        everything = await gw.stub.ListProviders(pb.ListProvidersRequest())
    assert pages == [["p0000", "p0001"], ["p0002", "p0003"], ["p0004"]]
    assert [p.name for p in everything.providers] == [f"p{i:04d}" for i in range(5)]
    assert everything.next_page_token == ""
    assert [p.kind for p in everything.providers] == ["fake"] * 5


async def test_page_size_defaults_to_fifty_and_is_capped_at_a_thousand():
    async with running_gateway(providers(1001)) as gw:
        default = await gw.stub.ListProviders(pb.ListProvidersRequest())
        huge = await gw.stub.ListProviders(pb.ListProvidersRequest(page_size=5000))
        rest = await gw.stub.ListProviders(pb.ListProvidersRequest(page_size=5000, page_token=huge.next_page_token))
    assert len(default.providers) == 50 and default.next_page_token
    assert len(huge.providers) == 1000 and huge.next_page_token
    assert [p.name for p in rest.providers] == ["p1000"] and rest.next_page_token == ""


@pytest.mark.parametrize(("request_fields", "field"), [
    ({"page_token": "not-a-token"}, "page_token"),
    ({"page_token": "b2Zmc2V0Oi0x"}, "page_token"),  # a well-formed encoding of a negative offset
    ({"page_size": -1}, "page_size"),
])
async def test_a_bad_page_token_or_size_is_invalid_argument(request_fields, field):
    async with running_gateway(providers(3)) as gw:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await gw.stub.ListProviders(pb.ListProvidersRequest(**request_fields))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [f for f, _ in rpc_details(info.value)["violations"]] == [field]

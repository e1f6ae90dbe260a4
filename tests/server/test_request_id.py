"""AIP-155 request ids: the caller's id (or one the gateway makes) reaches the provider's
call context and comes back in the `x-request-id` trailer of answers and errors alike."""

from __future__ import annotations

import uuid

import grpc
import pytest
from harness import rpc_details, running_gateway
from portico.v1 import llm_service_pb2 as pb
from portico.v1 import types_pb2 as t

CONFIG = {"providers": [{"name": "fake", "kind": "fake", "models": ["fake-chat"], "default_model": "fake-chat",
                         "options": {"rules": [{"when_contains": "fail", "error": {"reason": "UPSTREAM_AUTH"}}]}}]}
HI = [t.Message(role=t.ROLE_USER, content="hi")]


def trailer(metadata: object) -> str:
    values = [v for k, v in metadata if k == "x-request-id"]  # type: ignore[attr-defined]
    assert len(values) == 1, metadata
    return str(values[0])


@pytest.fixture
async def gw():
    async with running_gateway(CONFIG) as gateway:
        yield gateway


async def test_the_callers_request_id_reaches_the_provider_and_is_echoed(gw):
    call = gw.stub.Chat(pb.ChatRequest(model="fake-chat", messages=HI, request_id="checkout-42/retry:1"))
    await call
    assert trailer(await call.trailing_metadata()) == "checkout-42/retry:1"
    assert gw.provider("fake").last_call.request_id == "checkout-42/retry:1"


async def test_an_x_request_id_header_serves_when_the_field_is_empty(gw):
    headed = gw.stub.ListProviders(pb.ListProvidersRequest(), metadata=(("x-request-id", "from-header"),))
    await headed
    assert trailer(await headed.trailing_metadata()) == "from-header"
    both = gw.stub.Chat(pb.ChatRequest(model="fake-chat", messages=HI, request_id="from-field"),
                        metadata=(("x-request-id", "from-header"),))
    await both
    assert trailer(await both.trailing_metadata()) == "from-field"
    assert gw.provider("fake").last_call.request_id == "from-field"


async def test_without_one_the_gateway_makes_a_uuid4_and_returns_it(gw):
    ids = []
    for _ in range(2):
        call = gw.stub.Chat(pb.ChatRequest(model="fake-chat", messages=HI))
        await call
        ids.append(trailer(await call.trailing_metadata()))
        assert gw.provider("fake").last_call.request_id == ids[-1]
    assert ids[0] != ids[1]
    assert all(uuid.UUID(i).version == 4 for i in ids)


async def test_streams_and_other_calls_carry_it_too(gw):
    stream = gw.stub.StreamChat(pb.ChatRequest(model="fake-chat", messages=HI, request_id="s-1"))
    assert [c async for c in stream][-1].final
    assert trailer(await stream.trailing_metadata()) == "s-1"
    embed = gw.stub.Embed(pb.EmbedRequest(model="fake-chat", inputs=["x"], request_id="e-1"))
    await embed
    assert trailer(await embed.trailing_metadata()) == "e-1"
    listed = gw.stub.ListProviders(pb.ListProvidersRequest())
    await listed
    assert uuid.UUID(trailer(await listed.trailing_metadata())).version == 4


@pytest.mark.parametrize("rpc", ["Chat", "StreamChat"])
async def test_error_statuses_carry_it_beside_their_details(gw, rpc):
    async def run(request: pb.ChatRequest) -> None:
        call = getattr(gw.stub, rpc)(request)
        if rpc == "Chat":
            await call
        else:
            [_ async for _ in call]

    with pytest.raises(grpc.aio.AioRpcError) as provider_error:
        await run(pb.ChatRequest(model="fake-chat", messages=[t.Message(role=t.ROLE_USER, content="fail")],
                                 request_id="r-fail"))
    assert provider_error.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert trailer(provider_error.value.trailing_metadata()) == "r-fail"
    assert rpc_details(provider_error.value)["reason"] == "ERROR_REASON_UPSTREAM_AUTH"

    with pytest.raises(grpc.aio.AioRpcError) as routing_error:
        await run(pb.ChatRequest(model="no-such-model", messages=HI, request_id="r-404"))
    assert routing_error.value.code() == grpc.StatusCode.NOT_FOUND
    assert trailer(routing_error.value.trailing_metadata()) == "r-404"


@pytest.mark.parametrize("bad", ["x" * 65, "has space", "tab\there", "naïve"])
async def test_an_invalid_request_id_is_refused_and_a_made_up_one_returned(gw, bad):
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await gw.stub.Chat(pb.ChatRequest(model="fake-chat", messages=HI, request_id=bad))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [f for f, _ in rpc_details(info.value)["violations"]] == ["request_id"]
    assert uuid.UUID(trailer(info.value.trailing_metadata())).version == 4


async def test_sixty_four_printable_characters_are_accepted(gw):
    request_id = "~!" + "a" * 62
    call = gw.stub.Chat(pb.ChatRequest(model="fake-chat", messages=HI, request_id=request_id))
    await call
    assert trailer(await call.trailing_metadata()) == request_id

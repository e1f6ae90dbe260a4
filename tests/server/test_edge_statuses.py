"""Statuses stay readable whatever the caller sends: over-long names are refused before
they are echoed, every status fits gRPC's trailer limit, and bytes that are not a
protobuf message are INVALID_ARGUMENT rather than UNKNOWN."""

from __future__ import annotations

import base64

import grpc
import pytest
from harness import rpc_details, running_gateway
from portico.v1 import llm_service_pb2 as pb
from portico.v1 import types_pb2 as t
from portico_server import errors
from portico_server.status import to_rpc_status

USER = t.Message(role=t.ROLE_USER, content="hi")
LONG = "x" * 5000
CONFIG = {"providers": [{"name": "fake", "kind": "fake", "models": ["fake-chat", "fake-embed"],
                         "default_model": "fake-chat", "embedding_model": "fake-embed"}]}


@pytest.fixture
async def gw():
    async with running_gateway(CONFIG) as gateway:
        yield gateway


def calls(gw):
    """Every RPC that takes a provider and a model, with the request type it takes."""
    return [
        (gw.stub.Chat, lambda **f: pb.ChatRequest(messages=[USER], **f)),
        (lambda r: _drain(gw.stub.StreamChat(r)), lambda **f: pb.ChatRequest(messages=[USER], **f)),
        (gw.stub.Embed, lambda **f: pb.EmbedRequest(inputs=["x"], **f)),
        (gw.stub.CountTokens, lambda **f: pb.CountTokensRequest(messages=[USER], **f)),
        (gw.stub.GetCapabilities, lambda **f: pb.GetCapabilitiesRequest(**f)),
    ]


@pytest.mark.parametrize("field", ["provider", "model"])
async def test_a_name_of_kilobytes_is_invalid_argument_naming_the_field(gw, field):
    for call, make in calls(gw):
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await call(make(**{field: LONG}))
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, info.value.details()
        violations = dict(rpc_details(info.value)["violations"])
        assert "at most 256" in violations[field]
        assert LONG not in info.value.details()


async def test_a_long_but_allowed_unknown_name_is_still_not_found(gw):
    name = "m" * 256
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await gw.stub.Chat(pb.ChatRequest(provider="fake", model=name, messages=[USER]))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    details = rpc_details(info.value)
    assert details["reason"] == "ERROR_REASON_UNKNOWN_MODEL"
    assert details["metadata"]["model"].startswith("mmm") and len(details["metadata"]["model"]) <= 128


@pytest.mark.parametrize(("tags", "field"), [
    ({"team": LONG}, "tags[team]"),
    ({LONG: "v"}, "tags"),
    ({f"k{i}": "v" for i in range(65)}, "tags"),
])
async def test_oversized_tags_are_invalid_argument(gw, tags, field):
    for request in (pb.ChatRequest(model="fake-chat", messages=[USER], tags=tags),
                    pb.EmbedRequest(model="fake-embed", inputs=["x"], tags=tags)):
        call = gw.stub.Chat if isinstance(request, pb.ChatRequest) else gw.stub.Embed
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await call(request)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert field in dict(rpc_details(info.value)["violations"])


async def test_thousands_of_violations_still_fit_the_trailer(gw):
    # Every message is wrong: the status lists the first few and says how many it left out.
    bad = [t.Message(role=t.ROLE_UNSPECIFIED, content="x", tool_calls=[t.ToolCall()]) for _ in range(3000)]
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await gw.stub.Chat(pb.ChatRequest(model="fake-chat", messages=bad))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = rpc_details(info.value)
    assert details["reason"] == "ERROR_REASON_INVALID_REQUEST"
    violations = details["violations"]
    assert violations[0] == ("messages[0].role", "must be ROLE_SYSTEM, ROLE_USER, ROLE_ASSISTANT or ROLE_TOOL")
    assert len(violations) == 8 and "2992 more problems" in violations[-1][1]
    assert len(info.value.details().encode()) <= 512


@pytest.mark.parametrize(("method", "streaming"), [
    ("Chat", False), ("StreamChat", True), ("Embed", False), ("CountTokens", False),
    ("GetCapabilities", False), ("ListProviders", False),
])
async def test_bytes_that_are_not_the_request_message_are_invalid_argument(gw, method, streaming):
    path = f"/portico.v1.LLMService/{method}"
    # Field 1 as a varint whose continuation never ends: no protobuf parser accepts it.
    garbage = b"\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"
    with pytest.raises(grpc.aio.AioRpcError) as info:
        if streaming:
            await _drain(gw.channel.unary_stream(path, request_serializer=None, response_deserializer=None)(garbage))
        else:
            await gw.channel.unary_unary(path, request_serializer=None, response_deserializer=None)(garbage)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert rpc_details(info.value)["reason"] == "ERROR_REASON_INVALID_REQUEST"
    assert "not a valid portico.v1." in info.value.details()


async def test_valid_bytes_still_reach_the_handler(gw):
    chat = gw.channel.unary_unary("/portico.v1.LLMService/Chat", request_serializer=None, response_deserializer=None)
    raw = await chat(pb.ChatRequest(model="fake-chat", messages=[USER]).SerializeToString())
    assert pb.CompletionResponse.FromString(raw).content == "hi"


async def _drain(call):
    return [c async for c in call]


@pytest.mark.parametrize("exc", [
    errors.InvalidRequest([("é" * 5000, "é" * 5000)] * 3000),
    errors.UpstreamError("é" * 5000, provider="é" * 5000, status=500, retry_after=1.5,
                         metadata={f"k{i}{'é' * 5000}": "é" * 5000 for i in range(40)}),
])
def test_no_status_passes_the_trailer_limit(exc):
    # What goes on the wire: the percent-encoded message plus the base64 details.
    status = to_rpc_status(exc)
    message = "".join(c if " " <= c <= "~" and c != "%" else "".join(f"%{b:02X}" for b in c.encode())
                      for c in status.details)
    details = dict(status.trailing_metadata)["grpc-status-details-bin"]
    assert len(message) + len(base64.b64encode(details)) < 6 * 1024

"""The reasoning controls and prompt-cache breakpoints through a real gateway: what a
caller sets reaches the provider as the domain names, and bad values are refused naming
the field."""

from __future__ import annotations

import grpc
import pytest
from harness import rpc_details, running_gateway
from portico.v1 import llm_service_pb2 as pb
from portico.v1 import types_pb2 as t
from portico_server import convert
from portico_server import domain as d
from upstream import Reply, Upstream, fixture


def config() -> dict:
    return {"providers": [{"name": "fake", "kind": "fake", "models": ["fake-chat"], "default_model": "fake-chat"}]}


def user(text: str, **kw: object) -> t.Message:
    return t.Message(role=t.ROLE_USER, content=text, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(("reasoning", "expected"), [
    (t.ReasoningConfig(effort=t.REASONING_EFFORT_LOW), d.ReasoningConfig(effort=d.ReasoningEffort.LOW)),
    (t.ReasoningConfig(effort=t.REASONING_EFFORT_HIGH, budget_tokens=8000),
     d.ReasoningConfig(effort=d.ReasoningEffort.HIGH, budget_tokens=8000)),
    (t.ReasoningConfig(budget_tokens=1024), d.ReasoningConfig(budget_tokens=1024)),
    (t.ReasoningConfig(), None),  # an empty config asks for nothing
    (None, None),
])
async def test_reasoning_controls_reach_the_provider(reasoning, expected):
    request = pb.ChatRequest(model="fake-chat", messages=[user("think")], reasoning=reasoning)
    async with running_gateway(config()) as gw:
        await gw.stub.Chat(request)
        sent = gw.provider("fake").last_request
    assert sent is not None
    assert sent.reasoning == expected


async def test_cache_breakpoints_on_messages_parts_and_tools_reach_the_provider():
    request = pb.ChatRequest(
        model="fake-chat",
        messages=[
            t.Message(role=t.ROLE_SYSTEM, content="long instructions", cache=t.CacheBreakpoint(ttl_seconds=3600)),
            t.Message(role=t.ROLE_USER, parts=[t.ContentPart(text="a long document", cache=t.CacheBreakpoint()),
                                               t.ContentPart(text="the question")]),
        ],
        tools=[t.ToolDefinition(name="a"), t.ToolDefinition(name="b", cache=t.CacheBreakpoint(ttl_seconds=300))],
    )
    async with running_gateway(config()) as gw:
        await gw.stub.Chat(request)
        sent = gw.provider("fake").last_request
    assert sent is not None
    assert [m.cache for m in sent.messages] == [d.CacheBreakpoint(ttl_seconds=3600), None]
    assert [p.cache for p in sent.messages[1].parts] == [d.CacheBreakpoint(), None]
    assert [tool.cache for tool in sent.tools] == [None, d.CacheBreakpoint(ttl_seconds=300)]


async def test_bad_reasoning_and_cache_values_are_all_refused_naming_each_field():
    request = pb.ChatRequest(
        model="fake-chat",
        messages=[
            user("x", cache=t.CacheBreakpoint(ttl_seconds=0)),
            t.Message(role=t.ROLE_ASSISTANT, parts=[
                t.ContentPart(reasoning=t.Reasoning(text="a thought", source="anthropic"), cache=t.CacheBreakpoint()),
                t.ContentPart(text="ok", cache=t.CacheBreakpoint(ttl_seconds=-5)),
            ]),
        ],
        tools=[t.ToolDefinition(name="a", cache=t.CacheBreakpoint(ttl_seconds=-1))],
        reasoning=t.ReasoningConfig(effort=99, budget_tokens=0),  # type: ignore[arg-type]
    )
    async with running_gateway(config()) as gw:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await gw.stub.Chat(request)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [f for f, _ in rpc_details(info.value)["violations"]] == [
        "messages[0].cache.ttl_seconds",
        "messages[1].parts[0].cache",
        "messages[1].parts[1].cache.ttl_seconds",
        "tools[0].cache.ttl_seconds",
        "reasoning.effort",
        "reasoning.budget_tokens",
    ]


def test_estimated_usage_and_part_breakpoints_survive_conversion_to_the_wire_and_back():
    usage = convert.usage(d.Usage(prompt_tokens=12, completion_tokens=30, estimated=True))
    wire = t.Usage.FromString(usage.SerializeToString())
    assert (wire.prompt_token_count, wire.completion_token_count, wire.total_token_count, wire.estimated) == (
        12, 30, 42, True)
    assert not convert.usage(d.Usage(prompt_tokens=1)).estimated

    parts = [d.ContentPart(text="doc", cache=d.CacheBreakpoint(ttl_seconds=3600)),
             d.ContentPart(media=d.MediaPart(mime_type="application/pdf", data=b"%PDF-1.7"), cache=d.CacheBreakpoint()),
             d.ContentPart(text="plain")]
    message = t.Message(role=t.ROLE_USER, parts=convert.parts(parts))
    back = convert.chat_request(pb.ChatRequest(messages=[t.Message.FromString(message.SerializeToString())]), "m")
    assert back.messages[0].parts == parts


async def test_reasoning_on_a_model_without_a_knob_is_a_failed_precondition_over_grpc():
    async with Upstream() as up:
        settings = {"providers": [{"name": "oa", "kind": "openai", "api_key": "sk-test", "base_url": f"{up.url}/v1",
                                   "models": ["gpt-4o-mini"]}]}
        async with running_gateway(settings) as gw:
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await gw.stub.Chat(pb.ChatRequest(model="gpt-4o-mini", messages=[user("x")],
                                                  reasoning=t.ReasoningConfig(effort=t.REASONING_EFFORT_HIGH)))
        assert not up.received
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    details = rpc_details(info.value)
    assert details["reason"] == "ERROR_REASON_CAPABILITY_UNSUPPORTED"
    assert details["metadata"]["capability"] == "reasoning"


async def test_a_stream_whose_vendor_sends_no_usage_ends_with_estimated_usage_on_the_wire():
    recorded = fixture("openai/stream_text_short.sse")
    no_usage = b"\n\n".join(e for e in recorded.split(b"\n\n") if e.strip() and b'"choices":[]' not in e) + b"\n\n"
    async with Upstream() as up:
        up.add("POST", "/v1/chat/completions", Reply(200, {"content-type": "text/event-stream"}, no_usage))
        settings = {"providers": [{"name": "mis", "kind": "mistral", "api_key": "sk-test",
                                   "base_url": f"{up.url}/v1", "models": ["mistral-small-latest"]}]}
        async with running_gateway(settings) as gw:
            chunks = [c async for c in gw.stub.StreamChat(pb.ChatRequest(
                model="mistral-small-latest", messages=[user("Say hello in Portuguese")]))]
    final = chunks[-1]
    assert final.final
    assert final.usage.estimated
    assert (final.usage.prompt_token_count, final.usage.completion_token_count) == (10, 1)


async def test_the_fake_provider_reports_what_reached_it_for_clients_in_other_processes():
    settings = {"providers": [{"name": "fake", "kind": "fake", "models": ["fake-chat"],
                               "options": {"report_controls": True}}]}
    request = pb.ChatRequest(
        model="fake-chat",
        messages=[t.Message(role=t.ROLE_USER, cache=t.CacheBreakpoint(ttl_seconds=3600), parts=[
            t.ContentPart(media=t.Media(data=b"%PDF-1.7"), cache=t.CacheBreakpoint()), t.ContentPart(text="hi")])],
        tools=[t.ToolDefinition(name="a", cache=t.CacheBreakpoint())],
        reasoning=t.ReasoningConfig(effort=t.REASONING_EFFORT_HIGH, budget_tokens=4096),
    )
    async with running_gateway(settings) as gw:
        unary = await gw.stub.Chat(request)
        final = [c async for c in gw.stub.StreamChat(request)][-1]
    for metadata in (unary.metadata, final.metadata):
        assert metadata["received_reasoning"] == "effort=high budget=4096"
        assert metadata["received_cache"] == "messages[0].parts[0]=default messages[0]=3600 tools[0]=default"
        assert metadata["received_media"] == "messages[0].parts[0]=application/pdf"

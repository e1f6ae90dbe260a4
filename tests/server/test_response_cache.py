"""The exact response cache, seen from a gRPC caller, against a loopback upstream that
counts the requests reaching it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from faults import CHAT_PATH, completion, openai_provider, stream_reply
from harness import rpc_details, running_gateway
from metrics_page import Page, scrape
from portico.v1 import llm_service_pb2 as pb
from portico.v1 import types_pb2 as t
from portico_server import metrics
from upstream import Upstream

USE = (("x-portico-cache", "use"),)
SAMPLED = (("x-portico-cache", "use"), ("x-portico-cache-sampled", "true"))


def request(text: str = "what is the capital of France?", **fields: Any) -> pb.ChatRequest:
    fields = {"provider": "up", "model": "gpt-4o", "temperature": 0, **fields}
    return pb.ChatRequest(messages=[t.Message(role=t.ROLE_USER, content=text)], **fields)


def config(up: Upstream, **cache: Any) -> dict[str, Any]:
    return {"providers": [openai_provider("up", up)], "response_cache": cache,
            "aliases": {"steady": "up/gpt-4o"}}


def calls(up: Upstream) -> int:
    return sum(1 for r in up.received if r.path == CHAT_PATH)


def trailer(call_metadata: Any, key: str) -> str | None:
    return next((v for k, v in call_metadata or () if k == key), None)


async def test_the_second_identical_call_is_answered_without_the_upstream() -> None:
    async with Upstream() as up:
        up.always("POST", CHAT_PATH, completion("Paris."))
        async with running_gateway(config(up)) as gw:
            first_call = gw.stub.Chat(request(), metadata=USE)
            first = await first_call
            second_call = gw.stub.Chat(request(), metadata=USE)
            second = await second_call

            assert calls(up) == 1
            assert second == first and second.content == "Paris."
            assert trailer(await first_call.trailing_metadata(), "portico-cache") == "miss"
            trailers = await second_call.trailing_metadata()
            assert trailer(trailers, "portico-cache") == "hit"
            assert json.loads(trailer(trailers, "portico-attempts") or "") == []  # no upstream attempt

            # Without the opt-in the cache is not used at all: the call goes upstream.
            plain_call = gw.stub.Chat(request())
            await plain_call
            assert calls(up) == 2
            assert trailer(await plain_call.trailing_metadata(), "portico-cache") is None


async def test_equivalent_encodings_share_an_entry_and_different_questions_do_not() -> None:
    schema_a = '{"type": "object", "properties": {"city": {"type": "string"}}}'
    schema_b = '{"properties":{"city":{"type":"string"}},"type":"object"}'
    as_content = request(tools=[t.ToolDefinition(name="lookup", parameters_json_schema=schema_a)])
    as_parts = pb.ChatRequest(
        provider="up", model="gpt-4o", temperature=0.0,
        tools=[t.ToolDefinition(name="lookup", parameters_json_schema=schema_b)],
        messages=[t.Message(role=t.ROLE_USER, parts=[t.ContentPart(text="what is the capital "),
                                                     t.ContentPart(text="of France?")])],
        request_id="another-request", tags={"team": "other"})
    async with Upstream() as up:
        up.always("POST", CHAT_PATH, completion("Paris."))
        async with running_gateway(config(up)) as gw:
            await gw.stub.Chat(as_content, metadata=USE)
            await gw.stub.Chat(as_parts, metadata=USE)
            assert calls(up) == 1

            for different in (request("what is the capital of Spain?"), request(max_tokens=5),
                              request(provider="", model="steady")):
                await gw.stub.Chat(different, metadata=USE)
            assert calls(up) == 4


async def test_a_cached_stream_replays_the_same_chunks_and_final_chunk() -> None:
    async with Upstream() as up:
        up.add("POST", CHAT_PATH, stream_reply(["The capital", " of France", " is Paris."]))
        async with running_gateway(config(up)) as gw:
            original = [c async for c in gw.stub.StreamChat(request(), metadata=USE)]
            replay_call = gw.stub.StreamChat(request(), metadata=USE)
            replayed = [c async for c in replay_call]

            assert calls(up) == 1
            assert replayed == original
            assert [c.content for c in replayed if c.content] == ["The capital", " of France", " is Paris."]
            final = replayed[-1]
            assert final.final and final.stop_reason == t.STOP_REASON_END_TURN
            assert final.HasField("usage")
            assert trailer(await replay_call.initial_metadata(), "portico-cache") == "hit"
            trailers = await replay_call.trailing_metadata()
            assert trailer(trailers, "portico-cache") == "hit"
            assert json.loads(trailer(trailers, "portico-attempts") or "") == []

            # A unary call is a different entry from a stream: it goes upstream.
            up.always("POST", CHAT_PATH, completion("Paris."))
            await gw.stub.Chat(request(), metadata=USE)
            assert calls(up) == 2


async def test_a_sampled_call_is_cached_only_when_the_caller_says_so() -> None:
    async with Upstream() as up:
        up.always("POST", CHAT_PATH, completion("Paris, probably."))
        async with running_gateway(config(up)) as gw:
            warm = request(temperature=0.7)
            unset = pb.ChatRequest(provider="up", model="gpt-4o", messages=request().messages)
            for sampled in (warm, warm, unset, unset):
                call = gw.stub.Chat(sampled, metadata=USE)
                await call
                assert trailer(await call.trailing_metadata(), "portico-cache") is None
            assert calls(up) == 4

            await gw.stub.Chat(warm, metadata=SAMPLED)
            hit = gw.stub.Chat(warm, metadata=SAMPLED)
            await hit
            assert calls(up) == 5
            assert trailer(await hit.trailing_metadata(), "portico-cache") == "hit"


async def test_a_configured_route_is_cached_without_asking_and_off_bypasses_it() -> None:
    async with Upstream() as up:
        up.always("POST", CHAT_PATH, completion("Paris."))
        async with running_gateway(config(up, models={"steady": {"ttl": 60}})) as gw:
            steady = request(provider="", model="steady")
            await gw.stub.Chat(steady)
            await gw.stub.Chat(steady)
            assert calls(up) == 1

            await gw.stub.Chat(steady, metadata=(("x-portico-cache", "off"),))
            assert calls(up) == 2
            # refresh: a fresh answer, stored for the next caller.
            up.always("POST", CHAT_PATH, completion("Paris, France."))
            await gw.stub.Chat(steady, metadata=(("x-portico-cache", "refresh"),))
            again = await gw.stub.Chat(steady)
            assert calls(up) == 3 and again.content == "Paris, France."

            # A route not listed is not cached without the opt-in.
            await gw.stub.Chat(request())
            await gw.stub.Chat(request())
            assert calls(up) == 5


async def test_per_request_opt_in_can_be_turned_off() -> None:
    async with Upstream() as up:
        up.always("POST", CHAT_PATH, completion("Paris."))
        async with running_gateway(config(up, per_request=False)) as gw:
            await gw.stub.Chat(request(), metadata=USE)
            await gw.stub.Chat(request(), metadata=USE)
            assert calls(up) == 2


@pytest.mark.parametrize(("header", "value"), [("x-portico-cache", "always"), ("x-portico-cache-sampled", "yes")])
async def test_an_unknown_cache_header_value_is_an_invalid_argument(header: str, value: str) -> None:
    async with Upstream() as up, running_gateway(config(up)) as gw:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await gw.stub.Chat(request(), metadata=((header, value),))
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert [f for f, _ in rpc_details(info.value)["violations"]] == [header]
        assert calls(up) == 0


async def test_an_answer_larger_than_the_entry_limit_is_not_kept() -> None:
    async with Upstream() as up:
        up.always("POST", CHAT_PATH, completion("x" * 2000))
        async with running_gateway(config(up, max_entry_bytes=1000)) as gw:
            await gw.stub.Chat(request(), metadata=USE)
            await gw.stub.Chat(request(), metadata=USE)
            assert calls(up) == 2


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    server = metrics.serve_http("127.0.0.1", 0)
    try:
        yield server.url
    finally:
        server.close()


async def test_hits_and_misses_are_counted(endpoint: str) -> None:
    async with Upstream() as up:
        up.always("POST", CHAT_PATH, completion("Paris."))
        async with running_gateway(config(up)) as gw:
            before: Page = await asyncio.to_thread(scrape, endpoint)
            for _ in range(3):
                await gw.stub.Chat(request("metrics?"), metadata=USE)
            await gw.stub.Chat(request("metrics?", temperature=1), metadata=USE)
            after: Page = await asyncio.to_thread(scrape, endpoint)

    def grew(result: str) -> float:
        name = "portico_response_cache_lookups_total"
        return after.value(name, method="chat", result=result) - before.value(name, method="chat", result=result)

    assert (grew("miss"), grew("hit"), grew("not_deterministic")) == (1, 2, 1)
    stored = "portico_response_cache_stores_total"
    assert after.value(stored, method="chat", result="stored") - before.value(stored, method="chat",
                                                                              result="stored") == 1

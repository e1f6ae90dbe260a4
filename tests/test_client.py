"""The Python client (`portico.Client`, `portico.AsyncClient`) against a real gateway.

The sync client runs its own gRPC channel; it is called from a worker thread so the
in-process asyncio gateway keeps serving.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Callable
from typing import Any, TypeVar

import portico
import pytest
from harness import running_gateway
from portico_server import domain
from portico_server.providers.fake import FakeProvider, hash_embedding
from pydantic import BaseModel

T = TypeVar("T")

WEATHER_JSON = '{"city": "Paris", "temperature_c": 21.5, "conditions": ["sunny", "windy"]}'


def config(**options: Any) -> dict[str, Any]:
    return {
        "providers": [
            {
                "name": "fake",
                "kind": "fake",
                "models": ["fake-chat", "fake-embed"],
                "default_model": "fake-chat",
                "embedding_model": "fake-embed",
                # The client's handling of each failure is under test: the gateway's retries are off.
                "retry": {"enabled": False},
                "options": {
                    "chunk_size": 4,
                    "rules": [
                        {"when_contains": "weather", "tool_calls": [
                            {"name": "get_weather", "arguments": '{"city":"Paris"}'}
                        ]},
                        {"when_contains": "forecast as JSON", "content": WEATHER_JSON},
                        {"when_contains": "not JSON", "content": "sunny, I think"},
                        {"when_contains": "slow", "content": "eventually", "delay": 5.0},
                        {"when_contains": "think first", "reasoning": "hmm, let me see",
                         "content": "the answer is 42"},
                    ],
                    **options,
                },
            }
        ]
    }


def fake(gw: Any) -> FakeProvider:
    provider = gw.provider("fake")
    assert isinstance(provider, FakeProvider)
    return provider


async def in_thread(fn: Callable[[], T]) -> T:
    return await asyncio.to_thread(fn)


class Weather(BaseModel):
    """The weather in a city."""

    city: str
    temperature_c: float
    conditions: list[str]


class GetWeather(BaseModel):
    """Look up the current weather."""

    city: str
    unit: str = "celsius"


# -- chat ---------------------------------------------------------------------------------


async def test_async_chat_returns_the_complete_answer() -> None:
    async with running_gateway(config()) as gw, portico.AsyncClient(gw.address) as client:
        response = await client.chat("Hello there", model="fake-chat")

    assert response.content == "Hello there"
    assert response.role == portico.Role.Value("ROLE_ASSISTANT")
    assert response.stop_reason == portico.StopReason.Value("STOP_REASON_END_TURN")
    assert (response.provider, response.model) == ("fake", "fake-chat")
    assert response.usage.total_token_count == (
        response.usage.prompt_token_count + response.usage.completion_token_count
    ) > 0


async def test_sync_chat_takes_dict_and_object_messages() -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        portico.Message(role=portico.Role.Value("ROLE_USER"), content="first"),
        {"role": "assistant", "tool_calls": [{"id": "c1", "name": "lookup", "arguments": {"q": 1}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "found"},
        {"role": "user", "content": [{"text": "second "}, "question"]},
    ]
    async with running_gateway(config()) as gw:
        with portico.Client(gw.address) as client:
            response = await in_thread(
                lambda: client.chat(messages, provider="fake", temperature=0.5, max_tokens=50, seed=7)
            )
        sent = fake(gw).last_request

    assert response.content == "second question"
    assert sent is not None
    assert [m.role for m in sent.messages] == [
        domain.Role.SYSTEM, domain.Role.USER, domain.Role.ASSISTANT, domain.Role.TOOL, domain.Role.USER
    ]
    assert sent.messages[2].tool_calls == [domain.ToolCall(id="c1", name="lookup", arguments='{"q": 1}')]
    assert sent.messages[3].tool_call_id == "c1"
    assert (sent.temperature, sent.max_tokens, sent.seed) == (0.5, 50, 7)


async def test_unknown_keyword_arguments_are_refused_before_sending() -> None:
    with portico.Client("127.0.0.1:1") as client, pytest.raises(TypeError, match="temprature"):
        client.chat("hi", temprature=0.2)  # type: ignore[call-arg]


# -- streaming ----------------------------------------------------------------------------


async def test_stream_yields_reasoning_then_content_then_one_final_chunk() -> None:
    async with running_gateway(config()) as gw, portico.AsyncClient(gw.address) as client:
        async with client.stream("think first", model="fake-chat") as stream:
            chunks = [chunk async for chunk in stream]
            final = await stream.get_final_response()
        complete = await client.chat("think first", model="fake-chat")

    reasoning = [c.reasoning_content for c in chunks if c.reasoning_content]
    content = [c.content for c in chunks if c.content]
    assert reasoning == ["hmm,", " let", " me ", "see"]
    assert content == ["the ", "answ", "er i", "s 42"]
    first_content = next(i for i, c in enumerate(chunks) if c.content)
    assert all(c.reasoning_content for c in chunks[:first_content])
    assert [c.final for c in chunks] == [False] * (len(chunks) - 1) + [True]
    last = chunks[-1]
    assert last.stop_reason == portico.StopReason.Value("STOP_REASON_END_TURN")
    assert last.usage.total_token_count > 0
    assert (last.provider, last.model) == ("fake", "fake-chat")
    # The assembled stream is exactly what chat returns for the same prompt.
    assert final == complete


async def test_sync_stream_text_stream_and_final_response() -> None:
    async with running_gateway(config()) as gw:
        with portico.Client(gw.address) as client:

            def read() -> tuple[list[str], portico.CompletionResponse]:
                with client.stream("stream this text please", provider="fake") as stream:
                    pieces = list(stream.text_stream)
                    return pieces, stream.get_final_response()

            pieces, final = await in_thread(read)

    assert pieces == ["stre", "am t", "his ", "text", " ple", "ase"]
    assert final.content == "stream this text please"
    assert final.stop_reason == portico.StopReason.Value("STOP_REASON_END_TURN")
    assert final.usage.completion_token_count > 0


async def test_leaving_the_stream_block_early_closes_the_providers_stream() -> None:
    async with running_gateway(config(chunk_delay=0.05)) as gw:
        provider = fake(gw)
        async with portico.AsyncClient(gw.address) as client:
            async with client.stream("a long answer, streamed bit by bit", provider="fake") as stream:
                first = await anext(aiter(stream))
            await asyncio.wait_for(provider.stream_closed.wait(), 5)

    assert first.content == "a lo"
    assert provider.streams_closed_early == 1


async def test_a_failure_after_the_first_chunk_raises_from_the_stream() -> None:
    reply = {"content": "partial answer", "error": {"reason": "UPSTREAM_CONNECTION", "after_chunks": 2}}
    async with running_gateway(config(replies=[reply])) as gw, portico.AsyncClient(gw.address) as client:
        received: list[str] = []
        with pytest.raises(portico.UnavailableError) as caught:
            async with client.stream("hi", provider="fake") as stream:
                async for text in stream.text_stream:
                    received.append(text)

    assert received == ["part", "ial "]
    assert caught.value.reason == "ERROR_REASON_UPSTREAM_CONNECTION"
    assert not isinstance(caught.value, portico.ConnectionFailedError)


# -- tools and structured output ------------------------------------------------------------


async def test_tools_from_a_model_and_a_dict_reach_the_provider_as_schema_text() -> None:
    search_schema = {"type": "object", "properties": {"zeta": {"type": "string"}, "alpha": {"type": "integer"}}}
    async with running_gateway(config()) as gw, portico.AsyncClient(gw.address) as client:
        response = await client.chat(
            "what is the weather in Paris?",
            provider="fake",
            tools=[GetWeather, {"name": "search", "description": "Search the web", "parameters": search_schema}],
            tool_choice="auto",
        )
        sent = fake(gw).last_request

    assert [(c.name, c.arguments) for c in response.tool_calls] == [("get_weather", '{"city":"Paris"}')]
    assert response.tool_calls[0].id
    assert response.stop_reason == portico.StopReason.Value("STOP_REASON_TOOL_CALLS")
    assert sent is not None
    weather, search = sent.tools
    assert (weather.name, weather.description) == ("GetWeather", "Look up the current weather.")
    assert weather.parameters == GetWeather.model_json_schema()
    assert (search.name, search.description) == ("search", "Search the web")
    # Key order survives the trip (a protobuf Struct would have sorted it).
    assert list(search.parameters["properties"]) == ["zeta", "alpha"]
    assert sent.tool_choice == domain.ToolChoice(mode=domain.ToolChoiceMode.AUTO)


async def test_streamed_tool_calls_assemble_from_deltas_and_arrive_whole_at_the_end() -> None:
    async with running_gateway(config()) as gw, portico.AsyncClient(gw.address) as client:
        async with client.stream(
            "weather?", provider="fake", tools=[portico.tool("get_weather", GetWeather)], tool_choice="get_weather"
        ) as stream:
            chunks = [chunk async for chunk in stream]
            final = await stream.get_final_response()
        sent = fake(gw).last_request

    deltas = [d for c in chunks for d in c.tool_call_deltas]
    assert "".join(d.arguments_delta for d in deltas) == '{"city":"Paris"}'
    assert deltas[0].name == "get_weather" and deltas[0].id
    assert [(c.name, c.arguments) for c in final.tool_calls] == [("get_weather", '{"city":"Paris"}')]
    assert final.tool_calls[0].id == deltas[0].id
    assert sent is not None
    assert sent.tool_choice == domain.ToolChoice(mode=domain.ToolChoiceMode.TOOL, tool_name="get_weather")


async def test_response_model_sends_its_schema_and_returns_a_parsed_instance() -> None:
    async with running_gateway(config()) as gw, portico.AsyncClient(gw.address) as client:
        weather = await client.chat("give me the forecast as JSON", provider="fake", response_model=Weather)
        sent = fake(gw).last_request

    assert weather == Weather(city="Paris", temperature_c=21.5, conditions=["sunny", "windy"])
    assert sent is not None and sent.response_format is not None
    assert sent.response_format.type is domain.ResponseFormatType.JSON_SCHEMA
    assert sent.response_format.name == "Weather"
    assert sent.response_format.schema == Weather.model_json_schema()


async def test_sync_response_model_that_does_not_fit_raises_with_the_response() -> None:
    async with running_gateway(config()) as gw:
        with (
            portico.Client(gw.address) as client,
            pytest.raises(portico.ResponseParseError, match="not a valid Weather") as caught,
        ):
            await in_thread(lambda: client.chat("this is not JSON", provider="fake", response_model=Weather))

    assert caught.value.response.content == "sunny, I think"


# -- embeddings, tokens, capabilities, providers ----------------------------------------------


async def test_embed_returns_one_vector_per_input_in_order() -> None:
    async with running_gateway(config()) as gw, portico.AsyncClient(gw.address) as client:
        response = await client.embed(["first", "second", "third"], model="fake-embed")
        single = await client.embed("second", provider="fake", dimensions=8)

    assert [e.index for e in response.embeddings] == [0, 1, 2]
    for embedding, text in zip(response.embeddings, ["first", "second", "third"], strict=True):
        assert list(embedding.values) == pytest.approx(hash_embedding(text, 64), abs=1e-6)
    assert len(single.embeddings[0].values) == 8
    assert (response.provider, response.model) == ("fake", "fake-embed")


async def test_count_tokens_capabilities_and_providers() -> None:
    async with running_gateway(config()) as gw:
        with portico.Client(gw.address) as client:
            tokens = await in_thread(
                lambda: client.count_tokens("How many tokens is this?", provider="fake", tools=[GetWeather])
            )
            no_tools = await in_thread(lambda: client.count_tokens("How many tokens is this?", provider="fake"))
            capabilities = await in_thread(lambda: client.capabilities(provider="fake"))
            providers = await in_thread(client.providers)

    assert tokens.token_count > no_tools.token_count > 0
    assert tokens.source == portico.TokenCountSource.Value("TOKEN_COUNT_SOURCE_ESTIMATE")
    assert (tokens.provider, tokens.model) == ("fake", "fake-chat")
    assert (capabilities.provider, capabilities.model) == ("fake", "fake-chat")
    assert capabilities.supports_tools and capabilities.supports_response_format
    assert capabilities.context_window_tokens == 32768
    assert [(p.name, p.kind, list(p.models), p.default_model) for p in providers] == [
        ("fake", "fake", ["fake-chat", "fake-embed"], "fake-chat")
    ]
    assert providers[0].health == portico.ProviderHealth.Value("PROVIDER_HEALTH_SERVING")


async def test_enum_values_read_as_words() -> None:
    async with running_gateway(config()) as gw, portico.AsyncClient(gw.address) as client:
        finished = await client.chat("hello")
        tool_call = await client.chat("what is the weather?")
        cut = await client.chat("a long question for the model", max_tokens=1)
        async with client.stream("what is the weather?") as stream:
            streamed = await stream.get_final_response()
        tokens = await client.count_tokens("hello")
        (provider,) = await client.providers()

    assert [a.stop_reason_name for a in (finished, tool_call, cut, streamed)] == [
        "end_turn", "tool_calls", "max_tokens", "tool_calls",
    ]
    assert tool_call.stop_reason == portico.StopReason.Value("STOP_REASON_TOOL_CALLS")  # the number stays
    assert tokens.source_name == "estimate"
    assert (provider.name, provider.health_name, provider.breaker_state_name) == ("fake", "serving", "closed")
    assert isinstance(provider.message, portico.ProviderInfo)
    # A value newer than this client still reads, as its number.
    assert portico.ChatResponse(portico.CompletionResponse(stop_reason=99)).stop_reason_name == "99"  # type: ignore[arg-type]


# -- errors ---------------------------------------------------------------------------------


async def test_invalid_field_raises_invalid_argument_with_the_field_named() -> None:
    async with running_gateway(config()) as gw, portico.AsyncClient(gw.address) as client:
        with pytest.raises(portico.InvalidArgumentError) as caught:
            await client.chat("hi", provider="fake", temperature=5)
        with pytest.raises(portico.InvalidArgumentError) as no_messages:
            await client.chat([], provider="fake")

    error = caught.value
    assert error.reason == "ERROR_REASON_INVALID_REQUEST"
    assert error.domain == "portico"
    assert [v.field for v in error.field_violations] == ["temperature"]
    assert error.field_violations[0].description
    assert error.retry_after is None
    assert str(error).startswith("INVALID_ARGUMENT: ")
    assert [v.field for v in no_messages.value.field_violations] == ["messages"]


async def test_sync_unknown_provider_raises_not_found() -> None:
    async with running_gateway(config()) as gw:
        with portico.Client(gw.address) as client, pytest.raises(portico.NotFoundError) as caught:
            await in_thread(lambda: client.chat("hi", provider="nope"))

    assert caught.value.reason == "ERROR_REASON_UNKNOWN_PROVIDER"
    assert caught.value.metadata["provider"] == "nope"


async def test_rate_limit_raises_resource_exhausted_with_retry_after() -> None:
    error = {"reason": "UPSTREAM_RATE_LIMITED", "message": "slow down", "retry_after": 2.5}
    async with running_gateway(config(replies=[{"error": error}, {"error": error}])) as gw:
        # The client's retries off: a rate limit with RetryInfo is otherwise waited out.
        async with portico.AsyncClient(gw.address, retry=None) as client:
            with pytest.raises(portico.ResourceExhaustedError) as caught:
                await client.chat("hi", provider="fake")
        with (
            portico.Client(gw.address, retry=None) as sync_client,
            pytest.raises(portico.ResourceExhaustedError) as sync_caught,
        ):
            await in_thread(lambda: sync_client.chat("hi", provider="fake"))

    for exc in (caught.value, sync_caught.value):
        assert exc.reason == "ERROR_REASON_UPSTREAM_RATE_LIMITED"
        assert exc.retry_after == pytest.approx(2.5)
        assert exc.metadata["provider"] == "fake"
        assert exc.message == "slow down"


async def test_timeout_raises_deadline_exceeded_promptly() -> None:
    async with running_gateway(config()) as gw:
        async with portico.AsyncClient(gw.address, timeout=0.3) as client:
            started = time.monotonic()
            with pytest.raises(portico.DeadlineExceededError):
                await client.chat("slow please", provider="fake")
            client_default = time.monotonic() - started
            # A call's own timeout wins over the client's.
            with pytest.raises(portico.DeadlineExceededError):
                await client.chat("slow please", provider="fake", timeout=0.2)
        with portico.Client(gw.address) as sync_client:
            started = time.monotonic()
            with pytest.raises(portico.DeadlineExceededError):
                await in_thread(lambda: sync_client.chat("slow please", provider="fake", timeout=0.3))
            sync_elapsed = time.monotonic() - started

    assert client_default < 3
    assert sync_elapsed < 3


async def test_retry_safe_unavailable_is_retried_and_other_failures_are_not() -> None:
    # Overloaded means the provider did no work, so the gateway marks it retry-safe.
    unavailable = {"error": {"reason": "UPSTREAM_OVERLOADED", "message": "upstream 529"}}
    bad_request = {"error": {"reason": "UPSTREAM_BAD_REQUEST", "message": "upstream 400"}}
    replies = [unavailable, unavailable, {"content": "third time lucky"}, unavailable, bad_request, {"content": "next"}]
    async with running_gateway(config(replies=replies)) as gw:
        async with portico.AsyncClient(gw.address) as retrying:
            assert (await retrying.chat("hi", provider="fake")).content == "third time lucky"
        async with portico.AsyncClient(gw.address, retry=None) as once:
            with pytest.raises(portico.UnavailableError) as caught:
                await once.chat("hi", provider="fake")
        async with portico.AsyncClient(gw.address) as retrying:
            with pytest.raises(portico.InvalidArgumentError) as bad:
                await retrying.chat("hi", provider="fake")
            # The bad request was not retried: the next scripted reply is still queued.
            assert (await retrying.chat("hi", provider="fake")).content == "next"

    assert caught.value.reason == "ERROR_REASON_UPSTREAM_OVERLOADED"
    assert bad.value.reason == "ERROR_REASON_UPSTREAM_BAD_REQUEST"


async def test_no_gateway_at_the_address_raises_connection_failed() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # Nothing listens on `port` now.
    async with portico.AsyncClient(f"127.0.0.1:{port}", retry=None, timeout=5) as client:
        with pytest.raises(portico.ConnectionFailedError) as caught:
            await client.providers()

    assert caught.value.reason == ""
    assert isinstance(caught.value, portico.UnavailableError)


# -- helpers --------------------------------------------------------------------------------


def test_tool_helper_writes_schema_text_from_dict_model_or_text() -> None:
    from_dict = portico.tool("add", {"type": "object", "properties": {"b": {}, "a": {}}}, description="Add")
    from_model = portico.tool("get_weather", GetWeather)
    from_text = portico.tool("raw", '{"type": "object"}')
    no_args = portico.tool("now")

    assert from_dict.parameters_json_schema == '{"type":"object","properties":{"b":{},"a":{}}}'
    assert from_dict.description == "Add"
    assert json.loads(from_model.parameters_json_schema) == GetWeather.model_json_schema()
    assert from_text.parameters_json_schema == '{"type": "object"}'
    assert no_args.parameters_json_schema == ""
    with pytest.raises(ValueError, match="JSON object"):
        portico.tool("bad", "[1, 2]")

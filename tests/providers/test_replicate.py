"""The `replicate` provider against a local server that answers as Replicate's predictions
API and its streaming service do.

Recorded predictions live in tests/fixtures/replicate (see SOURCES.md). Their `urls`
point at api.replicate.com and Replicate's streaming host; the local server serves them
with those links rewritten to itself, so the provider follows them as it would in
production. Streams are re-cut at arbitrary byte boundaries.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import grpc
import pytest
from harness import collect, rpc_details, running_gateway
from portico.v1 import llm_service_pb2 as pb
from portico.v1 import types_pb2 as t
from portico_server import errors
from portico_server.call import CallContext
from portico_server.config import ProviderSettings
from portico_server.domain import (
    ChatRequest,
    ContentPart,
    MediaPart,
    Message,
    ReasoningConfig,
    ReasoningEffort,
    ResponseFormat,
    ResponseFormatType,
    Role,
    Source,
    StopReason,
    ToolDefinition,
)
from portico_server.providers import registry
from portico_server.providers.replicate import ReplicateProvider
from upstream import Received, Reply, Upstream, fixture

TOKEN = "r8_TestToken0123456789abcdefghijklmnopqrstu"
LLAMA3 = "meta/meta-llama-3-8b-instruct"
LLAMA2_VERSION = "2d19859030ff705a87c746f7e96eea03aefb71f166725aee39692f1476566d48"
JSON_TYPE = {"content-type": "application/json"}
SSE = {"content-type": "text/event-stream"}
CUTS = [None, 1, 7, 64]
HAIKU_ID = "jp9nrd1g2hrj20cjb2vrb55mkr"
STREAM_ID = "4awn473bsrztjzlx2b6ufoxkkm"
CREATE = f"/v1/models/{LLAMA3}/predictions"
HAIKU = "\n\nFuzzy, gentle beasts\nSoftly grazing, quiet eyes\nLlama's gentle charm"


@pytest.fixture
async def up():
    async with Upstream() as server:
        yield server


def served(up: Upstream, name: str, **changes: Any) -> bytes:
    """A recorded prediction with its links pointing at the local server."""
    text = fixture(f"replicate/{name}").decode()
    text = text.replace("https://api.replicate.com", up.url)
    for host in ("https://streaming-api.svc.rno2.c.replicate.net", "https://streaming-api.svc.us.c.replicate.net"):
        text = text.replace(host, up.url + "/streaming")
    if changes:
        text = json.dumps({**json.loads(text), **changes})
    return text.encode()


def recorded(up: Upstream, name: str, status: int = 200) -> Reply:
    return Reply(status, JSON_TYPE, served(up, name))


@pytest.fixture
async def make(up):
    made: list[ReplicateProvider] = []

    def factory(**settings: Any) -> ReplicateProvider:
        tree = {"name": "rep", "kind": "replicate", "api_key": TOKEN, "base_url": up.url + "/v1",
                "options": {"poll_interval": 0.01}, **settings}
        provider = registry.create(ProviderSettings.model_validate(tree))
        assert isinstance(provider, ReplicateProvider)
        made.append(provider)
        return provider

    yield factory
    for provider in made:
        await provider.close()


@pytest.fixture
def rep(make):
    return make()


def ask(model: str = LLAMA3, *messages: Message, **fields: Any) -> ChatRequest:
    conversation = list(messages) or [Message(Role.USER, "Please write a haiku about llamas")]
    return ChatRequest(model=model, messages=conversation, **fields)


def cancelled(up: Upstream, prediction_id: str) -> asyncio.Event:
    """Set when the local server receives the prediction's cancel request."""
    seen = asyncio.Event()

    async def on_cancel(_: Received) -> Reply:
        seen.set()
        return Reply(200, JSON_TYPE, b'{"status":"canceled"}')

    up.respond("POST", f"/v1/predictions/{prediction_id}/cancel", on_cancel)
    return seen


# -- unary: wait, then poll ------------------------------------------------------------------


async def test_a_prediction_unfinished_after_the_wait_is_polled_to_its_end(up, rep):
    up.add("POST", CREATE, recorded(up, "prediction_processing_after_wait.json", 201))
    up.add("GET", f"/v1/predictions/{HAIKU_ID}", recorded(up, "prediction_processing_after_wait.json", 200))
    up.add("GET", f"/v1/predictions/{HAIKU_ID}", recorded(up, "prediction_succeeded_with_token_counts.json", 200))
    answer = await rep.chat(ask(LLAMA3, Message(Role.SYSTEM, "Answer in haiku"),
                                Message(Role.USER, "Please write a haiku about llamas"),
                                max_tokens=64, temperature=0.6, top_p=0.9, seed=7, stop=["<end>", "###"]))
    create = up.received[0]
    assert create.headers["prefer"] == "wait=60"
    assert create.headers["authorization"] == f"Bearer {TOKEN}"
    assert create.json() == {"input": {"prompt": "Please write a haiku about llamas",
                                       "system_prompt": "Answer in haiku", "max_tokens": 64,
                                       "temperature": 0.6, "top_p": 0.9, "seed": 7,
                                       "stop_sequences": "<end>,###"}}
    assert [r.method for r in up.received] == ["POST", "GET", "GET"]
    assert answer.content == HAIKU and answer.parts == [ContentPart(text=HAIKU)]
    assert (answer.stop_reason, answer.raw_stop_reason) == (StopReason.END_TURN, "succeeded")
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens, answer.usage.estimated) == (22, 11, False)
    assert answer.metadata == {"prediction_id": HAIKU_ID}


async def test_a_version_runs_through_predictions_and_usage_without_counts_is_an_estimate(up, rep):
    up.add("POST", "/v1/predictions", recorded(up, "prediction_succeeded_llama2_chat.json", 201))
    answer = await rep.chat(ask(f"meta/llama-2-70b-chat:{LLAMA2_VERSION}"))
    assert up.last("/v1/predictions").json()["version"] == LLAMA2_VERSION
    tokens = json.loads(fixture("replicate/prediction_succeeded_llama2_chat.json"))["output"]
    assert answer.content == "".join(tokens)
    assert answer.usage.estimated and answer.usage.completion_tokens == (len(answer.content) + 3) // 4
    assert answer.usage.prompt_tokens > 0


async def test_the_wait_fits_the_callers_deadline_and_a_late_prediction_is_cancelled(up, rep):
    up.add("POST", CREATE, recorded(up, "prediction_processing_after_wait.json", 201))
    up.always("GET", f"/v1/predictions/{HAIKU_ID}", recorded(up, "prediction_processing_after_wait.json", 200))
    seen = cancelled(up, HAIKU_ID)
    with pytest.raises(errors.UpstreamDeadlineExceeded):
        await rep.chat(ask(), CallContext.with_timeout(1.5))
    assert up.received[0].headers["prefer"] == "wait=1"
    await asyncio.wait_for(seen.wait(), 5)


@pytest.mark.parametrize(("status", "error"), [("failed", "CUDA error: out of memory"), ("canceled", None)])
async def test_a_prediction_that_fails_is_an_upstream_error(up, rep, status, error):
    up.add("POST", CREATE, Reply(201, JSON_TYPE, served(
        up, "prediction_processing_after_wait.json", status=status, error=error)))
    with pytest.raises(errors.UpstreamUnavailable) as info:
        await rep.chat(ask())
    assert info.value.metadata["upstream_code"] == f"prediction_{status}"
    assert info.value.metadata["prediction_id"] == HAIKU_ID
    assert (error or f"ended {status}") in str(info.value)


# -- streams ---------------------------------------------------------------------------------


@pytest.mark.parametrize("cut", CUTS)
async def test_a_stream_reads_the_stream_url_then_the_token_counts(up, rep, cut):
    up.add("POST", CREATE, recorded(up, "prediction_stream_starting.json", 201))
    up.add("GET", f"/streaming/v1/predictions/{STREAM_ID}", Reply(200, SSE, fixture("replicate/stream_haiku.sse"),
                                                                  cut_every=cut))
    up.add("GET", f"/v1/predictions/{STREAM_ID}", Reply(200, JSON_TYPE, served(
        up, "prediction_succeeded_with_token_counts.json", id=STREAM_ID)))
    chunks, final = await collect(rep.stream(ask()))
    create = up.received[0]
    assert create.json() == {"input": {"prompt": "Please write a haiku about llamas"}, "stream": True}
    assert "prefer" not in create.headers
    reader = up.received[1]
    assert reader.headers["accept"] == "text/event-stream" and reader.headers["authorization"] == f"Bearer {TOKEN}"
    assert "".join(c.content for c in chunks) == HAIKU
    assert chunks[1].content == "Fuzzy"
    assert (chunks[0].model, chunks[0].provider, chunks[0].metadata) == (LLAMA3, "rep", {"prediction_id": STREAM_ID})
    assert final.stop_reason is StopReason.END_TURN and final.raw_stop_reason == "succeeded"
    assert final.usage is not None and (final.usage.prompt_tokens, final.usage.completion_tokens) == (22, 11)
    assert not final.usage.estimated
    assert final.parts == [ContentPart(text=HAIKU)]


async def test_a_stream_without_token_counts_ends_with_an_estimate(up, rep):
    up.add("POST", CREATE, recorded(up, "prediction_stream_starting.json", 201))
    up.add("GET", f"/streaming/v1/predictions/{STREAM_ID}",
           Reply(200, SSE, fixture("replicate/stream_sdk_text_with_comment.sse"), cut_every=3))
    up.add("GET", f"/v1/predictions/{STREAM_ID}", Reply(200, JSON_TYPE, served(
        up, "prediction_stream_starting.json", status="processing")))
    chunks, final = await collect(rep.stream(ask()))
    assert [c.content for c in chunks] == ["foo"]
    assert final.usage is not None and final.usage.estimated and final.usage.completion_tokens == 1


async def test_closing_a_stream_cancels_the_prediction(up, rep):
    body = fixture("replicate/stream_haiku.sse")
    up.add("POST", CREATE, recorded(up, "prediction_stream_starting.json", 201))
    up.add("GET", f"/streaming/v1/predictions/{STREAM_ID}",
           Reply(200, SSE, body, hang_after=body.index(b"event: output", 10)))
    seen = cancelled(up, STREAM_ID)
    stream = rep.stream(ask())
    first = await asyncio.wait_for(anext(stream), 5)
    assert first.content == "\n\n"
    await stream.aclose()
    await asyncio.wait_for(seen.wait(), 5)


@pytest.mark.parametrize(("tail", "error", "text"), [
    (b'event: error\ndata: {"detail": "Prediction interrupted; please retry (code: PA)"}\n\n',
     errors.UpstreamUnavailable, "Prediction interrupted"),
    (b'event: done\ndata: {"reason": "canceled"}\n\n', errors.UpstreamUnavailable, "ended canceled"),
    (b"", errors.UpstreamProtocol, "before its done event"),
])
async def test_a_stream_that_fails_ends_with_the_mapped_error(up, rep, tail, error, text):
    up.add("POST", CREATE, recorded(up, "prediction_stream_starting.json", 201))
    up.add("GET", f"/streaming/v1/predictions/{STREAM_ID}",
           Reply(200, SSE, b"event: output\ndata: Fuzzy\n\n" + tail, cut_every=5))
    received = []
    with pytest.raises(error, match=text):
        async for chunk in rep.stream(ask()):
            received.append(chunk)
    assert [c.content for c in received] == ["Fuzzy"]


async def test_a_model_without_a_stream_url_answers_in_one_chunk(up, rep):
    up.add("POST", "/v1/predictions", recorded(up, "prediction_succeeded_llama2_chat.json", 201))
    chunks, final = await collect(rep.stream(ask(f"meta/llama-2-70b-chat:{LLAMA2_VERSION}")))
    assert len(chunks) == 1 and chunks[0].content.startswith(" Sure! Here's a poem")
    assert final.usage is not None and final.usage.estimated


# -- the input -------------------------------------------------------------------------------


async def test_a_conversation_becomes_a_transcript_or_messages(up, make):
    rep = make(options={"poll_interval": 0.01, "messages_models": ["openai/gpt-5"],
                        "max_tokens_field": "max_new_tokens"})
    conversation = [Message(Role.SYSTEM, "Be brief"), Message(Role.USER, "Hi"),
                    Message(Role.ASSISTANT, "Hello!"), Message(Role.USER, "A haiku, please")]
    up.always("POST", CREATE,
              recorded(up, "prediction_succeeded_with_token_counts.json", 201))
    up.always("POST", "/v1/models/openai/gpt-5/predictions",
              recorded(up, "prediction_succeeded_with_token_counts.json", 201))
    await rep.chat(ask(LLAMA3, *conversation, max_tokens=10, passthrough={"top_k": 40}))
    assert up.last(CREATE).json()["input"] == {
        "prompt": "User: Hi\n\nAssistant: Hello!\n\nUser: A haiku, please\n\nAssistant:",
        "system_prompt": "Be brief", "max_new_tokens": 10, "top_k": 40}
    await rep.chat(ask("openai/gpt-5", *conversation))
    assert up.last("/v1/models/openai/gpt-5/predictions").json()["input"] == {"messages": [
        {"role": "system", "content": "Be brief"}, {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "A haiku, please"}]}


@pytest.mark.parametrize(("fields", "error", "what"), [
    ({"tools": [ToolDefinition(name="weather")]}, errors.CapabilityUnsupported, "tools"),
    ({"response_format": ResponseFormat(ResponseFormatType.JSON_OBJECT)}, errors.CapabilityUnsupported, "structured"),
    ({"stop": ["a,b"]}, errors.InvalidRequest, "comma"),
    ({"passthrough": {"prompt": "other"}}, errors.InvalidRequest, "passthrough"),
    ({"reasoning": ReasoningConfig(effort=ReasoningEffort.LOW)}, errors.ModelFeatureUnsupported, "reasoning"),
])
async def test_what_replicate_cannot_take_is_refused_unsent(up, rep, fields, error, what):
    with pytest.raises(error, match=what):
        await rep.chat(ask(**fields))
    assert up.received == []


async def test_media_and_bad_model_names_are_refused_unsent(up, rep):
    image = Message(Role.USER, parts=[ContentPart(media=MediaPart(mime_type="image/png", data=b"\x89PNG"))])
    with pytest.raises(errors.CapabilityUnsupported):
        await rep.chat(ask(LLAMA3, image))
    with pytest.raises(errors.InvalidRequest) as info:
        await rep.chat(ask("llama3"))
    assert info.value.violations[0][0] == "model"
    assert up.received == []


# -- errors, capabilities, health -------------------------------------------------------------


def problem(status: int, title: str, detail: str, **extra: Any) -> bytes:
    return json.dumps({"title": title, "detail": detail, "status": status, **extra}).encode()


ERRORS = [
    (401, {}, problem(401, "Unauthenticated", "You did not pass a valid authentication token"),
     errors.UpstreamAuth, grpc.StatusCode.FAILED_PRECONDITION, None),
    (402, {}, problem(402, "Insufficient credit", "You have insufficient credit to run this model."),
     errors.UpstreamQuotaExceeded, grpc.StatusCode.RESOURCE_EXHAUSTED, None),
    (404, {}, problem(404, "Not found", "The requested resource could not be found."),
     errors.UpstreamModelNotFound, grpc.StatusCode.NOT_FOUND, None),
    (422, {}, problem(422, "Input validation failed", "- input: prompt is required\n",
                      invalid_fields=[{"type": "required", "field": "input", "description": "prompt is required"}]),
     errors.UpstreamBadRequest, grpc.StatusCode.INVALID_ARGUMENT, None),
    (429, {"retry-after": "5"},
     problem(429, "Request was throttled", "Request was throttled. Expected available in 5 seconds."),
     errors.UpstreamRateLimited, grpc.StatusCode.RESOURCE_EXHAUSTED, 5.0),
]


@pytest.mark.parametrize(("status", "headers", "body", "error", "code", "delay"), ERRORS)
async def test_http_errors_map_into_the_error_table(up, rep, status, headers, body, error, code, delay):
    up.always("POST", CREATE, Reply(status, {**JSON_TYPE, **headers}, body))
    for call in (rep.chat(ask()), collect(rep.stream(ask()))):
        with pytest.raises(error) as info:
            await call
        assert info.value.retry_after == delay
        assert json.loads(body)["detail"].strip() in str(info.value)
        assert TOKEN not in str(info.value)


def test_capabilities_and_token_counting_say_what_replicate_lacks(rep):
    caps = rep.known_capabilities(LLAMA3)
    assert caps is not None and not caps.supports_tools and caps.supports_streaming
    assert not rep.supports_tools(LLAMA3)


async def test_token_counts_are_an_estimate(rep):
    count = await rep.count_tokens(ask())
    assert count.source is Source.ESTIMATE and count.tokens > 0


async def test_health_asks_for_the_account(up, rep):
    up.add("GET", "/v1/account", Reply(200, JSON_TYPE, b'{"type":"user","username":"x"}'))
    assert await rep.health_check()
    up.add("GET", "/v1/account", Reply(401, JSON_TYPE, problem(401, "Unauthenticated", "bad token")))
    assert not await rep.health_check()


# -- through a real gateway -------------------------------------------------------------------


@pytest.fixture
async def gw(up):
    config = {"providers": [{"name": "rep", "kind": "replicate", "api_key": TOKEN, "base_url": up.url + "/v1",
                             "models": [LLAMA3], "default_model": LLAMA3, "retry": {"enabled": False},
                             "options": {"poll_interval": 0.01}}]}
    async with running_gateway(config) as gateway:
        yield gateway


async def test_grpc_stream_and_chat(up, gw):
    up.add("POST", CREATE, recorded(up, "prediction_stream_starting.json", 201))
    up.add("GET", f"/streaming/v1/predictions/{STREAM_ID}", Reply(200, SSE, fixture("replicate/stream_haiku.sse"),
                                                                  cut_every=7))
    up.add("GET", f"/v1/predictions/{STREAM_ID}", Reply(500, JSON_TYPE, problem(500, "Internal error", "oops")))
    request = pb.ChatRequest(provider="rep", messages=[t.Message(role=t.ROLE_USER, content="a haiku")])
    chunks = [c async for c in gw.stub.StreamChat(request)]
    assert "".join(c.content for c in chunks) == HAIKU
    assert chunks[-1].final and chunks[-1].usage.estimated  # the metrics lookup failed: an estimate

    up.add("POST", CREATE,
           recorded(up, "prediction_succeeded_with_token_counts.json", 201))
    reply = await gw.stub.Chat(request)
    assert reply.content == HAIKU and not reply.usage.estimated
    assert (reply.usage.prompt_token_count, reply.usage.completion_token_count) == (22, 11)


@pytest.mark.parametrize(("status", "headers", "body", "error", "code", "delay"), ERRORS)
async def test_grpc_errors(up, gw, status, headers, body, error, code, delay):
    up.always("POST", CREATE, Reply(status, {**JSON_TYPE, **headers}, body))
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await gw.stub.Chat(pb.ChatRequest(provider="rep", messages=[t.Message(role=t.ROLE_USER, content="hi")]))
    assert info.value.code() == code
    details = rpc_details(info.value)
    assert details["reason"] == "ERROR_REASON_" + error.reason.removeprefix("ERROR_REASON_")
    assert details["retry_delay"] == delay and details["metadata"]["provider"] == "rep"


async def test_grpc_cancel_of_a_waiting_call_cancels_the_prediction(up, gw):
    up.add("POST", CREATE, recorded(up, "prediction_processing_after_wait.json", 201))
    polled = asyncio.Event()

    async def still_running(_: Received) -> Reply:
        polled.set()
        return recorded(up, "prediction_processing_after_wait.json")

    up.respond("GET", f"/v1/predictions/{HAIKU_ID}", still_running)
    seen = cancelled(up, HAIKU_ID)
    call = gw.stub.Chat(pb.ChatRequest(provider="rep", messages=[t.Message(role=t.ROLE_USER, content="a haiku")]))
    await asyncio.wait_for(polled.wait(), 5)
    call.cancel()
    await asyncio.wait_for(seen.wait(), 5)
    with pytest.raises(asyncio.CancelledError):
        await call

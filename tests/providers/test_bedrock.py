"""The `bedrock` provider against a loopback server that speaks Bedrock's runtime API and
checks every request's SigV4 signature with the same secret, as AWS does.

Recorded Converse / ConverseStream traffic lives in tests/fixtures/bedrock (SOURCES.md);
binary event streams are replayed whole and re-cut at arbitrary byte boundaries, inside
frames and inside their 12-byte preludes. Exceptions no recording has are framed by the
tests' own encoder (aws_wire.py). The last part runs calls through a real gateway.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections import deque
from typing import Any
from urllib.parse import unquote, urlsplit

import grpc
import pytest
import yaml
from aws_wire import event, exception, verify
from harness import rpc_details, running_gateway
from portico.v1 import llm_service_pb2 as pb
from portico.v1 import types_pb2 as t
from portico_server import errors
from portico_server.config import ConfigError, ProviderSettings
from portico_server.domain import (
    CacheBreakpoint,
    ChatRequest,
    ContentPart,
    EmbedRequest,
    MediaPart,
    Message,
    ReasoningConfig,
    ReasoningEffort,
    Role,
    Source,
    StopReason,
    StreamChunk,
    ToolCall,
    ToolChoice,
    ToolChoiceMode,
    ToolDefinition,
)
from portico_server.providers import registry
from portico_server.providers.bedrock import BedrockProvider
from portico_server.vectors import unpack
from upstream import FIXTURES, Received, Reply, Upstream

ACCESS_KEY = "AKIAIOSFODNN7EXAMPLE"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY"
SESSION_TOKEN = "FwoGZXIvYXdzEXAMPLEsessiontoken0123456789abcdef"
REGION = "us-east-1"
EXPECTED: dict[str, Any] = json.loads((FIXTURES / "bedrock" / "expected.json").read_text())
EVENT_STREAM = {"content-type": "application/vnd.amazon.eventstream"}
JSON = {"content-type": "application/json"}
#: None: as recorded; 1 and 5 cut every prelude; 12 and 13 cut around the prelude's end.
CUTS = [None, 1, 5, 12, 13, 97]


# -- the loopback Bedrock ---------------------------------------------------------------------


class Bedrock:
    """Scripted replies per path, each request's signature checked first: a request that
    fails the check gets the 403 AWS sends, and is recorded in `rejected`."""

    def __init__(self, up: Upstream, secrets: dict[str, str]) -> None:
        self.up = up
        self.secrets = secrets
        self.replies: dict[str, deque[Reply]] = {}
        self.rejected: list[str] = []
        self.checked = 0

    def add(self, path: str, *replies: Reply) -> None:
        if path not in self.replies:
            self.replies[path] = deque()
            self.up.respond("POST", path, self._answer)
        self.replies[path].extend(replies)

    async def _answer(self, received: Received) -> Reply:
        problem = verify(method=received.method, raw_path=received.path, query="", headers=received.headers,
                         body=received.body, secrets=self.secrets, region=REGION, service="bedrock")
        self.checked += 1
        if problem is not None:
            self.rejected.append(problem)
            return Reply(403, {**JSON, "x-amzn-errortype": "InvalidSignatureException:http://internal.amazon.com/"},
                         json.dumps({"message": "The request signature we calculated does not match the "
                                                "signature you provided."}).encode())
        queue = self.replies[received.path]
        return queue.popleft() if len(queue) > 1 else queue[0]

    def sent(self, path: str) -> dict[str, Any]:
        return self.up.last(path).json()


def cassette(name: str) -> list[dict[str, Any]]:
    return yaml.safe_load((FIXTURES / "bedrock" / f"{name}.yaml").read_text())["interactions"]


def recorded(interaction: dict[str, Any], cut: int | None = None) -> Reply:
    """The recorded response; pydantic-ai's cassettes keep JSON bodies decoded (`parsed_body`)."""
    response = interaction["response"]
    headers = {k: v[0] for k, v in response["headers"].items()
               if k not in ("content-length", "transfer-encoding", "connection")}
    if "body" in response:
        body = response["body"]["string"]
        body = body if isinstance(body, bytes) else body.encode()
    else:
        body = json.dumps(response["parsed_body"]).encode()
    return Reply(response["status"]["code"], headers, body, cut_every=cut)


def path_of(interaction: dict[str, Any]) -> str:
    return urlsplit(interaction["request"]["uri"]).path


def model_of(interaction: dict[str, Any]) -> str:
    return unquote(path_of(interaction).split("/")[2])


def recorded_body(interaction: dict[str, Any]) -> dict[str, Any]:
    return json.loads(interaction["request"]["body"])


@pytest.fixture
def aws_env(monkeypatch, tmp_path):
    """Credentials in the environment, and nothing of this machine's AWS setup."""
    import os

    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return monkeypatch


@pytest.fixture
async def up():
    async with Upstream() as server:
        yield server


@pytest.fixture
def bedrock(up):
    return Bedrock(up, {ACCESS_KEY: SECRET_KEY})


@pytest.fixture
async def make(up, aws_env):
    made: list[BedrockProvider] = []

    def factory(**settings: Any) -> BedrockProvider:
        options = {"region": REGION, **settings.pop("options", {})}
        tree = {"name": "aws", "kind": "bedrock", "base_url": up.url, "options": options, **settings}
        provider = BedrockProvider(ProviderSettings.model_validate(tree))
        made.append(provider)
        return provider

    yield factory
    for provider in made:
        await provider.close()


def user(text: str) -> Message:
    return Message(Role.USER, text)


async def collect(provider: BedrockProvider, request: ChatRequest) -> list[StreamChunk]:
    return [chunk async for chunk in provider.stream(request)]


# -- streams, replayed -------------------------------------------------------------------------


@pytest.mark.parametrize("cut", CUTS)
async def test_stream_with_reasoning_and_its_signature(make, bedrock, cut):
    interaction = cassette("converse_stream_thinking")[0]
    bedrock.add(path_of(interaction), recorded(interaction, cut))
    want = EXPECTED["converse_stream_thinking"]
    chunks = await collect(make(), ChatRequest(model=model_of(interaction), messages=[user("Hello")],
                                               reasoning=ReasoningConfig(budget_tokens=1024)))
    assert "".join(c.reasoning_content for c in chunks) == want["reasoning"]
    assert "".join(c.content for c in chunks) == want["text"]
    final = chunks[-1]
    assert final.is_final and sum(c.is_final for c in chunks) == 1
    assert final.stop_reason is StopReason.END_TURN
    assert (final.usage.prompt_tokens, final.usage.completion_tokens, final.usage.total_tokens) == (37, 74, 111)
    thought, text = final.parts
    assert thought.reasoning.text == want["reasoning"] and thought.reasoning.signature == want["signature"]
    assert thought.reasoning.source == "bedrock"
    assert text.text == want["text"]
    assert chunks[0].model == model_of(interaction) and chunks[0].provider == "aws"
    sent = bedrock.sent(path_of(interaction))
    assert sent["additionalModelRequestFields"] == recorded_body(interaction)["additionalModelRequestFields"]
    assert sent["messages"] == recorded_body(interaction)["messages"]
    assert bedrock.rejected == [] and bedrock.checked == 1


@pytest.mark.parametrize("cut", CUTS)
async def test_stream_with_a_tool_call(make, bedrock, cut):
    interaction = cassette("converse_stream_tool_use")[0]
    bedrock.add(path_of(interaction), recorded(interaction, cut))
    want = EXPECTED["converse_stream_tool_use"]
    recorded_request = recorded_body(interaction)
    specs = [tool["toolSpec"] for tool in recorded_request["toolConfig"]["tools"]]
    tools = [ToolDefinition(spec["name"], spec["description"], spec["inputSchema"]["json"]) for spec in specs]
    chunks = await collect(make(), ChatRequest(
        model=model_of(interaction), top_p=0.5, tools=tools, tool_choice=ToolChoice(ToolChoiceMode.AUTO),
        messages=[Message(Role.SYSTEM, "You are a helpful chatbot."),
                  user("What is the temperature of the capital of France?")]))
    assert "".join(c.content for c in chunks) == want["text"]
    deltas = [d for c in chunks for d in c.tool_call_deltas]
    (call,) = want["tool_calls"]
    assert (deltas[0].index, deltas[0].id, deltas[0].name) == (0, call["id"], call["name"])
    assert "".join(d.arguments_delta for d in deltas) == call["input"]
    final = chunks[-1]
    assert [(c.id, c.name, c.arguments) for c in final.tool_calls] == [(call["id"], call["name"], call["input"])]
    assert final.stop_reason is StopReason.TOOL_CALLS and final.raw_stop_reason == "tool_use"
    assert (final.usage.prompt_tokens, final.usage.completion_tokens) == (489, 59)
    sent = bedrock.sent(path_of(interaction))
    # The request Portico builds is the one the recording was made with.
    for key in ("messages", "system", "toolConfig", "inferenceConfig"):
        assert sent[key] == recorded_request[key], key


async def test_a_stream_cut_inside_a_frame_is_a_protocol_error(make, bedrock):
    interaction = cassette("converse_stream_thinking")[0]
    whole = recorded(interaction).body
    bedrock.add(path_of(interaction), Reply(200, EVENT_STREAM, whole[: len(whole) - 30]))
    with pytest.raises(errors.UpstreamProtocol, match="ended the stream inside a frame"):
        await collect(make(), ChatRequest(model=model_of(interaction), messages=[user("Hello")]))


async def test_a_corrupted_frame_is_a_protocol_error(make, bedrock):
    interaction = cassette("converse_stream_thinking")[0]
    body = bytearray(recorded(interaction).body)
    body[200] ^= 0xFF  # inside the second frame: its message CRC no longer matches
    bedrock.add(path_of(interaction), Reply(200, EVENT_STREAM, bytes(body), cut_every=7))
    with pytest.raises(errors.UpstreamProtocol, match="broken event-stream frame"):
        await collect(make(), ChatRequest(model=model_of(interaction), messages=[user("Hello")]))


async def test_a_frame_over_max_event_bytes_is_refused_before_it_is_buffered(make, bedrock):
    interaction = cassette("converse_stream_thinking")[0]
    bedrock.add(path_of(interaction), recorded(interaction))
    with pytest.raises(errors.UpstreamProtocol, match="max_event_bytes=100"):
        await collect(make(max_event_bytes=100), ChatRequest(model=model_of(interaction), messages=[user("Hello")]))


@pytest.mark.parametrize(("name", "reason", "retryable"), [
    ("throttlingException", "ERROR_REASON_UPSTREAM_RATE_LIMITED", True),
    ("modelStreamErrorException", "ERROR_REASON_UPSTREAM_UNAVAILABLE", True),
    ("validationException", "ERROR_REASON_UPSTREAM_BAD_REQUEST", False),
    ("serviceUnavailableException", "ERROR_REASON_UPSTREAM_UNAVAILABLE", True),
    ("internalServerException", "ERROR_REASON_UPSTREAM_UNAVAILABLE", True),
])
async def test_an_exception_mid_stream_ends_the_stream_with_its_error(make, bedrock, name, reason, retryable):
    start = event("messageStart", b'{"role":"assistant"}')
    delta = event("contentBlockDelta", b'{"contentBlockIndex":0,"delta":{"text":"Partial"}}')
    body = start + delta + exception(name, "Something went wrong mid-stream")
    bedrock.add("/model/amazon.nova-pro-v1%3A0/converse-stream", Reply(200, EVENT_STREAM, body, cut_every=3))
    chunks: list[StreamChunk] = []
    with pytest.raises(errors.UpstreamError) as caught:
        async for chunk in make().stream(ChatRequest(model="amazon.nova-pro-v1:0", messages=[user("hi")])):
            chunks.append(chunk)
    assert [c.content for c in chunks] == ["Partial"]
    assert caught.value.reason == reason and caught.value.retryable is retryable
    assert caught.value.metadata["upstream_code"] == name
    assert "mid-stream" in caught.value.message
    assert caught.value.retry_safe is False  # output was produced: never re-sent silently


async def test_an_error_frame_mid_stream_carries_its_code_and_message(make, bedrock):
    from aws_wire import frame

    body = event("messageStart", b'{"role":"assistant"}') + frame(
        {":message-type": "error", ":error-code": "InternalFailure", ":error-message": "Stream broke down"}, b"")
    bedrock.add("/model/amazon.nova-pro-v1%3A0/converse-stream", Reply(200, EVENT_STREAM, body, cut_every=4))
    with pytest.raises(errors.UpstreamUnavailable, match="Stream broke down") as caught:
        await collect(make(), ChatRequest(model="amazon.nova-pro-v1:0", messages=[user("hi")]))
    assert caught.value.metadata["upstream_code"] == "InternalFailure"


async def test_a_stream_answered_as_json_is_a_protocol_error(make, bedrock):
    bedrock.add("/model/amazon.nova-pro-v1%3A0/converse-stream", Reply(200, JSON, b"{}"))
    with pytest.raises(errors.UpstreamProtocol, match=r"vnd\.amazon\.eventstream"):
        await collect(make(), ChatRequest(model="amazon.nova-pro-v1:0", messages=[user("hi")]))


# -- a tool loop with extended thinking --------------------------------------------------------


async def test_two_turn_tool_loop_sends_back_the_reasoning_and_signature(make, bedrock):
    first, second = cassette("converse_tool_with_thinking")
    path = path_of(first)
    bedrock.add(path, recorded(first), recorded(second))
    provider = make()
    tool = ToolDefinition("get_user_country", parameters={"additionalProperties": False, "properties": {},
                                                          "type": "object"})
    question = user("What is the largest city in the user country?")
    thinking = ReasoningConfig(budget_tokens=1024)

    turn1 = await provider.chat(ChatRequest(model=model_of(first), messages=[question], tools=[tool],
                                            tool_choice=ToolChoice(ToolChoiceMode.AUTO), reasoning=thinking))
    assert turn1.stop_reason is StopReason.TOOL_CALLS
    assert [(c.id, c.name, c.arguments) for c in turn1.tool_calls] == [
        ("tooluse_4Lo0VS-FT5yev_-skOCQdw", "get_user_country", "{}")]
    assert turn1.reasoning_content.startswith("The user wants to know the largest city")
    sent1 = bedrock.sent(path)
    assert sent1["additionalModelRequestFields"] == {"thinking": {"type": "enabled", "budget_tokens": 1024}}
    assert sent1["inferenceConfig"]["maxTokens"] > 1024  # room for the answer beyond the budget
    assert sent1["toolConfig"] == recorded_body(first)["toolConfig"]

    turn2 = await provider.chat(ChatRequest(
        model=model_of(first), tools=[tool], tool_choice=ToolChoice(ToolChoiceMode.AUTO), reasoning=thinking,
        messages=[question,
                  Message(Role.ASSISTANT, parts=turn1.parts, tool_calls=turn1.tool_calls),
                  Message(Role.TOOL, "Mexico", tool_call_id=turn1.tool_calls[0].id)],
    ))
    assert turn2.content.startswith("Based on your location, you're in Mexico.")
    assert turn2.stop_reason is StopReason.END_TURN
    sent2 = bedrock.sent(path)
    recorded2 = recorded_body(second)
    # Turn two carries exactly the assistant turn Bedrock returned: the reasoning text and
    # its signature byte for byte, the text, the tool call.
    assert sent2["messages"][1] == recorded2["messages"][1]
    returned = first["response"]["parsed_body"]["output"]["message"]["content"][0]["reasoningContent"]
    assert sent2["messages"][1]["content"][0]["reasoningContent"] == returned
    result = sent2["messages"][2]["content"][0]["toolResult"]
    assert (result["toolUseId"], result["content"]) == ("tooluse_4Lo0VS-FT5yev_-skOCQdw", [{"text": "Mexico"}])
    assert bedrock.rejected == [] and bedrock.checked == 2


async def test_stream_reasoning_goes_back_with_its_signature(make, bedrock):
    interaction = cassette("converse_stream_thinking")[0]
    model = model_of(interaction)
    bedrock.add(path_of(interaction), recorded(interaction, 5))
    bedrock.add(f"/model/{model.replace(':', '%3A')}/converse",
                Reply(200, JSON, json.dumps({"output": {"message": {"role": "assistant", "content": [
                    {"text": "Fine, thanks."}]}}, "stopReason": "end_turn",
                    "usage": {"inputTokens": 5, "outputTokens": 3}}).encode()))
    provider = make()
    final = (await collect(provider, ChatRequest(model=model, messages=[user("Hello")])))[-1]
    await provider.chat(ChatRequest(model=model, messages=[
        user("Hello"), Message(Role.ASSISTANT, parts=final.parts), user("How are you?")]))
    sent = bedrock.sent(f"/model/{model.replace(':', '%3A')}/converse")
    want = EXPECTED["converse_stream_thinking"]
    assert sent["messages"][1]["content"] == [
        {"reasoningContent": {"reasoningText": {"text": want["reasoning"], "signature": want["signature"]}}},
        {"text": want["text"]},
    ]


async def test_reasoning_of_another_dialect_is_not_sent(make, bedrock):
    from portico_server.domain import ReasoningPart

    bedrock.add("/model/amazon.nova-pro-v1%3A0/converse", Reply(200, JSON, json.dumps(
        {"output": {"message": {"content": [{"text": "ok"}]}}, "stopReason": "end_turn", "usage": {}}).encode()))
    await make().chat(ChatRequest(model="amazon.nova-pro-v1:0", messages=[
        user("hi"),
        Message(Role.ASSISTANT, parts=[ContentPart(reasoning=ReasoningPart("x", "sig", source="anthropic")),
                                       ContentPart(text="hello")]),
        user("again")]))
    assert bedrock.sent("/model/amazon.nova-pro-v1%3A0/converse")["messages"][1]["content"] == [{"text": "hello"}]


# -- request mapping ---------------------------------------------------------------------------

OK = Reply(200, JSON, json.dumps({"output": {"message": {"role": "assistant", "content": [{"text": "ok"}]}},
                                  "stopReason": "end_turn",
                                  "usage": {"inputTokens": 10, "outputTokens": 2, "cacheReadInputTokens": 900,
                                            "cacheWriteInputTokens": 100, "totalTokens": 1012}}).encode())
CLAUDE = "anthropic.claude-sonnet-4-20250514-v1:0"
CLAUDE_PATH = "/model/anthropic.claude-sonnet-4-20250514-v1%3A0/converse"


async def test_cache_breakpoints_become_cache_points_and_cached_tokens_are_counted(make, bedrock):
    bedrock.add(CLAUDE_PATH, OK)
    answer = await make().chat(ChatRequest(
        model=CLAUDE,
        messages=[Message(Role.SYSTEM, "Long instructions", cache=CacheBreakpoint()),
                  Message(Role.USER, parts=[ContentPart(text="A long document", cache=CacheBreakpoint(3600)),
                                            ContentPart(text="The question")])],
        tools=[ToolDefinition("a"), ToolDefinition("b", cache=CacheBreakpoint())],
    ))
    sent = bedrock.sent(CLAUDE_PATH)
    point = {"cachePoint": {"type": "default"}}
    assert sent["system"] == [{"text": "Long instructions"}, point]
    assert sent["messages"][0]["content"] == [{"text": "A long document"}, point, {"text": "The question"}]
    assert [next(iter(tool)) for tool in sent["toolConfig"]["tools"]] == ["toolSpec", "toolSpec", "cachePoint"]
    usage = answer.usage
    assert (usage.cache_read_tokens, usage.cache_creation_tokens) == (900, 100)
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (1010, 2, 1012)


async def test_images_and_documents_go_inline(make, bedrock):
    bedrock.add(CLAUDE_PATH, OK)
    png = b"\x89PNG\r\n\x1a\n" + b"\0" * 16
    pdf = b"%PDF-1.7 tiny"
    await make().chat(ChatRequest(model=CLAUDE, messages=[Message(Role.USER, parts=[
        ContentPart(text="Compare"),
        ContentPart(media=MediaPart(data=png)),
        ContentPart(media=MediaPart(mime_type="application/pdf", data=pdf)),
        ContentPart(media=MediaPart(uri="data:text/csv;base64," + base64.b64encode(b"a,b\n1,2").decode())),
    ])]))
    content = bedrock.sent(CLAUDE_PATH)["messages"][0]["content"]
    assert content[1] == {"image": {"format": "png", "source": {"bytes": base64.b64encode(png).decode()}}}
    assert content[2] == {"document": {"format": "pdf", "name": "document-3",
                                       "source": {"bytes": base64.b64encode(pdf).decode()}}}
    assert content[3]["document"]["format"] == "csv"


async def test_a_url_it_cannot_fetch_is_refused_unsent(make, bedrock):
    with pytest.raises(errors.InvalidRequest) as caught:
        await make().chat(ChatRequest(model=CLAUDE, messages=[Message(Role.USER, parts=[
            ContentPart(media=MediaPart(uri="https://example.com/a.png"))])]))
    assert caught.value.violations[0][0] == "messages[0].parts[0].media.uri"
    assert bedrock.checked == 0


@pytest.mark.parametrize(("model", "reasoning", "fields", "max_tokens"), [
    (CLAUDE, ReasoningConfig(effort=ReasoningEffort.HIGH), {"thinking": {"type": "enabled", "budget_tokens": 16384}},
     16384 + 4096),
    (CLAUDE, ReasoningConfig(effort=ReasoningEffort.LOW, budget_tokens=2000),
     {"thinking": {"type": "enabled", "budget_tokens": 2000}}, 2000 + 4096),
    ("us.amazon.nova-2-lite-v1:0", ReasoningConfig(effort=ReasoningEffort.MEDIUM),
     {"reasoningConfig": {"type": "enabled", "maxReasoningEffort": "medium"}}, None),
    ("openai.gpt-oss-120b-1:0", ReasoningConfig(budget_tokens=1000), {"reasoning_effort": "low"}, None),
])
async def test_reasoning_controls_map_to_each_family(make, bedrock, model, reasoning, fields, max_tokens):
    path = f"/model/{model.replace(':', '%3A')}/converse"
    bedrock.add(path, OK)
    request = ChatRequest(model=model, messages=[user("think")], reasoning=reasoning)
    await make().chat(request)
    sent = bedrock.sent(path)
    assert sent["additionalModelRequestFields"] == fields
    assert sent.get("inferenceConfig", {}).get("maxTokens") == max_tokens
    assert request.max_tokens is None  # the caller's request is left as it was


async def test_reasoning_on_a_model_without_it_is_refused_unsent(make, bedrock):
    with pytest.raises(errors.ModelFeatureUnsupported, match="no reasoning control"):
        await make().chat(ChatRequest(model="amazon.nova-micro-v1:0", messages=[user("x")],
                                      reasoning=ReasoningConfig(effort=ReasoningEffort.LOW)))
    with pytest.raises(errors.InvalidRequest, match="thinking budget"):
        await make().chat(ChatRequest(model=CLAUDE, messages=[user("x")], max_tokens=1000,
                                      reasoning=ReasoningConfig(budget_tokens=1024)))
    assert bedrock.checked == 0


async def test_guardrail_from_options_and_passthrough(make, bedrock):
    bedrock.add(CLAUDE_PATH, OK, OK)
    provider = make(options={"guardrail_identifier": "gr-abc123", "guardrail_version": "2",
                             "guardrail_trace": "enabled"})
    await provider.chat(ChatRequest(model=CLAUDE, messages=[user("x")], temperature=0.2, stop=["END"]))
    sent = bedrock.sent(CLAUDE_PATH)
    assert sent["guardrailConfig"] == {"guardrailIdentifier": "gr-abc123", "guardrailVersion": "2",
                                       "trace": "enabled"}
    assert sent["inferenceConfig"] == {"temperature": 0.2, "stopSequences": ["END"]}
    await provider.chat(ChatRequest(model=CLAUDE, messages=[user("x")], passthrough={
        "guardrailConfig": {"guardrailIdentifier": "gr-other", "guardrailVersion": "DRAFT"},
        "additionalModelRequestFields": {"top_k": 40}, "inferenceConfig": {"maxTokens": 77}}))
    sent = bedrock.sent(CLAUDE_PATH)
    assert sent["guardrailConfig"] == {"guardrailIdentifier": "gr-other", "guardrailVersion": "DRAFT"}
    assert sent["additionalModelRequestFields"] == {"top_k": 40}
    assert sent["inferenceConfig"] == {"maxTokens": 77}


def test_passthrough_may_not_replace_the_conversation(aws_env):
    provider = BedrockProvider(ProviderSettings(name="aws", kind="bedrock", options={"region": REGION}))
    with pytest.raises(errors.InvalidRequest) as caught:
        provider.check_passthrough({"messages": [], "toolConfig": {}, "system": []})
    assert {field for field, _ in caught.value.violations} == {
        "passthrough_json.messages", "passthrough_json.toolConfig", "passthrough_json.system"}


async def test_structured_output_through_a_forced_tool(make, bedrock):
    from portico_server.domain import ResponseFormat, ResponseFormatType

    bedrock.add(CLAUDE_PATH, Reply(200, JSON, json.dumps({"output": {"message": {"content": [
        {"toolUse": {"toolUseId": "t1", "name": "city", "input": {"name": "Paris"}}}]}},
        "stopReason": "tool_use", "usage": {}}).encode()))
    answer = await make().chat(ChatRequest(model=CLAUDE, messages=[user("capital of France?")],
                                           response_format=ResponseFormat(ResponseFormatType.JSON_SCHEMA, "city", {
                                               "type": "object", "properties": {"name": {"type": "string"}}})))
    assert json.loads(answer.content) == {"name": "Paris"} and answer.tool_calls == []
    assert answer.stop_reason is StopReason.END_TURN
    assert bedrock.sent(CLAUDE_PATH)["toolConfig"]["toolChoice"] == {"tool": {"name": "city"}}


async def test_tool_choice_none_sends_no_tools(make, bedrock):
    bedrock.add(CLAUDE_PATH, OK)
    await make().chat(ChatRequest(model=CLAUDE, messages=[user("x")], tools=[ToolDefinition("a")],
                                  tool_choice=ToolChoice(ToolChoiceMode.NONE)))
    assert "toolConfig" not in bedrock.sent(CLAUDE_PATH)
    with pytest.raises(errors.InvalidRequest, match="'none'"):
        await make().chat(ChatRequest(model=CLAUDE, tools=[ToolDefinition("a")],
                                      tool_choice=ToolChoice(ToolChoiceMode.NONE), messages=[
            user("x"), Message(Role.ASSISTANT, tool_calls=[ToolCall("c1", "a", "{}")]),
            Message(Role.TOOL, "1", tool_call_id="c1")]))


# -- errors ------------------------------------------------------------------------------------


async def test_recorded_throttling_is_rate_limited(make, bedrock):
    (interaction,) = cassette("error_throttling")
    bedrock.add(path_of(interaction), recorded(interaction))
    with pytest.raises(errors.UpstreamRateLimited) as caught:
        await make().chat(ChatRequest(model=model_of(interaction), messages=[user("hello")]))
    assert caught.value.metadata["upstream_code"] == "ThrottlingException"
    assert "Rate exceeded" in caught.value.message


async def test_recorded_invalid_model_on_a_stream_is_a_bad_request(make, bedrock):
    (interaction,) = cassette("error_invalid_model_on_stream")
    bedrock.add(path_of(interaction), recorded(interaction))
    with pytest.raises(errors.UpstreamBadRequest, match="model identifier is invalid"):
        await collect(make(), ChatRequest(model=model_of(interaction), messages=[user("hello")]))


@pytest.mark.parametrize(("status", "name", "message", "cls", "retry_safe"), [
    (429, "ThrottlingException", "Too many requests, please wait before trying again.",
     errors.UpstreamRateLimited, True),
    (429, "ModelNotReadyException", "Model is not ready for inference.", errors.UpstreamUnavailable, True),
    (400, "ValidationException", "Input is too long for requested model.", errors.ContextLengthExceeded, True),
    (400, "ValidationException", "Malformed input request", errors.UpstreamBadRequest, True),
    (400, "ServiceQuotaExceededException", "Your request exceeds the service quota for your account.",
     errors.UpstreamRateLimited, True),
    (403, "AccessDeniedException", "You don't have access to the model with the specified model ID.",
     errors.UpstreamAuth, True),
    (404, "ResourceNotFoundException", "Model not found", errors.UpstreamModelNotFound, True),
    (408, "ModelTimeoutException", "Model timed out", errors.UpstreamTimeout, False),
    (424, "ModelErrorException", "The model failed", errors.UpstreamUnavailable, False),
    (500, "InternalServerException", "Internal error", errors.UpstreamUnavailable, False),
    (503, "ServiceUnavailableException", "Service unavailable", errors.UpstreamUnavailable, True),
])
async def test_error_responses_map_into_the_error_table(make, bedrock, status, name, message, cls, retry_safe):
    bedrock.add(CLAUDE_PATH, Reply(status, {**JSON, "x-amzn-errortype": f"{name}:http://internal.amazon.com/",
                                            "x-amzn-requestid": "req-1"},
                                   json.dumps({"message": message}).encode()))
    with pytest.raises(errors.UpstreamError) as caught:
        await make().chat(ChatRequest(model=CLAUDE, messages=[user("x")]))
    assert type(caught.value) is cls
    assert caught.value.retry_safe is retry_safe
    assert caught.value.metadata["upstream_code"] == name and caught.value.metadata["request_id"] == "req-1"
    assert message in caught.value.message


# -- credentials and signing ---------------------------------------------------------------------


async def test_a_wrong_secret_is_refused_as_aws_would(make, up):
    strict = Bedrock(up, {ACCESS_KEY: SECRET_KEY + "-other"})
    strict.add(CLAUDE_PATH, OK)
    with pytest.raises(errors.UpstreamAuth) as caught:
        await make().chat(ChatRequest(model=CLAUDE, messages=[user("x")]))
    assert strict.rejected == ["signature mismatch"]
    assert caught.value.metadata["upstream_code"] == "InvalidSignatureException"


async def test_temporary_credentials_sign_with_their_token_which_never_leaks(make, bedrock, aws_env):
    aws_env.setenv("AWS_SESSION_TOKEN", SESSION_TOKEN)
    bedrock.add(CLAUDE_PATH, OK)
    bedrock.add("/model/amazon.nova-pro-v1%3A0/converse", Reply(400, {"x-amzn-errortype": "ValidationException"},
                                                                json.dumps({"message": f"bad {SECRET_KEY} "
                                                                                       f"{SESSION_TOKEN}"}).encode()))
    provider = make()
    await provider.chat(ChatRequest(model=CLAUDE, messages=[user("x")]))
    assert bedrock.up.last(CLAUDE_PATH).headers["x-amz-security-token"] == SESSION_TOKEN
    assert bedrock.rejected == []
    with pytest.raises(errors.UpstreamBadRequest) as caught:
        await provider.chat(ChatRequest(model="amazon.nova-pro-v1:0", messages=[user("x")]))
    assert SECRET_KEY not in caught.value.message and SESSION_TOKEN not in caught.value.message


async def test_credentials_from_a_named_profile(make, up, aws_env, tmp_path):
    aws_env.delenv("AWS_ACCESS_KEY_ID")
    aws_env.delenv("AWS_SECRET_ACCESS_KEY")
    (tmp_path / "credentials").write_text(
        "[default]\naws_access_key_id = AKIADEFAULTEXAMPLE\naws_secret_access_key = default-secret\n\n"
        "[bedrock-team]\naws_access_key_id = AKIATEAMEXAMPLE00\naws_secret_access_key = team-secret\n")
    server = Bedrock(up, {"AKIATEAMEXAMPLE00": "team-secret"})
    server.add(CLAUDE_PATH, OK)
    await make(options={"profile": "bedrock-team"}).chat(ChatRequest(model=CLAUDE, messages=[user("x")]))
    assert server.rejected == [] and server.checked == 1


async def test_no_credentials_anywhere_is_a_clear_precondition(make, up, aws_env):
    aws_env.delenv("AWS_ACCESS_KEY_ID")
    aws_env.delenv("AWS_SECRET_ACCESS_KEY")
    provider = make()
    with pytest.raises(errors.UpstreamAuth, match="no AWS credentials found"):
        await provider.chat(ChatRequest(model=CLAUDE, messages=[user("x")]))
    assert up.connections == 0
    assert await provider.health_check() is False


async def test_web_identity_credentials_come_from_sts_off_the_loop(make, up, aws_env, tmp_path):
    """AssumeRoleWithWebIdentity against a loopback STS; concurrent first calls share one
    resolution. The STS server runs on this test's event loop, so a resolution that blocked
    the loop would never get its answer: the call finishing shows it ran off the loop."""
    aws_env.delenv("AWS_ACCESS_KEY_ID")
    aws_env.delenv("AWS_SECRET_ACCESS_KEY")
    token_file = tmp_path / "token"
    token_file.write_text("eyJhbGciOiJSUzI1NiJ9.web-identity-token.signature")
    aws_env.setenv("AWS_WEB_IDENTITY_TOKEN_FILE", str(token_file))
    aws_env.setenv("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/bedrock-caller")
    aws_env.setenv("AWS_ROLE_SESSION_NAME", "portico")
    aws_env.setenv("AWS_ENDPOINT_URL_STS", up.url)
    aws_env.setenv("AWS_REGION", REGION)
    sts_calls: list[Received] = []

    async def sts(received: Received) -> Reply:
        sts_calls.append(received)
        return Reply(200, {"content-type": "text/xml"}, STS_ANSWER.encode())

    up.respond("POST", "/", sts)
    server = Bedrock(up, {"ASIASTSEXAMPLE0000": "sts-secret-key"})
    server.add(CLAUDE_PATH, OK)
    provider = make()
    await asyncio.gather(*(provider.chat(ChatRequest(model=CLAUDE, messages=[user("x")])) for _ in range(5)))
    assert len(sts_calls) == 1
    assert b"AssumeRoleWithWebIdentity" in sts_calls[0].body
    assert server.rejected == [] and server.checked == 5
    assert up.last(CLAUDE_PATH).headers["x-amz-security-token"] == "sts-session-token"


async def test_credentials_near_expiry_are_refreshed_once_before_use(make, up, aws_env, tmp_path):
    """The first STS answer expires within botocore's refresh window (15 minutes), so the
    next use refreshes first, in one STS call for all the calls waiting on it; the fresh
    credentials then sign every call."""
    import datetime

    aws_env.delenv("AWS_ACCESS_KEY_ID")
    aws_env.delenv("AWS_SECRET_ACCESS_KEY")
    token_file = tmp_path / "token"
    token_file.write_text("eyJhbGciOiJSUzI1NiJ9.web-identity-token.signature")
    aws_env.setenv("AWS_WEB_IDENTITY_TOKEN_FILE", str(token_file))
    aws_env.setenv("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/bedrock-caller")
    aws_env.setenv("AWS_ENDPOINT_URL_STS", up.url)
    aws_env.setenv("AWS_REGION", REGION)
    now = datetime.datetime.now(datetime.UTC)
    answers = [(f"ASIASTSEXAMPLE000{n}", f"secret-{n}", f"token-{n}", now + lifetime)
               for n, lifetime in ((1, datetime.timedelta(minutes=12)), (2, datetime.timedelta(hours=2)))]
    calls = 0

    async def sts(received: Received) -> Reply:
        nonlocal calls
        key, secret, token, expires = answers[min(calls, 1)]
        calls += 1
        body = (STS_ANSWER.replace("ASIASTSEXAMPLE0000", key).replace("sts-secret-key", secret)
                .replace("sts-session-token", token)
                .replace("2099-01-01T00:00:00Z", expires.strftime("%Y-%m-%dT%H:%M:%SZ")))
        return Reply(200, {"content-type": "text/xml"}, body.encode())

    up.respond("POST", "/", sts)
    server = Bedrock(up, {key: secret for key, secret, _, _ in answers})
    server.add(CLAUDE_PATH, OK)
    provider = make()
    signers = []

    async def chats(n: int) -> None:
        await asyncio.gather(*(provider.chat(ChatRequest(model=CLAUDE, messages=[user("x")])) for _ in range(n)))
        signers.append({r.headers["authorization"].split("Credential=")[1].split("/")[0]
                        for r in [r for r in up.received if r.path == CLAUDE_PATH][-n:]})

    await chats(1)
    assert calls == 1 and signers[-1] == {"ASIASTSEXAMPLE0001"}
    await chats(4)
    assert calls == 2 and signers[-1] == {"ASIASTSEXAMPLE0002"}
    await chats(3)
    assert calls == 2 and signers[-1] == {"ASIASTSEXAMPLE0002"}
    assert server.rejected == []


STS_ANSWER = """<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleWithWebIdentityResult>
    <Credentials>
      <AccessKeyId>ASIASTSEXAMPLE0000</AccessKeyId>
      <SecretAccessKey>sts-secret-key</SecretAccessKey>
      <SessionToken>sts-session-token</SessionToken>
      <Expiration>2099-01-01T00:00:00Z</Expiration>
    </Credentials>
    <AssumedRoleUser>
      <Arn>arn:aws:sts::123456789012:assumed-role/bedrock-caller/portico</Arn>
      <AssumedRoleId>AROAEXAMPLE:portico</AssumedRoleId>
    </AssumedRoleUser>
  </AssumeRoleWithWebIdentityResult>
  <ResponseMetadata><RequestId>00000000-0000-0000-0000-000000000000</RequestId></ResponseMetadata>
</AssumeRoleWithWebIdentityResponse>"""


async def test_model_ids_and_arns_are_signed_as_sent(make, bedrock):
    arn = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-sonnet-4-20250514-v1:0"
    path = "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2F" \
           "us.anthropic.claude-sonnet-4-20250514-v1%3A0/converse"
    bedrock.add(path, OK)
    await make().chat(ChatRequest(model=arn, messages=[user("x")]))
    assert bedrock.rejected == [] and bedrock.checked == 1


async def test_a_bedrock_api_key_is_sent_as_a_bearer_token(make, bedrock, up):
    up.add("POST", CLAUDE_PATH, OK)
    await make(api_key="ABSKQmVkcm9ja0FQSUtleS1leGFtcGxl").chat(ChatRequest(model=CLAUDE, messages=[user("x")]))
    headers = up.last(CLAUDE_PATH).headers
    assert headers["authorization"] == "Bearer ABSKQmVkcm9ja0FQSUtleS1leGFtcGxl"
    assert "x-amz-date" not in headers


def test_a_region_is_required(aws_env):
    with pytest.raises(ConfigError, match="region"):
        registry.create(ProviderSettings(name="aws", kind="bedrock"), "providers[0]")
    aws_env.setenv("AWS_REGION", "eu-central-1")
    provider = registry.create(ProviderSettings(name="aws", kind="bedrock"), "providers[0]")
    assert provider.base_url == "https://bedrock-runtime.eu-central-1.amazonaws.com"


# -- tokens, embeddings, capabilities --------------------------------------------------------------


async def test_count_tokens_asks_bedrock_and_falls_back_to_the_estimate(make, bedrock):
    bedrock.add("/model/anthropic.claude-sonnet-4-20250514-v1%3A0/count-tokens",
                Reply(200, JSON, b'{"inputTokens": 42}'))
    provider = make()
    request = ChatRequest(model="us." + CLAUDE, messages=[Message(Role.SYSTEM, "Be brief"), user("Hello there")])
    count = await provider.count_tokens(request)
    assert (count.tokens, count.source) == (42, Source.PROVIDER)
    sent = bedrock.sent("/model/anthropic.claude-sonnet-4-20250514-v1%3A0/count-tokens")
    assert sent == {"input": {"converse": {"messages": [{"role": "user", "content": [{"text": "Hello there"}]}],
                                           "system": [{"text": "Be brief"}]}}}
    unknown = "/model/example.new-model-v1%3A0/count-tokens"
    bedrock.add(unknown, Reply(400, {"x-amzn-errortype": "ValidationException"},
                               b'{"message":"The provided model doesn\'t support counting tokens."}'))
    for _ in range(2):
        estimate = await provider.count_tokens(ChatRequest(model="example.new-model-v1:0", messages=[user("hi")]))
        assert estimate.source is Source.ESTIMATE and estimate.tokens > 0
    assert len([r for r in bedrock.up.received if r.path == unknown]) == 1  # remembered
    nova = await provider.count_tokens(ChatRequest(model="amazon.nova-micro-v1:0", messages=[user("hi")]))
    assert nova.source is Source.ESTIMATE


async def test_titan_embeddings_one_call_per_text(make, bedrock):
    path = "/model/amazon.titan-embed-text-v2%3A0/invoke"
    seen: list[str] = []
    original = bedrock._answer

    async def answer(received: Received) -> Reply:
        reply = await original(received)
        if reply.status == 200:
            text = received.json()["inputText"]
            seen.append(text)
            return Reply(200, {**JSON, "x-amzn-bedrock-input-token-count": str(len(text))},
                         json.dumps({"embedding": [float(len(text)), 0.5, -1.0], "inputTextTokenCount": 1}).encode())
        return reply

    bedrock.add(path, OK)
    bedrock.up.respond("POST", path, answer)
    result = await make().embed(EmbedRequest(model="amazon.titan-embed-text-v2:0", inputs=["a", "bb", "ccc"],
                                             dimensions=256))
    assert [unpack(v) for v in result.vectors] == [[1.0, 0.5, -1.0], [2.0, 0.5, -1.0], [3.0, 0.5, -1.0]]
    assert sorted(seen) == ["a", "bb", "ccc"] and result.usage.prompt_tokens == 6
    assert bedrock.sent(path)["dimensions"] == 256
    assert bedrock.rejected == []


async def test_cohere_embeddings_in_batches(make, bedrock):
    path = "/model/cohere.embed-english-v3/invoke"
    bedrock.add(path, Reply(200, JSON, json.dumps({"id": "e1", "response_type": "embeddings_floats",
                                                   "texts": ["x", "y"],
                                                   "embeddings": [[0.25, 0.5], [0.75, 1.0]]}).encode()))
    result = await make(options={"cohere_input_type": "search_query"}).embed(
        EmbedRequest(model="cohere.embed-english-v3", inputs=["x", "y"]))
    assert [unpack(v) for v in result.vectors] == [[0.25, 0.5], [0.75, 1.0]]
    assert bedrock.sent(path) == {"texts": ["x", "y"], "input_type": "search_query"}


async def test_embedding_with_a_chat_model_is_refused(make, bedrock):
    with pytest.raises(errors.CapabilityUnsupported):
        await make().embed(EmbedRequest(model=CLAUDE, inputs=["x"]))
    with pytest.raises(errors.InvalidRequest, match="256, 512 or 1024"):
        await make().embed(EmbedRequest(model="amazon.titan-embed-text-v2:0", inputs=["x"], dimensions=300))


def test_capabilities_from_the_table(aws_env):
    provider = BedrockProvider(ProviderSettings(name="aws", kind="bedrock", options={"region": REGION}))
    claude = provider.known_capabilities("us." + CLAUDE)
    assert claude is not None and (claude.context_window, claude.max_output_tokens) == (200_000, 64_000)
    assert claude.supports_tools and claude.supports_vision and claude.source is Source.BUILT_IN
    titan = provider.known_capabilities("amazon.titan-embed-text-v2:0")
    assert titan is not None and titan.supports_embeddings and not titan.supports_streaming
    assert provider.known_capabilities("example.unknown-v1:0") is None
    assert provider.supports_embeddings()


# -- through a real gateway --------------------------------------------------------------------------


@pytest.fixture
async def gw(up, aws_env):
    config = {"providers": [{"name": "aws", "kind": "bedrock", "base_url": up.url, "options": {"region": REGION},
                             "models": [CLAUDE], "default_model": CLAUDE, "retry": {"enabled": False}}]}
    async with running_gateway(config) as gateway:
        yield gateway


async def test_grpc_stream_replays_a_recorded_stream(gw, bedrock):
    interaction = cassette("converse_stream_thinking")[0]
    bedrock.add(path_of(interaction), recorded(interaction, 13))
    chunks = [c async for c in gw.stub.StreamChat(pb.ChatRequest(
        provider="aws", model=model_of(interaction), messages=[t.Message(role=t.ROLE_USER, content="Hello")]))]
    want = EXPECTED["converse_stream_thinking"]
    assert "".join(c.reasoning_content for c in chunks) == want["reasoning"]
    assert "".join(c.content for c in chunks) == want["text"]
    final = chunks[-1]
    assert final.final and final.stop_reason == t.STOP_REASON_END_TURN
    assert (final.usage.prompt_token_count, final.usage.completion_token_count) == (37, 74)
    assert bedrock.rejected == []


async def test_grpc_throttling_is_resource_exhausted(gw, bedrock):
    bedrock.add(CLAUDE_PATH, Reply(429, {**JSON, "x-amzn-errortype": "ThrottlingException:http://internal/"},
                                   b'{"message":"Too many requests"}'))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await gw.stub.Chat(pb.ChatRequest(provider="aws", messages=[t.Message(role=t.ROLE_USER, content="x")]))
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    details = rpc_details(caught.value)
    assert details["reason"] == "ERROR_REASON_UPSTREAM_RATE_LIMITED"
    assert details["metadata"]["upstream_code"] == "ThrottlingException"


async def test_grpc_lists_the_provider(gw):
    listed = await gw.stub.ListProviders(pb.ListProvidersRequest())
    (aws,) = [p for p in listed.providers if p.name == "aws"]
    assert aws.kind == "bedrock"


async def test_grpc_capabilities_and_token_count(gw, bedrock):
    caps = (await gw.stub.GetCapabilities(pb.GetCapabilitiesRequest(provider="aws", model=CLAUDE))).capabilities
    assert (caps.context_window_tokens, caps.max_output_tokens) == (200_000, 64_000)
    assert caps.supports_tools and caps.supports_streaming and not caps.supports_embeddings
    assert caps.source == pb.CAPABILITY_SOURCE_BUILT_IN
    bedrock.add("/model/anthropic.claude-sonnet-4-20250514-v1%3A0/count-tokens",
                Reply(200, JSON, b'{"inputTokens": 12}'))
    counted = await gw.stub.CountTokens(pb.CountTokensRequest(
        provider="aws", messages=[t.Message(role=t.ROLE_USER, content="How many?")]))
    assert (counted.token_count, counted.source) == (12, pb.TOKEN_COUNT_SOURCE_PROVIDER)
    assert bedrock.rejected == []


async def test_redacted_reasoning_streams_back_whole(make, bedrock):
    redacted = base64.b64encode(b"opaque reasoning payload").decode()
    body = b"".join([
        event("messageStart", b'{"role":"assistant"}'),
        event("contentBlockDelta", json.dumps({"contentBlockIndex": 0, "delta": {"reasoningContent": {
            "redactedContent": redacted[:10]}}}).encode()),
        event("contentBlockDelta", json.dumps({"contentBlockIndex": 0, "delta": {"reasoningContent": {
            "redactedContent": redacted[10:]}}}).encode()),
        event("contentBlockStop", b'{"contentBlockIndex":0}'),
        event("contentBlockDelta", b'{"contentBlockIndex":1,"delta":{"text":"Done."}}'),
        event("messageStop", b'{"stopReason":"end_turn"}'),
        event("metadata", b'{"usage":{"inputTokens":3,"outputTokens":4,"totalTokens":7}}'),
    ])
    bedrock.add("/model/anthropic.claude-sonnet-4-20250514-v1%3A0/converse-stream",
                Reply(200, EVENT_STREAM, body, cut_every=2))
    final = (await collect(make(), ChatRequest(model=CLAUDE, messages=[user("x")])))[-1]
    thought, text = final.parts
    assert thought.reasoning.redacted == redacted and thought.reasoning.source == "bedrock"
    assert text.text == "Done."

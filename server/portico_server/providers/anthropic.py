"""`anthropic`: Claude through Anthropic's native Messages API (`POST /v1/messages`).

Requests: system messages are lifted into `system`; assistant tool calls become
`tool_use` blocks and tool messages `tool_result` blocks; consecutive messages that map to
the same Anthropic role are merged into one turn, because the API wants tool results for
one assistant turn together in the next user turn. `max_tokens` is required upstream, so
a request without one gets a default per model (see `default_max_tokens`).

Structured output (`response_format`) uses a tool: Portico adds one tool whose input
schema is the response schema and makes the model call it, then hands the tool's input
back as the answer's text. This works on every Claude model, needs no beta header, and
streams as ordinary content deltas.

Streams are server-sent events: `message_start`, `content_block_start/delta/stop`
(`text_delta`, `thinking_delta`, `input_json_delta`, `signature_delta`), `message_delta`
(stop reason, usage), `message_stop`, `ping`, and `error`, which may arrive after HTTP 200.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime
import json
import re
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal
from urllib.parse import quote

import httpx
from httpx_sse import EventSource, SSEError
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from ..config import ProviderSettings
from ..domain import (
    Capabilities,
    ChatRequest,
    CompletionResponse,
    ImagePart,
    Message,
    ResponseFormatType,
    Role,
    Source,
    StopReason,
    StreamChunk,
    TokenCount,
    ToolCall,
    ToolChoiceMode,
    Usage,
)
from ..errors import (
    ContextLengthExceeded,
    InvalidRequest,
    PorticoError,
    UpstreamError,
    UpstreamProtocol,
    UpstreamQuotaExceeded,
    UpstreamTimeout,
    parse_retry_after,
    upstream_error,
)
from . import registry
from .base import merge_passthrough
from .http import HttpProvider
from .streaming import ToolCallAssembler

API_VERSION = "2023-06-01"
DEFAULT_BASE_URL = "https://api.anthropic.com"
#: The Messages API refuses request bodies over 32 MB.
MAX_REQUEST_BYTES = 32 * 1024 * 1024
#: A request without `max_tokens` gets the model's output limit, but at most this: a
#: bigger default makes a non-streamed answer risk running into the upstream's timeouts.
DEFAULT_MAX_TOKENS_CAP = 16_384
#: The output limit assumed for a model the table does not know.
UNKNOWN_MODEL_MAX_OUTPUT = 8_192

_MESSAGES = "/v1/messages"
_COUNT_TOKENS = "/v1/messages/count_tokens"
#: The parts of a Messages body the count-tokens endpoint takes.
_COUNTED_FIELDS = ("model", "messages", "system", "tools", "tool_choice", "thinking")
_ANSWER_TOOL_DESCRIPTION = (
    "Give your final answer by calling this tool. Its input is the answer, and nothing "
    "else is shown to the user."
)
#: After `message_stop`, how long to wait for the body's end so the connection can go
#: back to the pool; a well-behaved server ends it at once.
_DRAIN_SECONDS = 1.0
#: Bound on model lookups (discovery, health probe), which no caller's deadline bounds.
_LOOKUP_SECONDS = 10.0


class AnthropicOptions(BaseModel):
    """`options:` of an `anthropic` provider."""

    model_config = ConfigDict(extra="forbid")

    #: The `anthropic-version` header.
    version: str = API_VERSION
    #: Beta features to switch on, sent as one `anthropic-beta` header.
    betas: list[str] = Field(default_factory=list)
    #: `max_tokens` for requests that give none; unset: per model (see the README).
    default_max_tokens: int | None = Field(default=None, gt=0)
    #: Ask `GET /v1/models/{id}` for capabilities before using the built-in table.
    discovery: bool = True
    #: `provider`: the count-tokens endpoint; `estimate`: Portico's heuristic (for
    #: Anthropic-compatible servers that lack the endpoint).
    token_counting: Literal["provider", "estimate"] = "provider"


# -- the built-in table of known models ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class ModelFacts:
    context_window: int
    max_output_tokens: int
    vision: bool = True


#: By family name: a model id without its date snapshot or `-latest`. Every Claude model
#: since Claude 3 takes tools.
KNOWN_MODELS: dict[str, ModelFacts] = {
    "claude-opus-4-5": ModelFacts(200_000, 64_000),
    "claude-sonnet-4-5": ModelFacts(200_000, 64_000),
    "claude-haiku-4-5": ModelFacts(200_000, 64_000),
    "claude-opus-4-1": ModelFacts(200_000, 32_000),
    "claude-opus-4": ModelFacts(200_000, 32_000),
    "claude-sonnet-4": ModelFacts(200_000, 64_000),
    "claude-3-7-sonnet": ModelFacts(200_000, 64_000),
    "claude-3-5-sonnet": ModelFacts(200_000, 8_192),
    # Launched text-only.
    "claude-3-5-haiku": ModelFacts(200_000, 8_192, vision=False),
    "claude-3-opus": ModelFacts(200_000, 4_096),
    "claude-3-sonnet": ModelFacts(200_000, 4_096),
    "claude-3-haiku": ModelFacts(200_000, 4_096),
}

_SNAPSHOT = re.compile(r"-(\d{8}|latest)$")


def model_facts(model: str) -> ModelFacts | None:
    """The table's entry for a model id, snapshot (`-20250514`), `-latest` or `-0` alias."""
    family = _SNAPSHOT.sub("", model.strip().lower())
    facts = KNOWN_MODELS.get(family)
    if facts is None and family.endswith("-0"):
        facts = KNOWN_MODELS.get(family[:-2])  # `claude-sonnet-4-0` names `claude-sonnet-4`
    return facts


def _capabilities(model: str, facts: ModelFacts | None, source: Source) -> Capabilities:
    return Capabilities(
        model=model,
        context_window=facts.context_window if facts else 0,
        max_output_tokens=facts.max_output_tokens if facts else 0,
        supports_tools=True,
        supports_streaming=True,
        supports_embeddings=False,
        supports_vision=facts.vision if facts else True,
        supports_response_format=True,
        source=source,
    )


# -- errors --------------------------------------------------------------------------------

#: The HTTP status each documented error type comes with (an `error` event mid-stream
#: carries only the type).
_STATUS_OF_ERROR_TYPE = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}
#: Besides the shared hints: "input length and `max_tokens` exceed context limit: ...".
_CONTEXT_LIMIT = re.compile(r"exceeds? (the )?context limit", re.IGNORECASE)
_RATE_LIMITS = ("requests", "tokens", "input-tokens", "output-tokens")


def _error_fields(body: bytes) -> tuple[str, str, str]:
    """(message, error type, request id) from `{"type":"error","error":{...},"request_id":...}`."""
    try:
        data = json.loads(body)
    except ValueError:
        return "", "", ""
    if not isinstance(data, dict):
        return "", "", ""
    err = data.get("error")
    if not isinstance(err, dict):
        return "", "", str(data.get("request_id") or "")
    return str(err.get("message") or ""), str(err.get("type") or ""), str(data.get("request_id") or "")


def _rate_limit_wait(headers: Mapping[str, str]) -> tuple[float | None, list[str]]:
    """Seconds until every exhausted `anthropic-ratelimit-*` limit resets, and their names."""
    exhausted: list[str] = []
    wait: float | None = None
    now = datetime.datetime.now(datetime.UTC)
    for limit in _RATE_LIMITS:
        if headers.get(f"anthropic-ratelimit-{limit}-remaining") != "0":
            continue
        exhausted.append(limit)
        reset = headers.get(f"anthropic-ratelimit-{limit}-reset", "")
        try:
            at = datetime.datetime.fromisoformat(reset)
        except ValueError:
            continue
        if at.tzinfo is None:
            at = at.replace(tzinfo=datetime.UTC)
        seconds = max(0.0, (at - now).total_seconds())
        wait = seconds if wait is None else max(wait, seconds)
    return wait, exhausted


# -- request conversion --------------------------------------------------------------------


@dataclass(slots=True)
class _Plan:
    """The request body, and the name of the tool that carries a structured answer."""

    body: dict[str, Any]
    answer_tool: str = ""


def _image_source(image: ImagePart, where: str) -> dict[str, Any]:
    if image.data:
        media_type = image.mime_type or _sniff_image(image.data)
        if not media_type:
            raise InvalidRequest([(f"{where}.mime_type", "is required: the image type could not be recognised")])
        return {"type": "base64", "media_type": media_type, "data": base64.b64encode(image.data).decode()}
    if image.url.startswith("data:"):
        header, comma, payload = image.url.partition(",")
        media_type, _, encoding = header[len("data:"):].partition(";")
        if not comma or encoding != "base64" or not media_type:
            raise InvalidRequest([(f"{where}.url", "a data: URL must look like data:image/png;base64,...")])
        return {"type": "base64", "media_type": media_type, "data": payload}
    return {"type": "url", "url": image.url}


def _sniff_image(data: bytes) -> str:
    """The MIME type of the image formats Anthropic accepts, from their magic bytes."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return ""


def _content_blocks(message: Message, where: str) -> list[dict[str, Any]]:
    """Text and image blocks of a message (empty text is left out: the API refuses it)."""
    if not message.parts:
        return [{"type": "text", "text": message.content}] if message.content else []
    blocks: list[dict[str, Any]] = []
    for j, part in enumerate(message.parts):
        if part.image is not None:
            blocks.append({"type": "image", "source": _image_source(part.image, f"{where}.parts[{j}].image")})
        elif part.text:
            blocks.append({"type": "text", "text": part.text})
    return blocks


def _tool_use_blocks(message: Message, where: str) -> list[dict[str, Any]]:
    blocks = []
    for j, call in enumerate(message.tool_calls):
        try:
            arguments = json.loads(call.arguments or "{}")
        except ValueError:
            arguments = None
        if not isinstance(arguments, dict):
            raise InvalidRequest([(f"{where}.tool_calls[{j}].arguments", "must be a JSON object for Anthropic")])
        if not call.id:
            raise InvalidRequest([(f"{where}.tool_calls[{j}].id", "is required by Anthropic")])
        blocks.append({"type": "tool_use", "id": call.id, "name": call.name, "input": arguments})
    return blocks


def _tool_result_block(message: Message, where: str) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": message.tool_call_id}
    if any(p.image is not None for p in message.parts):
        block["content"] = _content_blocks(message, where)
    elif message.text():
        block["content"] = message.text()
    return block


def convert_messages(messages: list[Message]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(system blocks, turns) for the Messages API."""
    system: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []
    last = len(messages) - 1
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if message.role is Role.SYSTEM:
            if message.text():
                system.append({"type": "text", "text": message.text()})
            continue
        if message.role is Role.TOOL:
            role, blocks = "user", [_tool_result_block(message, where)]
        elif message.role is Role.ASSISTANT:
            role = "assistant"
            blocks = _content_blocks(message, where) + _tool_use_blocks(message, where)
        else:
            role, blocks = "user", _content_blocks(message, where)
        if not blocks:
            if role == "assistant" and i == last:
                continue  # an empty prefill asks for nothing
            raise InvalidRequest([(f"{where}.content", "must not be empty for Anthropic")])
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    for turn in turns:
        if turn["role"] == "user":
            # Tool results must open the user turn that answers a tool call; text after.
            turn["content"].sort(key=lambda block: block["type"] != "tool_result")
    return system, turns


def _tool_definition(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    if not schema:
        schema = {"type": "object", "properties": {}}
    elif "type" not in schema:
        schema = {"type": "object", **schema}
    tool: dict[str, Any] = {"name": name}
    if description:
        tool["description"] = description
    tool["input_schema"] = schema
    return tool


def _answer_tool(request: ChatRequest) -> dict[str, Any] | None:
    """The tool that carries a structured answer, or None for plain text."""
    fmt = request.response_format
    if fmt is None or fmt.type is ResponseFormatType.TEXT:
        return None
    schema: dict[str, Any] = {"type": "object"}
    if fmt.type is ResponseFormatType.JSON_SCHEMA:
        schema = dict(fmt.schema or {})
        if schema.get("type", "object") != "object":
            raise InvalidRequest([("response_format.json_schema", "must describe an object for Anthropic")])
    name = re.sub(r"[^A-Za-z0-9_-]", "_", fmt.name)[:64] or "json_response"
    if any(tool.name == name for tool in request.tools):
        raise InvalidRequest([("response_format.name", f"{name!r} is also the name of a tool")])
    return _tool_definition(name, _ANSWER_TOOL_DESCRIPTION, schema)


def _thinking_enabled(passthrough: Mapping[str, Any]) -> bool:
    thinking = passthrough.get("thinking")
    return isinstance(thinking, dict) and thinking.get("type", "enabled") != "disabled"


def _tool_choice(request: ChatRequest, answer_tool: str) -> dict[str, Any] | None:
    choice = request.tool_choice
    mode = choice.mode if choice is not None else ToolChoiceMode.UNSPECIFIED
    if choice is not None and mode is ToolChoiceMode.TOOL:
        return {"type": "tool", "name": choice.tool_name}
    if answer_tool:
        if _thinking_enabled(request.passthrough):
            return {"type": "auto"}  # extended thinking refuses a forced tool
        if request.tools and mode is not ToolChoiceMode.NONE:
            return {"type": "any"}  # call a tool, or answer through the answer tool
        return {"type": "tool", "name": answer_tool}
    if not request.tools:
        return None
    return {
        ToolChoiceMode.AUTO: {"type": "auto"},
        ToolChoiceMode.REQUIRED: {"type": "any"},
        ToolChoiceMode.NONE: {"type": "none"},
    }.get(mode)


# -- response conversion -------------------------------------------------------------------

_STOP_REASONS = {
    "end_turn": StopReason.END_TURN,
    "max_tokens": StopReason.MAX_TOKENS,
    "model_context_window_exceeded": StopReason.MAX_TOKENS,
    "stop_sequence": StopReason.STOP_SEQUENCE,
    "tool_use": StopReason.TOOL_CALLS,
    "refusal": StopReason.REFUSAL,
    "pause_turn": StopReason.OTHER,
}


def _stop_reason(raw: str, *, answered: bool) -> StopReason:
    if raw == "tool_use" and answered:
        return StopReason.END_TURN  # the only tool called was the answer tool
    if not raw:
        return StopReason.UNSPECIFIED
    return _STOP_REASONS.get(raw, StopReason.OTHER)


def _count(fields: Mapping[str, Any], name: str) -> int:
    value = fields.get(name)
    return value if isinstance(value, int) else 0


def _usage(fields: Mapping[str, Any]) -> Usage:
    # Anthropic's input_tokens leaves out cached tokens; Portico's prompt count has them.
    cache_write = _count(fields, "cache_creation_input_tokens")
    cache_read = _count(fields, "cache_read_input_tokens")
    prompt = _count(fields, "input_tokens") + cache_write + cache_read
    completion = _count(fields, "output_tokens")
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=prompt + completion,
        cache_creation_tokens=cache_write,
        cache_read_tokens=cache_read,
    )


def _arguments(value: Any) -> str:
    return json.dumps(value if value is not None else {}, ensure_ascii=False)


@dataclass(slots=True)
class _Block:
    kind: str  # text, thinking, tool, answer or other
    tool_index: int = -1


@dataclass(slots=True)
class StreamTranslator:
    """Turns the events of one stream into domain chunks, one event at a time."""

    provider: str
    answer_tool: str = ""
    model: str = ""
    raw_stop: str = ""
    finished: bool = False
    answered: bool = False
    usage: dict[str, Any] = field(default_factory=dict)
    tools: ToolCallAssembler = field(default_factory=ToolCallAssembler)
    _blocks: dict[int, _Block] = field(default_factory=dict)
    _complete: set[int] = field(default_factory=set)
    _tool_count: int = 0

    def feed(self, kind: str, data: dict[str, Any]) -> StreamChunk | None:
        if kind == "message_start":
            message = data.get("message") or {}
            self.model = str(message.get("model") or "")
            self._take_usage(message.get("usage"))
        elif kind == "content_block_start":
            return self._start(int(data.get("index", 0)), data.get("content_block") or {})
        elif kind == "content_block_delta":
            return self._delta(int(data.get("index", 0)), data.get("delta") or {})
        elif kind == "content_block_stop":
            block = self._blocks.get(int(data.get("index", 0)))
            if block is not None and block.kind == "tool":
                self._complete.add(block.tool_index)
        elif kind == "message_delta":
            delta = data.get("delta") or {}
            self.raw_stop = str(delta.get("stop_reason") or self.raw_stop)
            self._take_usage(data.get("usage"))
        elif kind == "message_stop":
            self.finished = True
        # `ping` and event types added after this was written carry nothing to forward.
        return None

    def _take_usage(self, usage: Any) -> None:
        # Each report is cumulative: the latest value of a field replaces the earlier one.
        if isinstance(usage, dict):
            self.usage.update({k: v for k, v in usage.items() if v is not None})

    def _start(self, index: int, block: dict[str, Any]) -> StreamChunk | None:
        kind = block.get("type")
        if kind == "text":
            self._blocks[index] = _Block("text")
            return StreamChunk(content=block["text"]) if block.get("text") else None
        if kind == "thinking":
            self._blocks[index] = _Block("thinking")
            return StreamChunk(reasoning_content=block["thinking"]) if block.get("thinking") else None
        if kind == "tool_use" and self.answer_tool and block.get("name") == self.answer_tool:
            self._blocks[index] = _Block("answer")
            self.answered = True
            return None
        if kind == "tool_use":
            # The block's `input` is always {} here; the arguments follow as JSON text.
            position = self._tool_count
            self._tool_count += 1
            self._blocks[index] = _Block("tool", position)
            delta = self.tools.add(position, id=str(block.get("id") or ""), name=str(block.get("name") or ""))
            return StreamChunk(tool_call_deltas=[delta])
        self._blocks[index] = _Block("other")
        return None

    def _delta(self, index: int, delta: dict[str, Any]) -> StreamChunk | None:
        kind = delta.get("type")
        block = self._blocks.get(index, _Block("other"))
        if kind == "text_delta" and delta.get("text"):
            return StreamChunk(content=str(delta["text"]))
        if kind == "thinking_delta" and delta.get("thinking"):
            return StreamChunk(reasoning_content=str(delta["thinking"]))
        if kind == "input_json_delta" and delta.get("partial_json"):
            piece = str(delta["partial_json"])
            if block.kind == "answer":
                return StreamChunk(content=piece)
            if block.kind == "tool":
                return StreamChunk(tool_call_deltas=[self.tools.add(block.tool_index, arguments=piece)])
        # signature_delta (opaque, for sending thinking back) and citations: nothing to forward.
        return None

    def final(self) -> StreamChunk:
        # A tool call whose block never closed was cut off (max_tokens): its arguments
        # are not valid JSON, so it is left out of the assembled calls.
        calls = [c for i, c in enumerate(self.tools.calls()) if i in self._complete]
        return StreamChunk(
            tool_calls=calls,
            stop_reason=_stop_reason(self.raw_stop, answered=self.answered and not calls),
            raw_stop_reason=self.raw_stop,
            is_final=True,
            usage=_usage(self.usage),
            model=self.model,
            provider=self.provider,
        )


# -- the provider --------------------------------------------------------------------------


class AnthropicProvider(HttpProvider):
    kind: ClassVar[str] = "anthropic"
    Options = AnthropicOptions
    options: AnthropicOptions
    default_base_url = DEFAULT_BASE_URL

    def __init__(self, settings: ProviderSettings) -> None:
        if settings.max_request_bytes is None:
            settings = settings.model_copy(update={"max_request_bytes": MAX_REQUEST_BYTES})
        super().__init__(settings)

    def auth_headers(self) -> dict[str, str]:
        headers = {"anthropic-version": self.options.version}
        if self.options.betas:
            headers["anthropic-beta"] = ",".join(self.options.betas)
        key = self.api_key()
        if key:
            headers["x-api-key"] = key
        return headers

    # -- requests -------------------------------------------------------------------------

    def default_max_tokens(self, model: str, passthrough: Mapping[str, Any]) -> int:
        """`max_tokens` for a request that gives none: the model's output limit (from
        configuration, else the table) up to 16384, plus any thinking budget."""
        if self.options.default_max_tokens is not None:
            return self.options.default_max_tokens
        override = self.settings.capabilities.get(model)
        facts = model_facts(model)
        if override is not None and override.max_output_tokens:
            limit = override.max_output_tokens
        else:
            limit = facts.max_output_tokens if facts else UNKNOWN_MODEL_MAX_OUTPUT
        chosen = min(limit, DEFAULT_MAX_TOKENS_CAP)
        thinking = passthrough.get("thinking")
        if _thinking_enabled(passthrough) and isinstance(thinking, dict):
            # max_tokens must exceed the thinking budget, or the answer gets no room.
            budget = thinking.get("budget_tokens")
            if isinstance(budget, int) and budget > 0:
                chosen = min(limit, budget + chosen)
        return chosen

    def plan(self, request: ChatRequest) -> _Plan:
        """The Messages API body for a chat request (without `stream`)."""
        if request.temperature is not None and request.temperature > 1.0:
            raise InvalidRequest([("temperature", "must be between 0 and 1 for Anthropic")])
        system, turns = convert_messages(request.messages)
        max_tokens = request.max_tokens or self.default_max_tokens(request.model, request.passthrough)
        body: dict[str, Any] = {"model": request.model, "max_tokens": max_tokens, "messages": turns}
        if system:
            body["system"] = system
        if request.temperature is not None:
            body["temperature"] = request.temperature
        if request.top_p is not None:
            body["top_p"] = request.top_p
        if request.stop:
            body["stop_sequences"] = list(request.stop)
        tools = [_tool_definition(t.name, t.description, t.parameters) for t in request.tools]
        answer = _answer_tool(request)
        if answer is not None:
            tools.append(answer)
        if tools:
            body["tools"] = tools
        choice = _tool_choice(request, answer["name"] if answer else "")
        if choice is not None:
            body["tool_choice"] = choice
        merge_passthrough(body, request.passthrough)
        return _Plan(body, answer["name"] if answer else "")

    async def chat(self, request: ChatRequest) -> CompletionResponse:
        plan = self.plan(request)
        plan.body.pop("stream", None)
        async with self.send("POST", _MESSAGES, body=plan.body, timeout=request.timeout) as response:
            raw = await response.aread()
            request_id = response.headers.get("request-id", "")
        data = self._decode(raw)
        return self._completion(data, plan.answer_tool, request_id)

    def _decode(self, raw: bytes) -> dict[str, Any]:
        try:
            data = json.loads(raw)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise UpstreamProtocol(f"provider {self.name!r} answered with a body that is not a message",
                                   provider=self.name)
        return data

    def _completion(self, data: dict[str, Any], answer_tool: str, request_id: str) -> CompletionResponse:
        text: list[str] = []
        reasoning: list[str] = []
        calls: list[ToolCall] = []
        answered = False
        for block in data.get("content") or []:
            kind = block.get("type")
            if kind == "text":
                text.append(str(block.get("text") or ""))
            elif kind == "thinking":
                reasoning.append(str(block.get("thinking") or ""))
            elif kind == "tool_use" and answer_tool and block.get("name") == answer_tool:
                text.append(_arguments(block.get("input")))
                answered = True
            elif kind == "tool_use":
                calls.append(ToolCall(id=str(block.get("id") or f"call_{len(calls)}"),
                                      name=str(block.get("name") or ""),
                                      arguments=_arguments(block.get("input"))))
        raw_stop = str(data.get("stop_reason") or "")
        metadata = {"response_id": str(data.get("id") or "")}
        if request_id:
            metadata["request_id"] = request_id
        if data.get("stop_sequence"):
            metadata["stop_sequence"] = str(data["stop_sequence"])
        return CompletionResponse(
            content="".join(text),
            tool_calls=calls,
            stop_reason=_stop_reason(raw_stop, answered=answered and not calls),
            raw_stop_reason=raw_stop,
            usage=_usage(data.get("usage") or {}),
            model=str(data.get("model") or ""),
            provider=self.name,
            reasoning_content="".join(reasoning),
            metadata=metadata,
        )

    async def stream(self, request: ChatRequest) -> AsyncGenerator[StreamChunk, None]:
        plan = self.plan(request)
        plan.body["stream"] = True
        translator = StreamTranslator(self.name, plan.answer_tool)
        first = True
        async with (
            self.send("POST", _MESSAGES, body=plan.body, timeout=request.timeout) as response,
            contextlib.aclosing(self._events(response)) as events,
        ):
            async for kind, data in events:
                chunk = translator.feed(kind, data)
                if translator.finished:
                    yield translator.final()
                    await _drain(events)
                    return
                if chunk is not None:
                    if first:
                        chunk.model, chunk.provider, first = translator.model, self.name, False
                    yield chunk
        raise UpstreamProtocol(f"provider {self.name!r} ended the stream before message_stop",
                               provider=self.name)

    async def _events(self, response: httpx.Response) -> AsyncGenerator[tuple[str, dict[str, Any]], None]:
        """(type, data) of each event; an `error` event raises its domain exception."""
        try:
            async with contextlib.aclosing(EventSource(response).aiter_sse()) as events:
                async for event in events:
                    if not event.data:
                        continue
                    try:
                        data = json.loads(event.data)
                    except ValueError:
                        data = None
                    if not isinstance(data, dict):
                        raise UpstreamProtocol(f"provider {self.name!r} sent an event that is not JSON",
                                               provider=self.name)
                    kind = str(data.get("type") or event.event)
                    if kind == "error":
                        err = data.get("error")
                        if not isinstance(err, dict):
                            err = {}
                        kind_of_error = str(err.get("type") or "api_error")
                        raise self.error_for(kind_of_error, str(err.get("message") or ""),
                                             status=_STATUS_OF_ERROR_TYPE.get(kind_of_error, 500),
                                             request_id=str(data.get("request_id") or ""))
                    yield kind, data
        except SSEError:
            raise UpstreamProtocol(
                f"provider {self.name!r} answered a stream request without text/event-stream",
                provider=self.name,
            ) from None

    # -- errors ---------------------------------------------------------------------------

    def error_from_response(self, status: int, headers: httpx.Headers, body: bytes) -> UpstreamError:
        message, kind, request_id = _error_fields(body)
        retry_after = parse_retry_after(headers)
        exhausted: list[str] = []
        if status == 429:
            wait, exhausted = _rate_limit_wait(headers)
            if retry_after is None:
                retry_after = wait
        err = self.error_for(kind, message, status=status, retry_after=retry_after,
                             request_id=headers.get("request-id") or request_id)
        if exhausted:
            err.metadata["rate_limits_exhausted"] = ",".join(exhausted)
        return err

    def error_for(
        self, kind: str, message: str, *, status: int, retry_after: float | None = None, request_id: str = ""
    ) -> UpstreamError:
        """The domain exception for an Anthropic error type (from a body or an event)."""
        text = f"provider {self.name!r}: {self.scrub(message) or f'HTTP {status}'}"
        meta = {"upstream_code": self.scrub(kind)} if kind else {}
        err: UpstreamError
        if kind == "billing_error" or status == 402:
            err = UpstreamQuotaExceeded(text, provider=self.name, status=status, metadata=meta)
        elif kind == "timeout_error":
            err = UpstreamTimeout(text, provider=self.name, status=status, metadata=meta)
        elif status == 400 and _CONTEXT_LIMIT.search(message):
            err = ContextLengthExceeded(text, provider=self.name, status=status, metadata=meta)
        else:
            err = upstream_error(status, text, provider=self.name, code=meta.get("upstream_code", ""),
                                 retry_after=retry_after)
        if request_id:
            err.metadata["request_id"] = self.scrub(request_id)
        return err

    # -- the rest -------------------------------------------------------------------------

    async def count_tokens(self, request: ChatRequest) -> TokenCount:
        if self.options.token_counting == "estimate":
            return await super().count_tokens(request)
        body = self.plan(request).body
        counted: dict[str, Any] = {k: body[k] for k in _COUNTED_FIELDS if k in body}
        data = await self.request_json("POST", _COUNT_TOKENS, body=counted, timeout=request.timeout)
        tokens = data.get("input_tokens") if isinstance(data, dict) else None
        if not isinstance(tokens, int):
            raise UpstreamProtocol(f"provider {self.name!r} sent a token count without input_tokens",
                                   provider=self.name)
        return TokenCount(tokens=tokens, source=Source.PROVIDER, model=request.model)

    async def discover_capabilities(self, model: str) -> Capabilities | None:
        """`GET /v1/models/{id}`: uses the limits the API reports; None when it reports
        none, so the built-in table answers instead."""
        if not self.options.discovery:
            return None
        data = await self.request_json("GET", f"/v1/models/{quote(model, safe='')}", timeout=_LOOKUP_SECONDS)
        if not isinstance(data, dict):
            raise UpstreamProtocol(f"provider {self.name!r} described a model in an unknown shape",
                                   provider=self.name)
        context = _count(data, "max_input_tokens")
        output = _count(data, "max_tokens")
        if not context and not output:
            return None
        facts = model_facts(str(data.get("id") or model)) or model_facts(model)
        caps = _capabilities(model, facts, Source.PROVIDER)
        caps.context_window = context or caps.context_window
        caps.max_output_tokens = output or caps.max_output_tokens
        return caps

    def known_capabilities(self, model: str) -> Capabilities | None:
        facts = model_facts(model)
        return _capabilities(model, facts, Source.BUILT_IN) if facts else None

    async def health_check(self) -> bool:
        try:
            await self.request_json("GET", "/v1/models", params={"limit": "1"}, timeout=_LOOKUP_SECONDS)
        except PorticoError:
            return False
        return True


async def _drain(events: AsyncGenerator[tuple[str, dict[str, Any]], None]) -> None:
    """Read what follows `message_stop` (normally nothing) so the connection is reusable."""
    with contextlib.suppress(TimeoutError, PorticoError, httpx.HTTPError):
        async with asyncio.timeout(_DRAIN_SECONDS):
            async for _ in events:
                pass


#: Models the embedded default configuration lists when ANTHROPIC_API_KEY is set.
ENVIRONMENT_MODELS = ["claude-sonnet-4-5", "claude-opus-4-5", "claude-haiku-4-5"]


def settings_from_environment(environ: Mapping[str, str]) -> list[ProviderSettings]:
    """ANTHROPIC_API_KEY (and optionally ANTHROPIC_BASE_URL) -> a provider named `anthropic`."""
    key = environ.get("ANTHROPIC_API_KEY", "")
    if not key:
        return []
    return [ProviderSettings(
        name="anthropic",
        kind="anthropic",
        api_key=SecretStr(key),
        base_url=environ.get("ANTHROPIC_BASE_URL") or None,
        models=list(ENVIRONMENT_MODELS),
        default_model=ENVIRONMENT_MODELS[0],
    )]


registry.register("anthropic", AnthropicProvider)
registry.add_environment_hook(settings_from_environment)

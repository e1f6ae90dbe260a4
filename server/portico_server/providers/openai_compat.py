"""`openai_compat` and its presets: every server that speaks OpenAI's Chat Completions.

One adapter, many vendors: the preset (see `openai_presets.py`) gives the base URL, the key
variable, default models and quirks. The wire translation lives in plain functions
(`chat_body`, `parse_completion`, `ChunkReader`) so the LiteLLM bridge reuses them.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import struct
import time
from collections.abc import AsyncGenerator, Callable, Iterator, Mapping
from typing import Any, ClassVar, Literal

import httpx
from httpx_sse import EventSource
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from ..config import ConfigError, ProviderSettings
from ..domain import (
    Capabilities,
    ChatRequest,
    CompletionResponse,
    EmbedRequest,
    EmbedResponse,
    Message,
    ResponseFormatType,
    Role,
    Source,
    StopReason,
    StreamChunk,
    TokenCount,
    ToolCall,
    ToolCallDelta,
    ToolChoiceMode,
    Usage,
)
from ..errors import (
    UpstreamBadRequest,
    UpstreamError,
    UpstreamModelNotFound,
    UpstreamProtocol,
    parse_retry_after,
    upstream_error,
)
from . import registry
from .base import merge_passthrough
from .http import HttpProvider, extract_error
from .openai_presets import PRESETS, Preset, capabilities_from_listing, known_model
from .streaming import ToolCallAssembler

log = logging.getLogger("portico.providers.openai")

JSON = dict[str, Any]
#: Cleans text that came from upstream (the key and key-shaped strings removed).
Scrub = Callable[[str], str]


# -- request ---------------------------------------------------------------------------------


def _image_url(part_url: str, data: bytes, mime_type: str) -> str:
    if part_url:
        return part_url
    return f"data:{mime_type or 'image/png'};base64,{base64.b64encode(data).decode()}"


def message_json(message: Message, *, strict: bool = False) -> JSON:
    """One domain message as a Chat Completions message."""
    out: JSON = {"role": message.role.value}
    if message.role is Role.TOOL:
        out["tool_call_id"] = message.tool_call_id
        out["content"] = message.text()
        return out
    images = [p.image for p in message.parts if p.image is not None]
    if images:
        content: list[JSON] = []
        for part in message.parts:
            if part.text is not None:
                content.append({"type": "text", "text": part.text})
            elif part.image is not None:
                image: JSON = {"url": _image_url(part.image.url, part.image.data, part.image.mime_type)}
                if part.image.detail:
                    image["detail"] = part.image.detail
                content.append({"type": "image_url", "image_url": image})
        out["content"] = content
    else:
        text = message.text()
        # An assistant turn made only of tool calls has no text; OpenAI wants null there.
        out["content"] = text if text or not message.tool_calls or strict else None
    if message.name and not strict:
        out["name"] = message.name
    if message.tool_calls:
        out["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in message.tool_calls
        ]
    return out


def _tool_choice(request: ChatRequest, preset: Preset) -> Any:
    choice = request.tool_choice
    if choice is None or choice.mode is ToolChoiceMode.UNSPECIFIED:
        return None
    if choice.mode is ToolChoiceMode.TOOL:
        return {"type": "function", "function": {"name": choice.tool_name}}
    if choice.mode is ToolChoiceMode.REQUIRED:
        return preset.tool_choice_required
    return choice.mode.value  # "auto" or "none"


def _response_format(request: ChatRequest) -> JSON | None:
    fmt = request.response_format
    if fmt is None or fmt.type is ResponseFormatType.TEXT:
        return None
    if fmt.type is ResponseFormatType.JSON_OBJECT:
        return {"type": "json_object"}
    schema: JSON = {"name": fmt.name or "response", "schema": fmt.schema or {}}
    if fmt.strict:
        schema["strict"] = True
    return {"type": "json_schema", "json_schema": schema}


def uses_max_completion_tokens(model: str, preset: Preset, setting: str = "auto") -> bool:
    if setting != "auto":
        return setting == "max_completion_tokens"
    bare = model.rsplit("/", 1)[-1]
    return any(bare.startswith(prefix) for prefix in preset.max_completion_tokens_models)


def chat_body(
    request: ChatRequest,
    preset: Preset,
    *,
    stream: bool,
    stream_usage: bool | None = None,
    max_tokens_field: str = "auto",
    extra_body: Mapping[str, Any] | None = None,
) -> JSON:
    """The JSON body of POST /chat/completions for `request` (passthrough merged last)."""
    body: JSON = {
        "model": request.model,
        "messages": [message_json(m, strict=preset.strict_fields) for m in request.messages],
    }
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.top_p is not None:
        body["top_p"] = request.top_p
    if request.max_tokens is not None:
        field = "max_completion_tokens" if uses_max_completion_tokens(
            request.model, preset, max_tokens_field) else "max_tokens"
        body[field] = request.max_tokens
    if request.stop:
        body["stop"] = list(request.stop)
    if request.seed is not None:
        body[preset.seed_field] = request.seed
    if request.tools:
        tools = []
        for tool in request.tools:
            function: JSON = {"name": tool.name}
            if tool.description:
                function["description"] = tool.description
            function["parameters"] = tool.parameters or {"type": "object", "properties": {}}
            tools.append({"type": "function", "function": function})
        body["tools"] = tools
    choice = _tool_choice(request, preset)
    if choice is not None:
        body["tool_choice"] = choice
    response_format = _response_format(request)
    if response_format is not None:
        body["response_format"] = response_format
    if stream:
        body["stream"] = True
        if preset.stream_usage if stream_usage is None else stream_usage:
            body["stream_options"] = {"include_usage": True}
    if extra_body:
        body.update(extra_body)
    return merge_passthrough(body, request.passthrough)


# -- response --------------------------------------------------------------------------------


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def parse_usage(raw: Any) -> Usage | None:
    """OpenAI's usage object, with the cache and reasoning details vendors add."""
    if not isinstance(raw, dict):
        return None
    prompt_details = raw.get("prompt_tokens_details") or {}
    completion_details = raw.get("completion_tokens_details") or {}
    # OpenAI's field where present; DeepSeek's own name otherwise.
    cached = (_int(prompt_details.get("cached_tokens")) if "cached_tokens" in prompt_details
              else _int(raw.get("prompt_cache_hit_tokens")))
    return Usage(
        prompt_tokens=_int(raw.get("prompt_tokens")),
        completion_tokens=_int(raw.get("completion_tokens")),
        total_tokens=_int(raw.get("total_tokens")),
        cache_read_tokens=cached,
        cache_creation_tokens=_int(prompt_details.get("cache_write_tokens")),  # OpenRouter
        reasoning_tokens=_int(completion_details.get("reasoning_tokens")),
    )


_FINISH: dict[str, StopReason] = {
    "stop": StopReason.END_TURN,
    "eos": StopReason.END_TURN,
    "end_turn": StopReason.END_TURN,
    "length": StopReason.MAX_TOKENS,
    "model_length": StopReason.MAX_TOKENS,
    "max_tokens": StopReason.MAX_TOKENS,
    "tool_calls": StopReason.TOOL_CALLS,
    "function_call": StopReason.TOOL_CALLS,
    "tool_use": StopReason.TOOL_CALLS,
    "stop_sequence": StopReason.STOP_SEQUENCE,
    "content_filter": StopReason.CONTENT_FILTER,
    "refusal": StopReason.REFUSAL,
}


def stop_reason(raw: str, *, tool_calls: bool, stop_matched: bool = False, refused: bool = False) -> StopReason:
    """Map a finish_reason. Some servers say "stop" after tool calls: the caller still
    has calls to run, so that is TOOL_CALLS."""
    if refused:
        return StopReason.REFUSAL
    if not raw:
        return StopReason.TOOL_CALLS if tool_calls else StopReason.UNSPECIFIED
    reason = _FINISH.get(raw, StopReason.OTHER)
    if reason is StopReason.END_TURN:
        if tool_calls:
            return StopReason.TOOL_CALLS
        if stop_matched:
            return StopReason.STOP_SEQUENCE
    return reason


def split_content(value: Any) -> tuple[str, str]:
    """(text, reasoning) of a message's `content`: a string, or a list of typed parts
    (Mistral's reasoning models send `thinking` parts beside `text` parts)."""
    if isinstance(value, str):
        return value, ""
    if not isinstance(value, list):
        return "", ""
    text: list[str] = []
    reasoning: list[str] = []
    for part in value:
        if not isinstance(part, dict):
            continue
        if part.get("type") == "thinking":
            inner = part.get("thinking")
            if isinstance(inner, str):
                reasoning.append(inner)
            elif isinstance(inner, list):
                reasoning.extend(str(p.get("text", "")) for p in inner if isinstance(p, dict))
        elif isinstance(part.get("text"), str):
            text.append(part["text"])
    return "".join(text), "".join(reasoning)


def _reasoning(container: Mapping[str, Any]) -> str:
    # DeepSeek, GLM, Qwen and llama.cpp say `reasoning_content`; OpenRouter, Groq,
    # Cerebras and newer vLLM say `reasoning`. One of them, never both concatenated.
    for key in ("reasoning_content", "reasoning"):
        value = container.get(key)
        if isinstance(value, str) and value:
            return value
    return ""


def _arguments(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _stop_matched(choice: Mapping[str, Any]) -> bool:
    # vLLM names the stop string it hit in `stop_reason` (an int is a stop token id).
    return isinstance(choice.get("stop_reason"), str)


def error_from_payload(err: Any, provider: str, scrub: Scrub | None = None) -> UpstreamError:
    """An error object sent with HTTP 200 (mid-stream, or by a proxy) as an exception.

    With no HTTP status to go by, the status is inferred from the error's code or type.
    """
    clean: Scrub = scrub or redact_key_shapes
    code: Any = ""
    if isinstance(err, str):
        message = err
    elif isinstance(err, dict):
        message = str(err.get("message") or "")
        code = err.get("code") if err.get("code") not in (None, "") else err.get("type")
    else:
        message = ""
    status = 0
    if isinstance(code, int) and 400 <= code < 600:
        status = code
    elif isinstance(code, str) and code.isdigit() and 400 <= int(code) < 600:
        status = int(code)
    code_text = str(code or "")
    if not status:
        lowered = code_text.lower()
        if "quota" in lowered or "rate_limit" in lowered or lowered in ("tokens", "requests"):
            status = 429
        elif "overloaded" in lowered:
            status = 529
        elif "auth" in lowered or "api_key" in lowered or "permission" in lowered:
            status = 401
        elif "not_found" in lowered:
            status = 404
        elif "invalid_request" in lowered or "context_length" in lowered or "bad_request" in lowered:
            status = 400
        else:
            status = 500
    text = clean(message) or "error event in the response stream"
    return upstream_error(status, f"provider {provider!r}: {text}", provider=provider,
                          code=clean(code_text) if not code_text.isdigit() else "")


def parse_completion(data: Any, *, provider: str, model: str, scrub: Scrub | None = None) -> CompletionResponse:
    """A Chat Completions response body as a domain response."""
    if not isinstance(data, dict):
        raise UpstreamProtocol(f"provider {provider!r} answered with JSON that is not an object", provider=provider)
    if data.get("error"):
        raise error_from_payload(data["error"], provider, scrub)
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise UpstreamProtocol(f"provider {provider!r} answered without choices", provider=provider)
    choice = choices[0]
    message = choice.get("message") or {}
    text, reasoning = split_content(message.get("content"))
    reasoning = _reasoning(message) or reasoning
    refusal = message.get("refusal")
    refused = isinstance(refusal, str) and bool(refusal)
    if refused and not text:
        text = str(refusal)
    calls: list[ToolCall] = []
    for i, call in enumerate(message.get("tool_calls") or []):
        fn = call.get("function") or {}
        calls.append(ToolCall(id=call.get("id") or f"call_{i}", name=str(fn.get("name") or ""),
                              arguments=_arguments(fn.get("arguments")) or "{}"))
    legacy = message.get("function_call")
    if isinstance(legacy, dict) and not calls:
        calls.append(ToolCall(id="call_0", name=str(legacy.get("name") or ""),
                              arguments=_arguments(legacy.get("arguments")) or "{}"))
    raw = str(choice.get("finish_reason") or "")
    metadata: dict[str, str] = {}
    for key in ("id", "system_fingerprint", "service_tier"):
        if isinstance(data.get(key), str) and data[key]:
            metadata[key] = data[key]
    if isinstance(data.get("citations"), list):  # Perplexity's sources
        metadata["citations"] = json.dumps(data["citations"], ensure_ascii=False)
    return CompletionResponse(
        content=text,
        tool_calls=calls,
        stop_reason=stop_reason(raw, tool_calls=bool(calls), stop_matched=_stop_matched(choice), refused=refused),
        raw_stop_reason=raw,
        usage=parse_usage(data.get("usage")) or Usage(),
        model=str(data.get("model") or model),
        provider=provider,
        reasoning_content=reasoning,
        metadata=metadata,
    )


class ChunkReader:
    """Turns the `chat.completion.chunk` objects of one stream into domain chunks.

    `feed` each decoded chunk (it returns the delta to emit, or None), then `finish` for
    the final chunk. Usage is the last one reported (never summed: Groq and OpenRouter
    send it twice); finish_reason is the last non-null one.
    """

    def __init__(self, provider: str, model: str, scrub: Scrub | None = None) -> None:
        self.provider = provider
        self.model = model
        self._scrub = scrub
        self.tools = ToolCallAssembler()
        self.usage: Usage | None = None
        self.finish_reason = ""
        self.stop_matched = False
        self.refused = False
        self._announced = False
        # Upstream tool-call index -> our position, and what we know of each position.
        self._by_index: dict[int, int] = {}
        self._by_id: dict[str, int] = {}
        self._ids: dict[int, str] = {}
        self._named: set[int] = set()
        self._last: int | None = None
        self._next = 0

    def _position(self, call: Mapping[str, Any]) -> int:
        """Our 0-based position for an upstream tool-call fragment."""
        raw = call.get("index")
        call_id = str(call.get("id") or "")
        pos: int | None
        if isinstance(raw, int):
            pos = self._by_index.get(raw)
            # Some servers number every call 0; a new id at a known index is a new call.
            if pos is not None and call_id and self._ids.get(pos, call_id) != call_id:
                pos = None
        elif call_id:
            pos = self._by_id.get(call_id)
        else:
            pos = self._last
        if pos is None:
            pos = self._next
            self._next += 1
        if isinstance(raw, int):
            self._by_index[raw] = pos
        if call_id and pos not in self._ids:
            self._ids[pos] = call_id
            self._by_id[call_id] = pos
        self._last = pos
        return pos

    def _tool_deltas(self, calls: Any) -> list[ToolCallDelta]:
        deltas: list[ToolCallDelta] = []
        if not isinstance(calls, list):
            return deltas
        for call in calls:
            if not isinstance(call, dict):
                continue
            pos = self._position(call)
            fn = call.get("function") or {}
            name = str(fn.get("name") or "")
            call_id = str(call.get("id") or "")
            arguments = _arguments(fn.get("arguments"))
            first = pos not in self._named
            if name:
                self._named.add(pos)
            # id and name go out on the call's first fragment only, even when the server repeats them.
            delta = self.tools.add(pos, id=call_id if first else "", name=name if first else "",
                                   arguments=arguments)
            if delta.id or delta.name or delta.arguments_delta:
                deltas.append(delta)
        return deltas

    def feed(self, data: Any) -> StreamChunk | None:
        if not isinstance(data, dict):
            raise UpstreamProtocol(f"provider {self.provider!r} sent a stream event that is not an object",
                                   provider=self.provider)
        if data.get("error"):
            raise error_from_payload(data["error"], self.provider, self._scrub)
        if isinstance(data.get("model"), str) and data["model"]:
            self.model = data["model"]
        usage = parse_usage(data.get("usage")) or parse_usage((data.get("x_groq") or {}).get("usage"))
        if usage is not None:
            self.usage = usage
        text: list[str] = []
        reasoning: list[str] = []
        deltas: list[ToolCallDelta] = []
        for choice in data.get("choices") or []:
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or choice.get("message") or {}
            content, thinking = split_content(delta.get("content"))
            reasoning.append(_reasoning(delta) or thinking)
            refusal = delta.get("refusal")
            if isinstance(refusal, str) and refusal:
                self.refused = True
                content += refusal
            text.append(content)
            deltas.extend(self._tool_deltas(delta.get("tool_calls")))
            if choice.get("finish_reason"):
                self.finish_reason = str(choice["finish_reason"])
            if _stop_matched(choice):
                self.stop_matched = True
        chunk = StreamChunk(content="".join(text), reasoning_content="".join(reasoning), tool_call_deltas=deltas)
        if not (chunk.content or chunk.reasoning_content or chunk.tool_call_deltas):
            return None
        if not self._announced:
            self._announced = True
            chunk.model, chunk.provider = self.model, self.provider
        return chunk

    def finish(self) -> StreamChunk:
        calls = self.tools.calls()
        return StreamChunk(
            is_final=True,
            stop_reason=stop_reason(self.finish_reason, tool_calls=bool(calls),
                                    stop_matched=self.stop_matched, refused=self.refused),
            raw_stop_reason=self.finish_reason,
            usage=self.usage,
            tool_calls=calls,
            model=self.model,
            provider=self.provider,
        )


def chunks_from_completion(response: CompletionResponse) -> Iterator[StreamChunk]:
    """A whole answer as a stream, for servers that ignore `stream: true`."""
    deltas = [ToolCallDelta(index=i, id=c.id, name=c.name, arguments_delta=c.arguments)
              for i, c in enumerate(response.tool_calls)]
    if response.content or response.reasoning_content or deltas:
        yield StreamChunk(content=response.content, reasoning_content=response.reasoning_content,
                          tool_call_deltas=deltas, model=response.model, provider=response.provider)
    yield StreamChunk(is_final=True, stop_reason=response.stop_reason, raw_stop_reason=response.raw_stop_reason,
                      usage=response.usage, tool_calls=response.tool_calls, model=response.model,
                      provider=response.provider)


# -- embeddings ------------------------------------------------------------------------------


def batches(inputs: list[str], max_items: int, max_tokens: int = 0) -> Iterator[list[str]]:
    """Consecutive slices of `inputs` of at most `max_items`, and (when `max_tokens` is
    set) at most that many tokens by a deliberately high estimate (UTF-8 bytes / 3)."""
    batch: list[str] = []
    tokens = 0
    for text in inputs:
        cost = len(text.encode()) // 3 + 1
        if batch and (len(batch) >= max_items or (max_tokens and tokens + cost > max_tokens)):
            yield batch
            batch, tokens = [], 0
        batch.append(text)
        tokens += cost
    if batch:
        yield batch


def decode_vector(value: Any, provider: str) -> list[float]:
    """A vector as JSON numbers, or as base64 of little-endian float32 (encoding_format=base64)."""
    if isinstance(value, list):
        return [float(x) for x in value]
    if isinstance(value, str):
        try:
            raw = base64.b64decode(value, validate=True)
        except ValueError:
            raw = b"\x00"  # not base64: reported below
        if len(raw) % 4 == 0:
            return list(struct.unpack(f"<{len(raw) // 4}f", raw))
    raise UpstreamProtocol(f"provider {provider!r} sent an embedding that is not a vector", provider=provider)


# -- errors ----------------------------------------------------------------------------------

# Key-shaped strings that upstream messages echo (OpenAI's 401 quotes a masked key).
_KEY_SHAPES = re.compile(
    r"(?i)(?:\b(?:sk|gsk|xai|pplx|csk|fw|hf|nvapi|or)[-_][A-Za-z0-9*._\-]{6,})"
    r"|(?<=API key provided: )\S+"
)


def redact_key_shapes(text: str) -> str:
    return _KEY_SHAPES.sub("[redacted]", text)


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")


def parse_duration(value: str) -> float | None:
    """OpenAI's and Groq's rate-limit reset durations: "1s", "6m0s", "120ms", "2m59.56s"."""
    parts = _DURATION_PART.findall(value.strip())
    if not parts or "".join(n + u for n, u in parts) != value.strip():
        return None
    scale = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    return sum(float(n) * scale[u] for n, u in parts)


def rate_limit_reset(headers: Mapping[str, str]) -> float | None:
    """Seconds until the exhausted request or token budget refills, from x-ratelimit-* headers."""
    waits: list[float] = []
    fallback: list[float] = []
    for budget in ("requests", "tokens"):
        reset = headers.get(f"x-ratelimit-reset-{budget}")
        seconds = parse_duration(reset) if reset else None
        if seconds is None:
            continue
        fallback.append(seconds)
        if headers.get(f"x-ratelimit-remaining-{budget}") == "0":
            waits.append(seconds)
    if waits:
        return max(waits)
    return min(fallback) if fallback else None


def _detail_message(body: bytes) -> str:
    """FastAPI-style `{"detail": ...}` bodies (validation errors of some servers)."""
    try:
        data = json.loads(body)
    except ValueError:
        return ""
    detail = data.get("detail") if isinstance(data, dict) else None
    if isinstance(detail, str):
        return detail
    if isinstance(detail, list):
        msgs = []
        for item in detail[:5]:
            if isinstance(item, dict):
                loc = ".".join(str(p) for p in item.get("loc") or [])
                msgs.append(f"{loc}: {item.get('msg', '')}" if loc else str(item.get("msg", "")))
        return "; ".join(msgs)
    return ""


# -- the provider ----------------------------------------------------------------------------


class OpenAICompatOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: Send `stream_options.include_usage`; unset: the preset decides.
    stream_usage: bool | None = None
    #: Which field carries max_tokens; "auto" uses max_completion_tokens for the models
    #: that require it (OpenAI's reasoning models).
    max_tokens_field: Literal["auto", "max_tokens", "max_completion_tokens"] = "auto"
    #: Most inputs per embeddings request; unset: the preset's limit.
    embedding_batch_size: int | None = Field(default=None, gt=0)
    #: Wire encoding of embeddings; unset: base64 where the preset knows it works.
    embedding_encoding: Literal["float", "base64"] | None = None
    #: OpenAI-Organization / OpenAI-Project headers.
    organization: str | None = None
    project: str | None = None
    #: Fields merged into every chat request body (before the caller's passthrough).
    extra_body: dict[str, Any] = Field(default_factory=dict)


#: OpenAI caps one embeddings request at 300,000 tokens.
_OPENAI_EMBED_TOKEN_BUDGET = 300_000
#: Discovery and health probes are small GETs; they should not wait like a generation.
_PROBE_TIMEOUT = 15.0


class OpenAICompatProvider(HttpProvider):
    """Chat Completions over httpx: chat, SSE streaming, embeddings, discovery, counting."""

    kind: ClassVar[str] = "openai_compat"
    Options = OpenAICompatOptions
    options: OpenAICompatOptions

    def __init__(self, settings: ProviderSettings) -> None:
        self.preset = self.preset_for(settings)
        if not (settings.base_url or self.preset.base_url):
            raise ConfigError(
                f"provider {settings.name!r} (kind {settings.kind}) needs base_url, "
                "e.g. base_url: http://localhost:8000/v1"
            )
        self.default_base_url = self.preset.base_url
        super().__init__(self._with_preset_defaults(settings))

    @staticmethod
    def preset_for(settings: ProviderSettings) -> Preset:
        return PRESETS.get(settings.kind, PRESETS["openai_compat"])

    def _with_preset_defaults(self, settings: ProviderSettings) -> ProviderSettings:
        """Fill default and embedding model from the preset where configuration is silent."""
        update: dict[str, Any] = {}
        if not settings.default_model and not settings.models and self.preset.default_model:
            update["default_model"] = self.preset.default_model
        if not settings.embedding_model and self.preset.embeddings and self.preset.embedding_model:
            update["embedding_model"] = self.preset.embedding_model
        return settings.model_copy(update=update) if update else settings

    def auth_headers(self) -> dict[str, str]:
        headers = {**self.preset.headers, **super().auth_headers()}
        if self.options.organization:
            headers["OpenAI-Organization"] = self.options.organization
        if self.options.project:
            headers["OpenAI-Project"] = self.options.project
        return headers

    # -- where requests go (Azure overrides these) ------------------------------------------

    def operation_path(self, operation: str, model: str) -> str:
        """The path of `operation` ("chat/completions", "embeddings") for `model`."""
        return f"/{operation}"

    def query_params(self) -> dict[str, str] | None:
        return None

    # -- chat --------------------------------------------------------------------------------

    def chat_body(self, request: ChatRequest, *, stream: bool) -> JSON:
        return chat_body(
            request,
            self.preset,
            stream=stream,
            stream_usage=self.options.stream_usage,
            max_tokens_field=self.options.max_tokens_field,
            extra_body=self.options.extra_body,
        )

    async def chat(self, request: ChatRequest) -> CompletionResponse:
        data = await self.request_json(
            "POST",
            self.operation_path("chat/completions", request.model),
            body=self.chat_body(request, stream=False),
            timeout=request.timeout,
            params=self.query_params(),
        )
        return parse_completion(data, provider=self.name, model=request.model, scrub=self.scrub)

    async def stream(self, request: ChatRequest) -> AsyncGenerator[StreamChunk, None]:
        body = self.chat_body(request, stream=True)
        reader = ChunkReader(self.name, request.model, self.scrub)
        async with self.send(
            "POST",
            self.operation_path("chat/completions", request.model),
            body=body,
            timeout=request.timeout,
            params=self.query_params(),
            headers={"accept": "text/event-stream"},
        ) as response:
            if "text/event-stream" not in response.headers.get("content-type", ""):
                # The server ignored `stream: true` and sent one JSON answer.
                whole = parse_completion(self._json(await response.aread()), provider=self.name,
                                         model=request.model, scrub=self.scrub)
                for chunk in chunks_from_completion(whole):
                    yield chunk
                return
            done = False
            async for event in EventSource(response).aiter_sse():
                data = event.data.strip()
                if data == "[DONE]":
                    done = True
                    break
                if not data:
                    continue  # keep-alive events without data
                payload = self._json(data.encode())
                if event.event == "error":
                    raise error_from_payload(payload.get("error", payload) if isinstance(payload, dict)
                                             else payload, self.name, self.scrub)
                delta = reader.feed(payload)
                if delta is not None:
                    yield delta
            if not done:
                raise UpstreamProtocol(
                    f"provider {self.name!r} ended the stream before [DONE]; the answer is incomplete",
                    provider=self.name,
                )
        yield reader.finish()

    def _json(self, raw: bytes) -> Any:
        try:
            return json.loads(raw)
        except ValueError:
            raise UpstreamProtocol(f"provider {self.name!r} sent data that is not JSON",
                                   provider=self.name) from None

    # -- embeddings --------------------------------------------------------------------------

    def supports_embeddings(self) -> bool:
        return self.preset.embeddings or bool(self.settings.embedding_model)

    async def embed(self, request: EmbedRequest) -> EmbedResponse:
        if not self.supports_embeddings():
            return await super().embed(request)
        size = self.options.embedding_batch_size or self.preset.embedding_batch_size
        budget = _OPENAI_EMBED_TOKEN_BUDGET if self.preset.name == "openai" else 0
        encoding = self.options.embedding_encoding or ("base64" if self.preset.embedding_base64 else None)
        deadline = None if request.timeout is None else time.monotonic() + request.timeout
        vectors: list[list[float]] = []
        usage = Usage()
        model = request.model
        for batch in batches(request.inputs, size, budget):
            body: JSON = {"model": request.model, "input": batch}
            if request.dimensions is not None:
                body["dimensions"] = request.dimensions
            if encoding == "base64":
                body["encoding_format"] = "base64"
            timeout = None if deadline is None else deadline - time.monotonic()
            data = await self.request_json("POST", self.operation_path("embeddings", request.model),
                                           body=body, timeout=timeout, params=self.query_params())
            vectors.extend(self._vectors(data, len(batch)))
            part = parse_usage(data.get("usage")) or Usage()
            usage.prompt_tokens += part.prompt_tokens
            usage.total_tokens += part.total_tokens or part.prompt_tokens
            model = str(data.get("model") or model)
        return EmbedResponse(vectors=vectors, usage=usage, model=model, provider=self.name)

    def _vectors(self, data: Any, expected: int) -> list[list[float]]:
        items = data.get("data") if isinstance(data, dict) else None
        if isinstance(data, dict) and data.get("error"):
            raise error_from_payload(data["error"], self.name, self.scrub)
        if not isinstance(items, list) or len(items) != expected:
            raise UpstreamProtocol(
                f"provider {self.name!r} returned {len(items) if isinstance(items, list) else 'no'} "
                f"embeddings for {expected} inputs",
                provider=self.name,
            )
        # The API numbers each vector with its input's index; do not trust list order.
        ordered = sorted(enumerate(items), key=lambda p: p[1].get("index", p[0]) if isinstance(p[1], dict) else p[0])
        return [decode_vector(item.get("embedding") if isinstance(item, dict) else None, self.name)
                for _, item in ordered]

    # -- token counting ----------------------------------------------------------------------

    async def count_tokens(self, request: ChatRequest) -> TokenCount:
        counter = self.preset.token_counter
        try:
            if counter == "openai_responses":
                data = await self.request_json("POST", "/responses/input_tokens",
                                               body=responses_input(request), timeout=request.timeout)
                tokens = data.get("input_tokens") if isinstance(data, dict) else None
            elif counter == "vllm_tokenize":
                body: JSON = {"model": request.model, "add_generation_prompt": True,
                              "messages": [message_json(m) for m in request.messages]}
                if request.tools:
                    body["tools"] = chat_body(request, self.preset, stream=False)["tools"]
                data = await self.request_json("POST", self._server_root() + "/tokenize",
                                               body=body, timeout=request.timeout)
                tokens = data.get("count") if isinstance(data, dict) else None
            else:
                return await super().count_tokens(request)
        except (UpstreamBadRequest, UpstreamModelNotFound) as exc:
            # The endpoint is missing here (an older server, a proxy): an estimate still helps.
            log.info("provider %s cannot count tokens (%s); estimating", self.name, exc.reason)
            return await super().count_tokens(request)
        if not isinstance(tokens, int):
            raise UpstreamProtocol(f"provider {self.name!r} answered a token count without a count",
                                   provider=self.name)
        return TokenCount(tokens=tokens, source=Source.PROVIDER, model=request.model)

    def _server_root(self) -> str:
        """vLLM serves /tokenize beside /v1, not under it."""
        return self.base_url[: -len("/v1")] if self.base_url.endswith("/v1") else self.base_url

    # -- capabilities and health -------------------------------------------------------------

    def known_capabilities(self, model: str) -> Capabilities | None:
        return known_model(model)

    async def discover_capabilities(self, model: str) -> Capabilities | None:
        if not self.preset.health_path:
            return None
        data = await self.request_json("GET", self.operation_path("models", model),
                                       timeout=_PROBE_TIMEOUT, params=self.query_params())
        entries = data.get("data") if isinstance(data, dict) else data
        if not isinstance(entries, list):
            return None
        for entry in entries:
            if isinstance(entry, dict) and entry.get("id") == model:
                return capabilities_from_listing(model, entry, known_model(model))
        return None

    async def health_check(self) -> bool:
        if not self.preset.health_path:
            return True
        try:
            async with self.send("GET", self.operation_path(self.preset.health_path.lstrip("/"), ""),
                                 timeout=_PROBE_TIMEOUT, params=self.query_params()):
                return True
        except (UpstreamModelNotFound, UpstreamBadRequest):
            return True  # it answered and took the key; this server just has no such route
        except UpstreamError as exc:
            log.info("health probe of %s failed: %s", self.name, exc.reason)
            return False

    # -- errors ------------------------------------------------------------------------------

    def scrub(self, text: str) -> str:
        return super().scrub(redact_key_shapes(text))

    def error_from_response(self, status: int, headers: httpx.Headers, body: bytes) -> UpstreamError:
        message, code = extract_error(body)
        message = message or _detail_message(body)
        text = self.scrub(message) or f"HTTP {status}"
        retry_after = parse_retry_after(headers)
        if retry_after is None and status == 429:
            retry_after = rate_limit_reset(headers)
        err = upstream_error(status, f"provider {self.name!r}: {text}", provider=self.name,
                             code=self.scrub(code) if not code.isdigit() else "", retry_after=retry_after)
        for header, key in (
            ("x-request-id", "upstream_request_id"),
            ("apim-request-id", "upstream_request_id"),
            ("x-ratelimit-remaining-requests", "ratelimit_remaining_requests"),
            ("x-ratelimit-remaining-tokens", "ratelimit_remaining_tokens"),
        ):
            if headers.get(header):
                err.metadata.setdefault(key, self.scrub(headers[header])[:100])
        return err


def responses_input(request: ChatRequest) -> JSON:
    """A chat request in the shape of POST /responses/input_tokens (OpenAI's counter)."""
    items: list[JSON] = []
    for m in request.messages:
        if m.role is Role.TOOL:
            items.append({"type": "function_call_output", "call_id": m.tool_call_id, "output": m.text()})
            continue
        images = [p for p in m.parts if p.image is not None]
        if images:
            kind = "output_text" if m.role is Role.ASSISTANT else "input_text"
            content: list[JSON] = []
            for part in m.parts:
                if part.text is not None:
                    content.append({"type": kind, "text": part.text})
                elif part.image is not None:
                    content.append({"type": "input_image",
                                    "image_url": _image_url(part.image.url, part.image.data, part.image.mime_type),
                                    "detail": part.image.detail or "auto"})
            items.append({"role": m.role.value, "content": content})
        elif m.text() or not m.tool_calls:
            items.append({"role": m.role.value, "content": m.text()})
        for call in m.tool_calls:
            items.append({"type": "function_call", "call_id": call.id, "name": call.name,
                          "arguments": call.arguments})
    body: JSON = {"model": request.model, "input": items}
    if request.tools:
        body["tools"] = [
            {"type": "function", "name": t.name, "description": t.description,
             "parameters": t.parameters or {"type": "object", "properties": {}}}
            for t in request.tools
        ]
    return body


# -- registration ----------------------------------------------------------------------------


def providers_from_environment(environ: Mapping[str, str]) -> list[ProviderSettings]:
    """One provider per preset whose key variable is set (local servers are never added)."""
    found: list[ProviderSettings] = []
    for preset in PRESETS.values():
        key = next((environ[v] for v in preset.env_vars if environ.get(v)), "")
        if not key:
            continue
        options: dict[str, Any] = {}
        base_url = None
        if preset.name == "openai":
            base_url = environ.get("OPENAI_BASE_URL") or None
            if environ.get("OPENAI_ORG_ID"):
                options["organization"] = environ["OPENAI_ORG_ID"]
            if environ.get("OPENAI_PROJECT_ID"):
                options["project"] = environ["OPENAI_PROJECT_ID"]
        found.append(ProviderSettings(
            name=preset.name,
            kind=preset.name,
            api_key=SecretStr(key),
            base_url=base_url,
            models=list(preset.models),
            default_model=preset.default_model or None,
            embedding_model=(preset.embedding_model or None) if preset.embeddings else None,
            options=options,
        ))
    return found


for _kind in PRESETS:
    registry.register(_kind, OpenAICompatProvider)
registry.add_environment_hook(providers_from_environment)

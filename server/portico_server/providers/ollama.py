"""`ollama`: a local or self-hosted Ollama server in its native API.

Chat goes to `/api/chat` (NDJSON lines when streaming), embeddings to `/api/embed`,
capability discovery to `/api/show`, the model list to `/api/tags`, and the health probe
to `/api/version`. Ollama needs no key; one set in the configuration is sent as a Bearer
token, for servers behind an authenticating proxy.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
from collections.abc import AsyncGenerator, Iterator, Mapping
from typing import Any, ClassVar
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field

from .. import bounded_json, jsonwire, offload, vectors
from ..call import NO_CALL, CallContext
from ..config import ProviderSettings
from ..domain import (
    Capabilities,
    ChatRequest,
    CompletionResponse,
    ContentPart,
    EmbedRequest,
    EmbedResponse,
    MediaPart,
    Message,
    ReasoningConfig,
    ReasoningPart,
    ResponseFormatType,
    Role,
    Source,
    StopReason,
    StreamChunk,
    ToolChoiceMode,
    Usage,
)
from ..errors import (
    ContextLengthExceeded,
    InvalidRequest,
    PorticoError,
    UpstreamBadRequest,
    UpstreamError,
    UpstreamProtocol,
    UpstreamUnavailable,
    looks_like_context_overflow,
)
from . import registry
from .base import merge_passthrough
from .call_ids import portable_call_id, synthesized_call_id
from .http import HttpProvider
from .reasoning_controls import effort_for, reasoning_unsupported
from .streaming import ToolCallAssembler

DEFAULT_PORT = 11434


class OllamaOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: Send `think` (true/false) to reasoning models; unset leaves the model's default.
    #: The model's thinking comes back as `reasoning_content`.
    think: bool | None = None
    #: The context window Ollama loads the model with (`options.num_ctx`); Ollama's own
    #: default is small, and longer prompts are silently cut to fit it.
    num_ctx: int | None = Field(default=None, gt=0)
    #: How long Ollama keeps the model loaded after a call ("5m", "1h", "-1" for ever).
    keep_alive: str | None = None


class OllamaProvider(HttpProvider):
    kind: ClassVar[str] = "ollama"
    Options = OllamaOptions
    options: OllamaOptions
    default_base_url = f"http://127.0.0.1:{DEFAULT_PORT}"

    # -- chat ---------------------------------------------------------------------------

    def _body(self, request: ChatRequest, stream: bool) -> dict[str, Any]:
        body = build_chat_request(request, self.options)
        body["stream"] = stream
        if request.passthrough:
            body = merge_passthrough(body, _merge_nested(body, request.passthrough))
        return body

    @contextlib.contextmanager
    def _thinking_refused(self, request: ChatRequest) -> Iterator[None]:
        """Ollama answers reasoning controls on a model that cannot think with a 400; the
        caller gets FAILED_PRECONDITION saying so, as from the other dialects."""
        try:
            yield
        except UpstreamBadRequest as exc:
            if request.reasoning is not None and "does not support thinking" in exc.message:
                raise reasoning_unsupported(self.name, request.model, "Ollama says it does not think") from None
            raise

    async def chat(self, request: ChatRequest, call: CallContext = NO_CALL) -> CompletionResponse:
        body = await offload.run(self._body, request, False)
        with self._thinking_refused(request):
            data = await self.request_json("POST", "/api/chat", body=body, call=call)
        if not isinstance(data, dict):
            raise self._protocol("answered with JSON that is not an object")
        if "error" in data:
            raise self._line_error(data)
        turn = _Turn(request.model)
        turn.feed(data)
        if not turn.done:
            raise self._protocol("answered without done: true")
        return CompletionResponse(
            content="".join(turn.content),
            tool_calls=turn.calls.calls(),
            stop_reason=turn.stop_reason(),
            raw_stop_reason=turn.done_reason,
            usage=turn.usage,
            model=turn.model,
            provider=self.name,
            reasoning_content="".join(turn.reasoning),
            parts=turn.parts(),
            metadata=turn.metadata,
        )

    async def stream(self, request: ChatRequest, call: CallContext = NO_CALL) -> AsyncGenerator[StreamChunk, None]:
        body = await offload.run(self._body, request, True)
        turn = _Turn(request.model)
        with self._thinking_refused(request):
            async with self.send("POST", "/api/chat", body=body, call=call) as response:
                async for line in response.lines():
                    try:
                        data = jsonwire.loads(line)
                    except ValueError:
                        raise self._protocol("sent a stream line that is not JSON") from None
                    if not isinstance(data, dict):
                        raise self._protocol("sent a stream line that is not a JSON object")
                    if "error" in data:
                        # Errors after the 200 status arrive as a bare {"error": "..."} line.
                        raise self._line_error(data)
                    for chunk in turn.feed(data):
                        yield chunk
                    if turn.done:
                        break  # leaving the block reads the rest, so the connection is reused
        if not turn.done:
            raise self._protocol("stream ended before its done: true line")
        yield StreamChunk(
            tool_calls=turn.calls.calls(),
            stop_reason=turn.stop_reason(),
            raw_stop_reason=turn.done_reason,
            is_final=True,
            usage=turn.usage,
            model=turn.model,
            provider=self.name,
            parts=turn.parts(),
            metadata=turn.metadata,  # Ollama's extras (timings) come with its last line
        )

    # -- embeddings, models, capabilities, health ---------------------------------------

    async def embed(self, request: EmbedRequest, call: CallContext = NO_CALL) -> EmbedResponse:
        body: dict[str, Any] = {"model": request.model, "input": list(request.inputs)}
        if request.dimensions is not None:
            body["dimensions"] = request.dimensions
        if self.options.keep_alive is not None:
            body["keep_alive"] = self.options.keep_alive
        data = await self.request_json("POST", "/api/embed", body=body, call=call)
        embeddings = data.get("embeddings") if isinstance(data, dict) else None
        if not isinstance(embeddings, list) or len(embeddings) != len(request.inputs):
            raise self._protocol("answered /api/embed with the wrong number of vectors")
        packed: list[bytes] = []
        for vector in embeddings:
            if not isinstance(vector, list):
                raise self._protocol("answered /api/embed with a vector that is not a list")
            try:
                packed.append(vectors.pack(vector))
            except (TypeError, OverflowError):
                raise self._protocol("answered /api/embed with values that are not numbers") from None
        prompt = _int(data.get("prompt_eval_count"))
        return EmbedResponse(
            vectors=packed,
            usage=Usage(prompt_tokens=prompt, total_tokens=prompt),
            model=str(data.get("model") or request.model),
            provider=self.name,
        )

    async def list_models(self) -> list[str]:
        """The models the server has pulled (`/api/tags`)."""
        data = await self.request_json("GET", "/api/tags")
        models = data.get("models") if isinstance(data, dict) else None
        if not isinstance(models, list):
            raise self._protocol("answered /api/tags without a models list")
        return [str(m.get("model") or m.get("name")) for m in models if isinstance(m, dict)]

    async def discover_capabilities(self, model: str) -> Capabilities | None:
        data = await self.request_json("POST", "/api/show", body={"model": model})
        if not isinstance(data, dict):
            return None
        info = data.get("model_info")
        info = info if isinstance(info, dict) else {}
        # The key is "<architecture>.context_length" ("llama.", "gemma3.", "qwen3." ...).
        arch = info.get("general.architecture")
        context = _int(info.get(f"{arch}.context_length")) if isinstance(arch, str) else 0
        capabilities = data.get("capabilities")
        if isinstance(capabilities, list):
            names = {str(c) for c in capabilities}
            tools = "tools" in names
            completion = "completion" in names
            embedding = "embedding" in names
            vision = "vision" in names
        else:
            # Servers before the `capabilities` field: a template that renders tools takes them.
            tools = ".Tools" in str(data.get("template") or "")
            completion, embedding, vision = True, False, False
        return Capabilities(
            model=model,
            context_window=context,
            supports_tools=tools,
            supports_streaming=completion,
            supports_embeddings=embedding,
            supports_vision=vision,
            supports_response_format=completion,  # `format` works with any generating model
            source=Source.PROVIDER,
        )

    async def health_check(self) -> bool:
        try:
            data = await self.request_json("GET", "/api/version")
        except PorticoError:
            return False
        return isinstance(data, dict) and "version" in data

    # -- errors -------------------------------------------------------------------------

    def _protocol(self, what: str) -> UpstreamProtocol:
        return UpstreamProtocol(f"provider {self.name!r} {what}", provider=self.name)

    def _line_error(self, data: Mapping[str, Any]) -> UpstreamError:
        """An `{"error": "..."}` object in a 200 answer: the model failed while running."""
        err = data.get("error")
        message = err.get("message") if isinstance(err, dict) else err
        text = f"provider {self.name!r}: {self.scrub(str(message or 'error while running the model'))}"
        if looks_like_context_overflow(text):
            return ContextLengthExceeded(text, provider=self.name)
        return UpstreamUnavailable(text, provider=self.name)


# -- the request ----------------------------------------------------------------------------


def build_chat_request(request: ChatRequest, options: OllamaOptions) -> dict[str, Any]:
    """The `/api/chat` body (without `stream`)."""
    names_by_id: dict[str, str] = {}
    messages: list[dict[str, Any]] = []
    for i, message in enumerate(request.messages):
        messages.append(_message(message, i, names_by_id))
        for call in message.tool_calls:
            names_by_id[call.id] = call.name
    body: dict[str, Any] = {"model": request.model, "messages": messages}

    tools = request.tools
    choice = request.tool_choice
    if choice is not None and choice.mode is ToolChoiceMode.NONE:
        tools = []  # Ollama has no tool_choice: a model that sees no tools calls none
    elif choice is not None and choice.mode is ToolChoiceMode.TOOL:
        tools = [t for t in tools if t.name == choice.tool_name]
    if tools:
        body["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": t.name,
                    "description": t.description,
                    "parameters": t.parameters or {"type": "object", "properties": {}},
                },
            }
            for t in tools
        ]

    fmt = request.response_format
    if fmt is not None and fmt.type is ResponseFormatType.JSON_SCHEMA and fmt.schema is not None:
        body["format"] = fmt.schema
    elif fmt is not None and fmt.type is not ResponseFormatType.TEXT:
        body["format"] = "json"

    sampling: dict[str, Any] = {}
    if request.temperature is not None:
        sampling["temperature"] = request.temperature
    if request.top_p is not None:
        sampling["top_p"] = request.top_p
    if request.seed is not None:
        sampling["seed"] = request.seed
    if request.max_tokens is not None:
        sampling["num_predict"] = request.max_tokens
    if request.stop:
        sampling["stop"] = list(request.stop)
    if options.num_ctx is not None:
        sampling["num_ctx"] = options.num_ctx
    if sampling:
        body["options"] = sampling
    if request.reasoning is not None:
        body["think"] = think_value(request.model, request.reasoning)
    elif options.think is not None:
        body["think"] = options.think
    if options.keep_alive is not None:
        body["keep_alive"] = options.keep_alive
    return body


def think_value(model: str, reasoning: ReasoningConfig) -> bool | str:
    """`think` for a request with reasoning controls: gpt-oss takes a level ("low",
    "medium", "high"); other thinking models take only on or off, so the effort and
    budget cannot be honoured beyond switching thinking on."""
    if model.rsplit("/", 1)[-1].startswith("gpt-oss"):
        return effort_for(reasoning).value
    return True


def _message(message: Message, index: int, names_by_id: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {"role": message.role.value, "content": message.text()}
    images = [_image(part.media, f"messages[{index}].parts[{j}].media")
              for j, part in enumerate(message.parts) if part.media is not None]
    if images:
        out["images"] = images
    thinking = "".join(p.reasoning.text for p in message.parts
                       if p.reasoning is not None and p.reasoning.source == REASONING_SOURCE)
    if thinking and message.role is Role.ASSISTANT:
        out["thinking"] = thinking
    if message.tool_calls:
        calls = []
        for j, call in enumerate(message.tool_calls):
            try:
                args = bounded_json.loads(call.arguments or "{}")
            except ValueError:
                args = None
            if not isinstance(args, dict):
                raise InvalidRequest([(f"messages[{index}].tool_calls[{j}].arguments",
                                       "must be a JSON object for Ollama")])
            calls.append({"function": {"name": call.name, "arguments": args}})
        out["tool_calls"] = calls
    if message.role is Role.TOOL:
        name = names_by_id.get(message.tool_call_id) or message.name
        if name:
            out["tool_name"] = name
    return out


def _image(image: MediaPart, field: str) -> str:
    """Ollama takes images as bare base64; it cannot fetch a URL, nor read documents."""
    mime = image.mime_type or (image.uri[len("data:"):].partition(";")[0] if image.uri.startswith("data:") else "")
    if mime and not mime.startswith("image/"):
        raise InvalidRequest([(f"{field}.mime_type", f"Ollama reads images only, not {mime!r}")])
    if image.data:
        return base64.b64encode(image.data).decode("ascii")
    url: str = image.uri
    header, _, payload = url.partition(",")
    if url.startswith("data:") and header.endswith(";base64") and payload:
        try:
            base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidRequest([(f"{field}.uri", "the data: URL holds invalid base64")]) from None
        return payload
    raise InvalidRequest([(f"{field}.uri", "Ollama needs the image's bytes (data or a base64 data: URL), not a link")])


def _merge_nested(body: Mapping[str, Any], passthrough: Mapping[str, Any]) -> dict[str, Any]:
    """The passthrough with objects the body also has merged one level deep, so
    `{"options": {"num_ctx": 8192}}` adds to the sampling options instead of replacing them."""
    return {
        key: {**body[key], **value} if isinstance(value, dict) and isinstance(body.get(key), dict) else value
        for key, value in passthrough.items()
    }


# -- the response ---------------------------------------------------------------------------


_DONE_REASONS = {
    "": StopReason.END_TURN,  # servers before done_reason: done means the turn ended
    "stop": StopReason.END_TURN,
    "length": StopReason.MAX_TOKENS,
}


#: The `source` of the reasoning parts this dialect returns and takes back (`thinking`).
REASONING_SOURCE = "ollama"


class _Turn:
    """Accumulates one assistant turn from `/api/chat` objects (one, or one per line)."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.content: list[str] = []
        self.reasoning: list[str] = []
        self.calls = ToolCallAssembler()
        self.call_count = 0
        self.done = False
        self.done_reason = ""
        self.usage = Usage()
        self.metadata: dict[str, str] = {}
        self.created_at = ""

    def stop_reason(self) -> StopReason:
        if self.calls and self.done_reason in ("stop", ""):
            return StopReason.TOOL_CALLS  # Ollama says "stop" for a tool-call turn too
        return _DONE_REASONS.get(self.done_reason, StopReason.OTHER)

    def parts(self) -> list[ContentPart]:
        """The turn's parts: its thinking, then its text."""
        parts: list[ContentPart] = []
        if self.reasoning:
            parts.append(ContentPart(reasoning=ReasoningPart(text="".join(self.reasoning), source=REASONING_SOURCE)))
        if self.content:
            parts.append(ContentPart(text="".join(self.content)))
        return parts

    def feed(self, data: Mapping[str, Any]) -> list[StreamChunk]:
        """Take in one object; return the deltas it adds."""
        self.model = str(data.get("model") or self.model)
        self.created_at = self.created_at or str(data.get("created_at") or "")
        if data.get("done_reason"):
            self.done_reason = str(data["done_reason"])
        out: list[StreamChunk] = []
        message = data.get("message")
        if isinstance(message, dict):
            thinking = message.get("thinking")
            if isinstance(thinking, str) and thinking:
                self.reasoning.append(thinking)
                out.append(StreamChunk(reasoning_content=thinking))
            content = message.get("content")
            if isinstance(content, str) and content:
                self.content.append(content)
                out.append(StreamChunk(content=content))
            for call in message.get("tool_calls") or []:
                if isinstance(call, dict):
                    out.append(self._tool_call(call))
        if data.get("done") is True:
            self.done = True
            prompt = _int(data.get("prompt_eval_count"))
            completion = _int(data.get("eval_count"))
            self.usage = Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion)
            for key in ("total_duration", "load_duration", "prompt_eval_duration", "eval_duration"):
                if key in data:
                    self.metadata[f"{key}_ns"] = str(_int(data[key]))
        return out

    def _tool_call(self, call: Mapping[str, Any]) -> StreamChunk:
        function = call.get("function")
        function = function if isinstance(function, dict) else {}
        # Our own count, not function.index: older servers send no index at all.
        index = self.call_count
        self.call_count += 1
        name = str(function.get("name") or "")
        args = function.get("arguments")
        if isinstance(args, str):
            arguments = args  # some models' templates produce the text already
        else:
            arguments = json.dumps(args if isinstance(args, dict) else {}, ensure_ascii=False, separators=(",", ":"))
        upstream_id = call.get("id")
        call_id = portable_call_id(upstream_id) if isinstance(upstream_id, str) else ""
        if not call_id:
            call_id = synthesized_call_id(self.created_at, index, name, arguments)
        delta = self.calls.add(index, id=call_id, name=name, arguments=arguments)
        return StreamChunk(tool_call_deltas=[delta])


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


# -- registration ---------------------------------------------------------------------------


def base_url_from_host(host: str) -> str:
    """A base URL from OLLAMA_HOST as the Ollama CLI reads it: "host", "host:port" or a URL.
    No scheme means http and port 11434; a scheme without a port means its default port."""
    host = host.strip().rstrip("/")
    if "://" not in host:
        parts = urlsplit(f"http://{host}")
        port = parts.port or DEFAULT_PORT
        hostname = parts.hostname or "127.0.0.1"
    else:
        parts = urlsplit(host)
        hostname = parts.hostname or "127.0.0.1"
        port = parts.port or (443 if parts.scheme == "https" else 80)
    if hostname == "0.0.0.0":
        hostname = "127.0.0.1"  # the server's "listen everywhere" address, as a client address
    if ":" in hostname:
        hostname = f"[{hostname}]"
    scheme = parts.scheme or "http"
    return f"{scheme}://{hostname}:{port}{parts.path}"


def from_environment(environ: Mapping[str, str]) -> list[ProviderSettings]:
    """Provider "ollama" when OLLAMA_HOST is set (Ollama needs no key to detect it by)."""
    host = environ.get("OLLAMA_HOST")
    if not host:
        return []
    return [ProviderSettings(name="ollama", kind="ollama", base_url=base_url_from_host(host))]


registry.register("ollama", OllamaProvider)
registry.add_environment_hook(from_environment)

"""`gemini`: Google's Gemini API in its native dialect (`generateContent`).

Chat goes to `models/{model}:generateContent`, streaming to `:streamGenerateContent?alt=sse`,
embeddings to `:batchEmbedContents`, token counts to `:countTokens`, and discovery reads
`models/{model}`. The key travels in the `x-goog-api-key` header, never in the URL, so it
cannot end up in an access log.

Gemini has no tool-call ids and wants each function call's `thoughtSignature` back on
the next turn. Portico makes a stable id per call and, for the call that carries a
signature, appends the signature to the id (`call_<digest>~<signature>`); when the
caller sends the assistant turn back, the signature is recovered from the id. That keeps
the gateway stateless: any replica can serve the next turn.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import mimetypes
import re
from collections.abc import AsyncGenerator, Mapping
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
    EmbedRequest,
    EmbedResponse,
    ImagePart,
    Message,
    ResponseFormatType,
    Role,
    Source,
    StopReason,
    StreamChunk,
    TokenCount,
    ToolChoiceMode,
    Usage,
)
from ..errors import (
    InvalidRequest,
    PorticoError,
    UpstreamAuth,
    UpstreamError,
    UpstreamOverloaded,
    UpstreamProtocol,
    UpstreamTimeout,
    parse_retry_after,
    upstream_error,
)
from . import registry
from .base import merge_passthrough
from .http import HttpProvider
from .streaming import ToolCallAssembler

#: The API refuses request bodies over 20 MiB ("Request payload size exceeds the limit").
DEFAULT_MAX_REQUEST_BYTES = 20 * 1024 * 1024
#: batchEmbedContents takes at most this many texts per call.
EMBED_BATCH_SIZE = 100

_SIGNATURE_SEPARATOR = "~"  # not in the base64 alphabet, so it cannot occur in a signature
_OUR_CALL_ID = re.compile(r"^call_[0-9a-f]{24}~(?P<signature>.+)$", re.DOTALL)


class GeminiOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: The API version in every path.
    api_version: str = Field(default="v1beta", pattern=r"^[A-Za-z0-9_.-]+$")
    #: Ask thinking models for thought summaries (`thinkingConfig.includeThoughts`); they
    #: arrive as `reasoning_content`. Models without thinking reject the setting.
    include_thoughts: bool = False
    #: "openapi": send JSON Schemas as `parameters` / `responseSchema` (Gemini's OpenAPI
    #: subset; Portico converts them). "json_schema": send them unchanged as
    #: `parametersJsonSchema` / `responseJsonSchema` (newer models only).
    schema_dialect: Literal["openapi", "json_schema"] = "openapi"
    #: Carry each function call's thought signature inside its tool-call id (see above).
    carry_thought_signatures: bool = True


class GeminiProvider(HttpProvider):
    kind: ClassVar[str] = "gemini"
    Options = GeminiOptions
    options: GeminiOptions
    default_base_url = "https://generativelanguage.googleapis.com"

    def __init__(self, settings: ProviderSettings) -> None:
        if settings.max_request_bytes is None:
            settings = settings.model_copy(update={"max_request_bytes": DEFAULT_MAX_REQUEST_BYTES})
        super().__init__(settings)

    def auth_headers(self) -> dict[str, str]:
        key = self.api_key()
        return {"x-goog-api-key": key} if key else {}

    def _path(self, model: str, method: str = "") -> str:
        """`/v1beta/models/{model}[:method]`; tuned models keep their own collection."""
        if model.startswith("tunedModels/"):
            resource = "tunedModels/" + quote(model.removeprefix("tunedModels/"), safe="")
        else:
            resource = "models/" + quote(model.removeprefix("models/"), safe="")
        return f"/{self.options.api_version}/{resource}" + (f":{method}" if method else "")

    # -- chat ---------------------------------------------------------------------------

    def _body(self, request: ChatRequest) -> dict[str, Any]:
        body = build_generate_request(request, self.options)
        if request.passthrough:
            body = merge_passthrough(body, merge_nested(body, request.passthrough))
        return body

    async def chat(self, request: ChatRequest) -> CompletionResponse:
        data = await self.request_json(
            "POST", self._path(request.model, "generateContent"), body=self._body(request), timeout=request.timeout
        )
        if not isinstance(data, dict):
            raise self._protocol("answered with JSON that is not an object")
        turn = _Turn(request.model, self.options.carry_thought_signatures)
        turn.feed(data)
        if not turn.finished:
            raise self._protocol("answered without a candidate or a finish reason")
        return CompletionResponse(
            content="".join(turn.content),
            tool_calls=turn.calls.calls(),
            stop_reason=turn.stop_reason(),
            raw_stop_reason=turn.raw_stop,
            usage=turn.usage,
            model=turn.model,
            provider=self.name,
            reasoning_content="".join(turn.reasoning),
            metadata={"response_id": turn.response_id} if turn.response_id else {},
        )

    async def stream(self, request: ChatRequest) -> AsyncGenerator[StreamChunk, None]:
        body = self._body(request)
        turn = _Turn(request.model, self.options.carry_thought_signatures)
        async with self.send(
            "POST",
            self._path(request.model, "streamGenerateContent"),
            body=body,
            params={"alt": "sse"},
            timeout=request.timeout,
            headers={"accept": "text/event-stream"},
        ) as response:
            events = EventSource(response).aiter_sse()
            try:
                async for event in events:
                    if not event.data:
                        continue
                    try:
                        data = json.loads(event.data)
                    except ValueError:
                        raise self._protocol("sent a stream event that is not JSON") from None
                    if not isinstance(data, dict):
                        raise self._protocol("sent a stream event that is not a JSON object")
                    if "error" in data:
                        raise self._stream_error(data)
                    for chunk in turn.feed(data):
                        yield chunk
            except SSEError:
                raise self._protocol("answered a stream with a body that is not an event stream") from None
            finally:
                await events.aclose()
        if not turn.finished:
            # Gemini sends no [DONE]: a stream whose last event has no finishReason was cut.
            raise self._protocol("stream ended before its finish reason")
        yield StreamChunk(
            tool_calls=turn.calls.calls(),
            stop_reason=turn.stop_reason(),
            raw_stop_reason=turn.raw_stop,
            is_final=True,
            usage=turn.usage,
            model=turn.model,
            provider=self.name,
        )

    # -- embeddings, tokens, capabilities, health ---------------------------------------

    async def embed(self, request: EmbedRequest) -> EmbedResponse:
        resource = self._path(request.model).split("/", 2)[2]  # "models/<name>"
        vectors: list[list[float]] = []
        for start in range(0, len(request.inputs), EMBED_BATCH_SIZE):
            batch = request.inputs[start : start + EMBED_BATCH_SIZE]
            items: list[dict[str, Any]] = []
            for text in batch:
                item: dict[str, Any] = {"model": resource, "content": {"parts": [{"text": text}]}}
                if request.dimensions is not None:
                    item["outputDimensionality"] = request.dimensions
                items.append(item)
            data = await self.request_json(
                "POST", self._path(request.model, "batchEmbedContents"),
                body={"requests": items}, timeout=request.timeout,
            )
            embeddings = data.get("embeddings") if isinstance(data, dict) else None
            if not isinstance(embeddings, list) or len(embeddings) != len(batch):
                raise self._protocol("answered an embedding batch with the wrong number of vectors")
            for embedding in embeddings:
                values = embedding.get("values") if isinstance(embedding, dict) else None
                if not isinstance(values, list):
                    raise self._protocol("answered an embedding without values")
                vectors.append([float(v) for v in values])
        return EmbedResponse(vectors=vectors, model=request.model, provider=self.name)

    async def count_tokens(self, request: ChatRequest) -> TokenCount:
        generate = build_generate_request(request, self.options)
        generate.pop("generationConfig", None)  # sampling does not change the prompt's count
        # Only this nested form counts the system instruction and tools too.
        generate["model"] = self._path(request.model).split("/", 2)[2]
        data = await self.request_json(
            "POST", self._path(request.model, "countTokens"),
            body={"generateContentRequest": generate}, timeout=request.timeout,
        )
        if not isinstance(data, dict):
            raise self._protocol("answered countTokens with JSON that is not an object")
        # Protobuf JSON leaves out zero values: no totalTokens means nothing to count.
        total = data.get("totalTokens", 0)
        if not isinstance(total, int):
            raise self._protocol("answered countTokens without an integer totalTokens")
        return TokenCount(tokens=total, source=Source.PROVIDER, model=request.model)

    async def discover_capabilities(self, model: str) -> Capabilities | None:
        data = await self.request_json("GET", self._path(model))
        if not isinstance(data, dict):
            return None
        methods = data.get("supportedGenerationMethods") or []
        generates = "generateContent" in methods
        known = self.known_capabilities(model)
        return Capabilities(
            model=model,
            context_window=_int(data.get("inputTokenLimit")),
            max_output_tokens=_int(data.get("outputTokenLimit")),
            supports_tools=generates,
            supports_streaming=generates,
            supports_embeddings="embedContent" in methods or "batchEmbedContents" in methods,
            # The model resource does not say; every Gemini chat model reads images.
            supports_vision=known.supports_vision if known else generates,
            supports_response_format=generates,
            source=Source.PROVIDER,
        )

    def known_capabilities(self, model: str) -> Capabilities | None:
        return known_gemini_model(model.removeprefix("models/"))

    async def health_check(self) -> bool:
        try:
            await self.request_json("GET", f"/{self.options.api_version}/models", params={"pageSize": "1"})
        except PorticoError:
            return False
        return True

    # -- errors -------------------------------------------------------------------------

    def _protocol(self, what: str) -> UpstreamProtocol:
        return UpstreamProtocol(f"provider {self.name!r} {what}", provider=self.name)

    def error_from_response(self, status: int, headers: httpx.Headers, body: bytes) -> UpstreamError:
        return self._google_error(status, _error_object(body), parse_retry_after(headers))

    def _stream_error(self, data: dict[str, Any]) -> UpstreamError:
        """An `{"error": {...}}` event after HTTP 200: the status is in the object."""
        err = data.get("error")
        obj = err if isinstance(err, dict) else {"message": str(err)}
        code = obj.get("code")
        status = code if isinstance(code, int) and 400 <= code <= 599 else 500
        return self._google_error(status, obj, None)

    def _google_error(self, status: int, err: Mapping[str, Any], retry_after: float | None) -> UpstreamError:
        """Map a `google.rpc.Status`-shaped error body (`{code, message, status, details}`)."""
        message = self.scrub(str(err.get("message") or "")) or f"HTTP {status}"
        text = f"provider {self.name!r}: {message}"
        rpc_status = str(err.get("status") or "")
        reason = ""
        for detail in err.get("details") or []:
            if not isinstance(detail, dict):
                continue
            kind = str(detail.get("@type", ""))
            if kind.endswith("google.rpc.ErrorInfo"):
                reason = str(detail.get("reason") or "")
            elif kind.endswith("google.rpc.RetryInfo") and retry_after is None:
                retry_after = _duration_seconds(detail.get("retryDelay"))
        code = self.scrub(reason or rpc_status)
        meta = {"upstream_code": code} if code else None
        # A bad key is a 400 INVALID_ARGUMENT with reason API_KEY_INVALID, not a 401.
        if reason.startswith("API_KEY_") or rpc_status in ("UNAUTHENTICATED", "PERMISSION_DENIED"):
            return UpstreamAuth(text, provider=self.name, status=status, metadata=meta)
        if status == 503 and "overload" in message.lower():
            return UpstreamOverloaded(text, provider=self.name, status=status, retry_after=retry_after, metadata=meta)
        if status == 504 or rpc_status == "DEADLINE_EXCEEDED":
            return UpstreamTimeout(text, provider=self.name, status=status, metadata=meta)
        return upstream_error(status, text, provider=self.name, code=code, retry_after=retry_after)


# -- the request ----------------------------------------------------------------------------


def build_generate_request(request: ChatRequest, options: GeminiOptions) -> dict[str, Any]:
    """The `GenerateContentRequest` body for a chat request."""
    system: list[dict[str, Any]] = []
    contents: list[dict[str, Any]] = []
    names_by_id: dict[str, str] = {}
    for i, message in enumerate(request.messages):
        if message.role is Role.SYSTEM:
            text = message.text()
            if text:
                system.append({"text": text})
            continue
        if message.role is Role.TOOL:
            part = _function_response(message, names_by_id, i)
            previous = contents[-1] if contents else None
            # All answers to one model turn go back together, in one user turn.
            if previous is not None and previous["role"] == "user" and "functionResponse" in previous["parts"][0]:
                previous["parts"].append(part)
            else:
                contents.append({"role": "user", "parts": [part]})
            continue
        if message.role is Role.ASSISTANT:
            parts = _model_parts(message, i)
            for call in message.tool_calls:
                names_by_id[call.id] = call.name
            if parts:
                contents.append({"role": "model", "parts": parts})
            continue
        parts = _user_parts(message, i)
        if parts:
            contents.append({"role": "user", "parts": parts})

    body: dict[str, Any] = {"contents": contents}
    if system:
        body["systemInstruction"] = {"parts": system}
    tools = _tools(request, options)
    if tools:
        body["tools"] = [{"functionDeclarations": tools}]
        tool_config = _tool_config(request)
        if tool_config:
            body["toolConfig"] = tool_config
    config = _generation_config(request, options)
    if config:
        body["generationConfig"] = config
    return body


def _user_parts(message: Message, index: int) -> list[dict[str, Any]]:
    if not message.parts:
        return [{"text": message.content}] if message.content else []
    parts: list[dict[str, Any]] = []
    for j, part in enumerate(message.parts):
        if part.text is not None:
            if part.text:
                parts.append({"text": part.text})
        elif part.image is not None:
            parts.append(_image_part(part.image, f"messages[{index}].parts[{j}].image"))
    return parts


def _image_part(image: ImagePart, field: str) -> dict[str, Any]:
    if image.data:
        mime = image.mime_type or "image/png"
        return {"inlineData": {"mimeType": mime, "data": base64.b64encode(image.data).decode("ascii")}}
    if image.url.startswith("data:"):
        header, _, payload = image.url.partition(",")
        if not header.endswith(";base64") or not payload:
            raise InvalidRequest([(f"{field}.url", "a data: URL must be base64-encoded (data:<mime>;base64,...)")])
        try:
            base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidRequest([(f"{field}.url", "the data: URL holds invalid base64")]) from None
        mime = image.mime_type or header[len("data:") : -len(";base64")] or "image/png"
        return {"inlineData": {"mimeType": mime, "data": payload}}
    mime = image.mime_type or mimetypes.guess_type(image.url)[0] or "image/jpeg"
    return {"fileData": {"mimeType": mime, "fileUri": image.url}}


def _model_parts(message: Message, index: int) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    text = message.text()
    if text:
        parts.append({"text": text})
    for j, call in enumerate(message.tool_calls):
        try:
            args = json.loads(call.arguments or "{}")
        except ValueError:
            args = None
        if not isinstance(args, dict):
            raise InvalidRequest([(
                f"messages[{index}].tool_calls[{j}].arguments", "must be a JSON object for Gemini"
            )])
        part: dict[str, Any] = {"functionCall": {"name": call.name, "args": args}}
        match = _OUR_CALL_ID.match(call.id)
        if match:
            part["thoughtSignature"] = match.group("signature")
        parts.append(part)
    return parts


def _function_response(message: Message, names_by_id: Mapping[str, str], index: int) -> dict[str, Any]:
    name = names_by_id.get(message.tool_call_id) or message.name
    if not name:
        raise InvalidRequest([(
            f"messages[{index}].tool_call_id",
            "matches no tool call of an earlier assistant message (Gemini needs the function's name)",
        )])
    text = message.text()
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = None
    # `response` must be an object; Gemini reads plain results from its "output" key.
    response = parsed if isinstance(parsed, dict) else {"output": text}
    return {"functionResponse": {"name": name, "response": response}}


def _tools(request: ChatRequest, options: GeminiOptions) -> list[dict[str, Any]]:
    declarations = []
    for tool in request.tools:
        decl: dict[str, Any] = {"name": tool.name}
        if tool.description:
            decl["description"] = tool.description
        if tool.parameters.get("properties"):
            if options.schema_dialect == "json_schema":
                decl["parametersJsonSchema"] = tool.parameters
            else:
                decl["parameters"] = openapi_schema(tool.parameters)
        declarations.append(decl)
    return declarations


def _tool_config(request: ChatRequest) -> dict[str, Any]:
    choice = request.tool_choice
    if choice is None or choice.mode in (ToolChoiceMode.UNSPECIFIED, ToolChoiceMode.AUTO):
        return {}
    if choice.mode is ToolChoiceMode.NONE:
        return {"functionCallingConfig": {"mode": "NONE"}}
    config: dict[str, Any] = {"mode": "ANY"}
    if choice.mode is ToolChoiceMode.TOOL:
        config["allowedFunctionNames"] = [choice.tool_name]
    return {"functionCallingConfig": config}


def _generation_config(request: ChatRequest, options: GeminiOptions) -> dict[str, Any]:
    config: dict[str, Any] = {}
    if request.temperature is not None:
        config["temperature"] = request.temperature
    if request.top_p is not None:
        config["topP"] = request.top_p
    if request.max_tokens is not None:
        config["maxOutputTokens"] = request.max_tokens
    if request.stop:
        config["stopSequences"] = list(request.stop)
    if request.seed is not None:
        config["seed"] = request.seed
    fmt = request.response_format
    if fmt is not None and fmt.type is not ResponseFormatType.TEXT:
        config["responseMimeType"] = "application/json"
        if fmt.type is ResponseFormatType.JSON_SCHEMA and fmt.schema is not None:
            if options.schema_dialect == "json_schema":
                config["responseJsonSchema"] = fmt.schema
            else:
                config["responseSchema"] = openapi_schema(fmt.schema, ordered=True)
    if options.include_thoughts:
        config["thinkingConfig"] = {"includeThoughts": True}
    return config


def merge_nested(body: Mapping[str, Any], passthrough: Mapping[str, Any]) -> dict[str, Any]:
    """The passthrough with objects that the body also has merged into the body's ones, so
    `{"generationConfig": {"topK": 40}}` adds to the generation config instead of replacing it."""
    merged: dict[str, Any] = {}
    for key, value in passthrough.items():
        existing = body.get(key)
        if isinstance(value, dict) and isinstance(existing, dict):
            merged[key] = {**existing, **merge_nested(existing, value)}
        else:
            merged[key] = value
    return merged


# -- JSON Schema -> Gemini's OpenAPI subset -------------------------------------------------

_SCHEMA_KEYS = frozenset({
    "type", "format", "title", "description", "nullable", "enum", "maxItems", "minItems",
    "properties", "required", "minProperties", "maxProperties", "minLength", "maxLength",
    "pattern", "example", "anyOf", "propertyOrdering", "default", "items", "minimum", "maximum",
})
_FORMATS = {"string": {"enum", "date-time"}, "number": {"float", "double"}, "integer": {"int32", "int64"}}
_MAX_REF_DEPTH = 8


def openapi_schema(schema: Mapping[str, Any], *, ordered: bool = False) -> dict[str, Any]:
    """Convert a JSON Schema to the subset Gemini's `Schema` accepts: `$ref`s inlined,
    `["t", "null"]` and `anyOf` with null turned into `nullable`, unknown keywords dropped.
    With `ordered`, objects get `propertyOrdering` so output keys keep the schema's order
    (Gemini otherwise sorts them)."""
    definitions: dict[str, Any] = {}
    for key in ("$defs", "definitions"):
        defs = schema.get(key)
        if isinstance(defs, dict):
            definitions.update({f"#/{key}/{name}": value for name, value in defs.items()})
    return _convert(schema, definitions, ordered, 0)


def _convert(schema: Any, definitions: Mapping[str, Any], ordered: bool, depth: int) -> dict[str, Any]:
    if not isinstance(schema, dict):
        return {}
    ref = schema.get("$ref")
    if isinstance(ref, str):
        target = definitions.get(ref)
        if target is None or depth >= _MAX_REF_DEPTH:
            return {"type": "object"}  # unknown or recursive beyond reach: accept any object
        merged = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
        return _convert(merged, definitions, ordered, depth + 1)
    source = dict(schema)
    for sub in source.pop("allOf", None) or []:
        if isinstance(sub, dict):
            resolved = definitions.get(sub["$ref"], {}) if isinstance(sub.get("$ref"), str) else sub
            source = {**resolved, **source}
    if "oneOf" in source and "anyOf" not in source:
        source["anyOf"] = source.pop("oneOf")
    if "const" in source and "enum" not in source:
        source["enum"] = [source["const"]]

    out: dict[str, Any] = {}
    kind = source.get("type")
    if isinstance(kind, list):
        kinds = [k for k in kind if k != "null"]
        if len(kinds) < len(kind):
            out["nullable"] = True
        if len(kinds) == 1:
            kind = kinds[0]
        else:
            source["anyOf"] = [{"type": k} for k in kinds]
            kind = None
    if isinstance(kind, str) and kind != "null":
        out["type"] = kind

    any_of = source.get("anyOf")
    if isinstance(any_of, list):
        options = [s for s in any_of if not (isinstance(s, dict) and s.get("type") == "null")]
        if len(options) < len(any_of):
            out["nullable"] = True
        if len(options) == 1:
            inner = _convert(options[0], definitions, ordered, depth + 1)
            out = {**inner, **out}
        elif options:
            out["anyOf"] = [_convert(s, definitions, ordered, depth + 1) for s in options]

    for key, value in source.items():
        if key not in _SCHEMA_KEYS or key in ("type", "anyOf", "properties", "items", "nullable"):
            continue
        if key == "format" and value not in _FORMATS.get(str(out.get("type")), set()):
            continue
        if key == "enum" and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            continue  # Gemini enums are strings only
        out[key] = value
    if source.get("nullable") is True:
        out["nullable"] = True

    properties = source.get("properties")
    if isinstance(properties, dict):
        out["properties"] = {
            name: _convert(sub, definitions, ordered, depth + 1) for name, sub in properties.items()
        }
        out.setdefault("type", "object")
        if ordered and properties and "propertyOrdering" not in out:
            out["propertyOrdering"] = list(properties)
    items = source.get("items")
    if isinstance(items, list):
        items = items[0] if items else {}
    if isinstance(items, dict):
        out["items"] = _convert(items, definitions, ordered, depth + 1)
        out.setdefault("type", "array")
    return out


# -- the response ---------------------------------------------------------------------------


_FINISH: dict[str, StopReason] = {
    "STOP": StopReason.END_TURN,
    "MAX_TOKENS": StopReason.MAX_TOKENS,
    "SAFETY": StopReason.CONTENT_FILTER,
    "RECITATION": StopReason.CONTENT_FILTER,
    "BLOCKLIST": StopReason.CONTENT_FILTER,
    "PROHIBITED_CONTENT": StopReason.CONTENT_FILTER,
    "SPII": StopReason.CONTENT_FILTER,
    "IMAGE_SAFETY": StopReason.CONTENT_FILTER,
}


class _Turn:
    """Accumulates one model turn from a `GenerateContentResponse` or a stream of them."""

    def __init__(self, model: str, carry_signatures: bool) -> None:
        self.model = model
        self.carry_signatures = carry_signatures
        self.content: list[str] = []
        self.reasoning: list[str] = []
        self.calls = ToolCallAssembler()
        self.call_count = 0
        self.raw_stop = ""
        self.finished = False
        self.usage = Usage()
        self.response_id = ""

    def stop_reason(self) -> StopReason:
        if self.raw_stop == "STOP" and self.calls:
            # Gemini says STOP even when the turn is function calls.
            return StopReason.TOOL_CALLS
        return _FINISH.get(self.raw_stop, StopReason.OTHER)

    def feed(self, data: Mapping[str, Any]) -> list[StreamChunk]:
        """Take in one response (or stream event); return the deltas it adds."""
        self.model = str(data.get("modelVersion") or self.model)
        self.response_id = str(data.get("responseId") or self.response_id)
        usage = data.get("usageMetadata")
        if isinstance(usage, dict):
            self.usage = _usage(usage)  # cumulative: the last one is the total
        candidates = data.get("candidates")
        if not candidates:
            feedback = data.get("promptFeedback")
            block = feedback.get("blockReason") if isinstance(feedback, dict) else None
            if block:
                # The prompt itself was blocked: no candidate at all.
                self.raw_stop = str(block)
                self.finished = True
            return []
        candidate = candidates[0] if isinstance(candidates[0], dict) else {}
        out: list[StreamChunk] = []
        content = candidate.get("content")
        parts = content.get("parts") if isinstance(content, dict) else None
        for part in parts or []:
            if isinstance(part, dict):
                delta = self._part(part)
                if delta is not None:
                    out.append(delta)
        finish = candidate.get("finishReason")
        if finish:
            self.raw_stop = str(finish)
            self.finished = True
        return out

    def _part(self, part: Mapping[str, Any]) -> StreamChunk | None:
        call = part.get("functionCall")
        if isinstance(call, dict):
            return self._function_call(call, part.get("thoughtSignature"))
        text = part.get("text")
        if not isinstance(text, str) or not text:
            return None  # e.g. an empty text part that only carries a thoughtSignature
        if part.get("thought") is True:
            self.reasoning.append(text)
            return StreamChunk(reasoning_content=text)
        self.content.append(text)
        return StreamChunk(content=text)

    def _function_call(self, call: Mapping[str, Any], signature: Any) -> StreamChunk:
        index = self.call_count
        self.call_count += 1
        name = str(call.get("name") or "")
        args = call.get("args")
        arguments = json.dumps(args if isinstance(args, dict) else {}, ensure_ascii=False, separators=(",", ":"))
        upstream_id = call.get("id")
        digest = hashlib.sha256(
            f"{self.response_id}\0{index}\0{upstream_id or ''}\0{name}\0{arguments}".encode()
        ).hexdigest()[:24]
        call_id = f"call_{digest}"
        if self.carry_signatures and isinstance(signature, str) and signature:
            call_id += _SIGNATURE_SEPARATOR + signature
        delta = self.calls.add(index, id=call_id, name=name, arguments=arguments)
        return StreamChunk(tool_call_deltas=[delta])


def _usage(meta: Mapping[str, Any]) -> Usage:
    prompt = _int(meta.get("promptTokenCount"))
    candidates = _int(meta.get("candidatesTokenCount"))
    thoughts = _int(meta.get("thoughtsTokenCount"))
    completion = candidates + thoughts  # Portico counts reasoning as completion
    total = _int(meta.get("totalTokenCount")) or prompt + completion
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=total,
        cache_read_tokens=_int(meta.get("cachedContentTokenCount")),
        reasoning_tokens=thoughts,
    )


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _duration_seconds(value: Any) -> float | None:
    """A protobuf JSON Duration ("20s", "20.706s") in seconds."""
    if isinstance(value, str) and value.endswith("s"):
        try:
            return max(0.0, float(value[:-1]))
        except ValueError:
            return None
    return None


def _error_object(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except ValueError:
        return {}
    if isinstance(data, list) and data:
        data = data[0]  # some endpoints wrap the error in a list
    if isinstance(data, dict):
        err = data.get("error", data)
        if isinstance(err, dict):
            return err
        if isinstance(err, str):
            return {"message": err}
    return {}


# -- what Portico knows without asking ------------------------------------------------------

#: name prefix -> (context window, max output tokens). The longest matching prefix wins.
_KNOWN: dict[str, tuple[int, int]] = {
    "gemini-3-pro": (1_048_576, 65_536),
    "gemini-3-flash": (1_048_576, 65_536),
    "gemini-2.5-pro": (1_048_576, 65_536),
    "gemini-2.5-flash": (1_048_576, 65_536),
    "gemini-2.5-flash-lite": (1_048_576, 65_536),
    "gemini-2.0-flash": (1_048_576, 8_192),
    "gemini-2.0-flash-lite": (1_048_576, 8_192),
    "gemini-1.5-pro": (2_097_152, 8_192),
    "gemini-1.5-flash": (1_048_576, 8_192),
}
_KNOWN_EMBEDDINGS: dict[str, int] = {
    "gemini-embedding-001": 2_048,
    "text-embedding-004": 2_048,
}


def known_gemini_model(model: str) -> Capabilities | None:
    """Capabilities from Portico's table of Gemini models (source BUILT_IN)."""
    for name, window in _KNOWN_EMBEDDINGS.items():
        if model.startswith(name):
            return Capabilities(
                model=model, context_window=window, supports_tools=False, supports_streaming=False,
                supports_embeddings=True, source=Source.BUILT_IN,
            )
    matches = [prefix for prefix in _KNOWN if model.startswith(prefix)]
    if not matches:
        return None
    window, output = _KNOWN[max(matches, key=len)]
    return Capabilities(
        model=model, context_window=window, max_output_tokens=output, supports_tools=True,
        supports_streaming=True, supports_embeddings=False, supports_vision=True,
        supports_response_format=True, source=Source.BUILT_IN,
    )


# -- registration ---------------------------------------------------------------------------


def from_environment(environ: Mapping[str, str]) -> list[ProviderSettings]:
    """Provider "gemini" when GEMINI_API_KEY (or else GOOGLE_API_KEY) is set."""
    key = environ.get("GEMINI_API_KEY") or environ.get("GOOGLE_API_KEY")
    if not key:
        return []
    return [ProviderSettings(
        name="gemini",
        kind="gemini",
        api_key=SecretStr(key),
        models=["gemini-2.5-flash", "gemini-2.5-pro", "gemini-2.5-flash-lite"],
        default_model="gemini-2.5-flash",
        embedding_model="gemini-embedding-001",
    )]


registry.register("gemini", GeminiProvider)
registry.add_environment_hook(from_environment)

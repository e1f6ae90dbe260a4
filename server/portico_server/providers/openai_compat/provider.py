"""The OpenAI-compatible provider: Chat Completions, SSE streaming, embeddings, model
discovery and token counting over HTTP, shaped by the preset its `kind` names."""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Mapping
from functools import partial
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from ... import jsonwire, offload
from ...call import NO_CALL, CallContext
from ...config import ConfigError, ProviderSettings
from ...domain import (
    Capabilities,
    ChatRequest,
    CompletionResponse,
    EmbedRequest,
    EmbedResponse,
    Source,
    StreamChunk,
    TokenCount,
    Usage,
)
from ...errors import UpstreamBadRequest, UpstreamError, UpstreamModelNotFound, UpstreamProtocol
from ..base import estimated_usage
from ..batching import in_order
from ..http import HttpProvider
from .embeddings import batches, embedding_vectors
from .errors import error_from_http, error_from_payload, redact_key_shapes
from .models import capabilities_from_listing, known_model
from .presets import PRESETS, Preset
from .request import JSON, chat_body, message_json, responses_input
from .response import ChunkReader, chunks_from_completion, parse_completion, parse_usage

log = logging.getLogger("portico.providers.openai")


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
    #: Most embeddings requests of one call in flight at once (a call's inputs beyond one
    #: batch go out as several requests).
    embedding_concurrency: int = Field(default=4, gt=0)
    #: OpenAI-Organization / OpenAI-Project headers.
    organization: str | None = None
    project: str | None = None
    #: Fields merged into every chat request body (before the caller's passthrough).
    extra_body: dict[str, Any] = Field(default_factory=dict)


#: Discovery and health probes are small GETs; they should not wait like a generation.
_PROBE_TIMEOUT = 15.0


class OpenAICompatProvider(HttpProvider):
    """Chat Completions over HTTP: chat, SSE streaming, embeddings, discovery, counting."""

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
            provider=self.name,
        )

    async def chat(self, request: ChatRequest, call: CallContext = NO_CALL) -> CompletionResponse:
        data = await self.request_json(
            "POST",
            self.operation_path("chat/completions", request.model),
            body=await offload.run(self.chat_body, request, stream=False),
            call=call,
            params=self.query_params(),
        )
        return parse_completion(data, provider=self.name, model=request.model, scrub=self.scrub)

    async def stream(self, request: ChatRequest, call: CallContext = NO_CALL) -> AsyncGenerator[StreamChunk, None]:
        body = await offload.run(self.chat_body, request, stream=True)
        reader = ChunkReader(self.name, request.model, self.scrub)
        whole: CompletionResponse | None = None
        done = False
        async with self.send(
            "POST",
            self.operation_path("chat/completions", request.model),
            body=body,
            call=call,
            params=self.query_params(),
            headers={"accept": "text/event-stream"},
        ) as response:
            if not response.is_event_stream:
                # The server ignored `stream: true` and sent one JSON answer.
                whole = parse_completion(self._json(await response.read()), provider=self.name,
                                         model=request.model, scrub=self.scrub)
            else:
                async for event in response.events():
                    data = event.data.strip()
                    if data == "[DONE]":
                        done = True
                        break
                    if not data:
                        continue  # keep-alive events without data
                    payload = self._json(data)
                    if event.event == "error":
                        raise error_from_payload(payload.get("error", payload) if isinstance(payload, dict)
                                                 else payload, self.name, self.scrub)
                    delta = reader.feed(payload)
                    if delta is not None:
                        yield delta
        if whole is not None:
            for chunk in chunks_from_completion(whole):
                yield chunk
            return
        if not done:
            raise UpstreamProtocol(
                f"provider {self.name!r} ended the stream before [DONE]; the answer is incomplete",
                provider=self.name,
            )
        final = reader.finish()
        if final.usage is None:
            # The vendor sent no usage (it refuses stream_options, or ignored it): a stream
            # still ends with figures, marked as the gateway's estimate.
            final.usage = estimated_usage(request, final)
        yield final

    def _json(self, raw: str | bytes) -> Any:
        try:
            return jsonwire.loads(raw)
        except ValueError:
            raise UpstreamProtocol(f"provider {self.name!r} sent data that is not JSON",
                                   provider=self.name) from None

    # -- embeddings --------------------------------------------------------------------------

    def supports_embeddings(self) -> bool:
        return self.preset.embeddings or bool(self.settings.embedding_model)

    async def embed(self, request: EmbedRequest, call: CallContext = NO_CALL) -> EmbedResponse:
        if not self.supports_embeddings():
            return await super().embed(request)
        size = self.options.embedding_batch_size or self.preset.embedding_batch_size
        encoding = self.options.embedding_encoding or ("base64" if self.preset.embedding_base64 else None)
        path = self.operation_path("embeddings", request.model)

        async def one(batch: list[str]) -> tuple[list[bytes], Any]:
            body: JSON = {"model": request.model, "input": batch}
            if request.dimensions is not None:
                body["dimensions"] = request.dimensions
            if encoding == "base64":
                body["encoding_format"] = "base64"
            data = await self.request_json("POST", path, body=body, call=call,
                                           params=self.query_params())
            return embedding_vectors(data, len(batch), provider=self.name, scrub=self.scrub), data

        calls = [partial(one, batch) for batch in batches(request.inputs, size, self.preset.embedding_token_budget)]
        vectors: list[bytes] = []
        usage = Usage()
        model = request.model
        for packed, data in await in_order(calls, self.options.embedding_concurrency):
            vectors.extend(packed)
            part = parse_usage(data.get("usage")) or Usage()
            usage.prompt_tokens += part.prompt_tokens
            usage.total_tokens += part.total_tokens or part.prompt_tokens
            model = str(data.get("model") or model)
        return EmbedResponse(vectors=vectors, usage=usage, model=model, provider=self.name)

    # -- token counting ----------------------------------------------------------------------

    async def count_tokens(self, request: ChatRequest, call: CallContext = NO_CALL) -> TokenCount:
        counter = self.preset.token_counter
        try:
            if counter == "openai_responses":
                data = await self.request_json("POST", "/responses/input_tokens",
                                               body=responses_input(request), call=call)
                tokens = data.get("input_tokens") if isinstance(data, dict) else None
            elif counter == "vllm_tokenize":
                body: JSON = {"model": request.model, "add_generation_prompt": True,
                              "messages": [message_json(m) for m in request.messages]}
                if request.tools:
                    body["tools"] = chat_body(request, self.preset, stream=False)["tools"]
                data = await self.request_json("POST", self._server_root() + "/tokenize",
                                               body=body, call=call)
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

    def error_from_response(self, status: int, headers: Mapping[str, str], body: bytes) -> UpstreamError:
        return error_from_http(status, headers, body, provider=self.name, scrub=self.scrub)

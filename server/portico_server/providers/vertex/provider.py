"""The `vertex` provider: Google Vertex AI, for Gemini and for Claude.

Gemini goes to `.../publishers/google/models/{model}:generateContent` (streams:
`:streamGenerateContent?alt=sse`) in the Gemini dialect; Claude to
`.../publishers/anthropic/models/{model}:rawPredict` (`:streamRawPredict`) in the
Anthropic dialect, with `anthropic_version` in the body and the model only in the path.
Embeddings use `:predict`, token counts `:countTokens` (Gemini) and
`count-tokens:rawPredict` (Claude). Every request carries an OAuth access token from
Application Default Credentials (`credentials`).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from functools import partial
from typing import Any, ClassVar

from ... import jsonwire, offload
from ...call import NO_CALL, CallContext
from ...config import ConfigError, ProviderSettings
from ...domain import (
    Capabilities,
    ChatRequest,
    CompletionResponse,
    EmbedRequest,
    EmbedResponse,
    ReasoningConfig,
    Source,
    StreamChunk,
    TokenCount,
    Usage,
)
from ...errors import CapabilityUnsupported, UpstreamAuth, UpstreamError, UpstreamProtocol, parse_retry_after
from ..anthropic import errors as anthropic_errors
from ..anthropic.models import UNKNOWN_MODEL_MAX_OUTPUT, capabilities, model_facts
from ..anthropic.provider import DEFAULT_MAX_TOKENS_CAP
from ..anthropic.request import ANTHROPIC_RESERVED_PASSTHROUGH, Plan, build_plan, thinking_enabled
from ..anthropic.response import StreamTranslator, completion
from ..base import merge_passthrough
from ..batching import in_order
from ..gemini import GeminiOptions, build_generate_request, known_gemini_model, merge_nested
from ..gemini.errors import error_object, google_error, stream_error
from ..gemini.provider import GEMINI_RESERVED_PASSTHROUGH
from ..gemini.response import Turn
from ..http import HttpProvider, UpstreamResponse
from ..reasoning_controls import budget_for, reasoning_unsupported
from . import embeddings, endpoints
from .credentials import TokenSource
from .options import VertexOptions

#: Claude on Vertex refuses request bodies over 30 MB; Gemini's inline data is bounded
#: by the same figure in practice.
DEFAULT_MAX_REQUEST_BYTES = 30 * 1000 * 1000
#: `:predict` calls of one Embed in flight at once.
EMBED_CONCURRENCY = 4
#: The parts of a Claude body the count-tokens endpoint takes.
_COUNTED_FIELDS = ("messages", "system", "tools", "tool_choice", "thinking")
#: Passthrough may not set the API version either: it is the provider's setting.
ANTHROPIC_VERTEX_RESERVED = ANTHROPIC_RESERVED_PASSTHROUGH | {"anthropic_version"}


class VertexProvider(HttpProvider):
    kind: ClassVar[str] = "vertex"
    reserved_passthrough = GEMINI_RESERVED_PASSTHROUGH | ANTHROPIC_VERTEX_RESERVED
    Options = VertexOptions
    options: VertexOptions

    def __init__(self, settings: ProviderSettings, *, clock: Callable[[], float] = time.monotonic) -> None:
        if settings.api_key is not None or settings.api_keys:
            raise ConfigError(f"provider {settings.name!r}: kind vertex authenticates with Google credentials "
                              "(options.credentials_file or Application Default Credentials), not api_key")
        options = VertexOptions.model_validate(settings.options)
        if settings.max_request_bytes is None:
            settings = settings.model_copy(update={"max_request_bytes": DEFAULT_MAX_REQUEST_BYTES})
        self.default_base_url = endpoints.host(options.location)
        super().__init__(settings)
        self.tokens = TokenSource(
            self.name,
            credentials_file=options.credentials_file,
            margin=options.token_refresh_margin,
            timeout=options.token_timeout,
            clock=clock,
        )
        self._gemini = GeminiOptions(include_thoughts=options.include_thoughts,
                                     schema_dialect=options.schema_dialect)

    async def close(self) -> None:
        await super().close()
        self.tokens.close()

    def auth_headers(self) -> dict[str, str]:
        return {}  # a fresh access token goes with each request (see `send`)

    @contextlib.asynccontextmanager
    async def send(
        self,
        method: str,
        path: str,
        *,
        body: dict[str, Any] | None = None,
        call: CallContext = NO_CALL,
        timeout: float | None = None,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> AsyncIterator[UpstreamResponse]:
        token = await self.tokens.token(call)
        auth = {"authorization": f"Bearer {token}"}
        if self.tokens.quota_project:
            auth["x-goog-user-project"] = self.tokens.quota_project
        try:
            async with super().send(method, path, body=body, call=call, timeout=timeout, params=params,
                                    headers={**(headers or {}), **auth}) as response:
                yield response
        except UpstreamAuth as exc:
            if exc.status == 401:
                self.tokens.invalidate(token)  # revoked or expired early: the next call gets a new one
            raise

    async def _path(self, publisher: str, model: str, method: str, call: CallContext) -> str:
        project = self.options.project
        if not project:
            await self.tokens.token(call)  # loads the credentials, which may name the project
            project = self.tokens.project
        if not project:
            raise UpstreamAuth(f"provider {self.name!r}: no Google Cloud project: set options.project "
                               "(the credentials name none)", provider=self.name)
        return endpoints.model_path(self.options.api_version, project, self.options.location, publisher,
                                    model, method)

    def publisher(self, model: str) -> endpoints.Publisher:
        return endpoints.publisher_of(model, self.options.publisher)

    # -- chat ---------------------------------------------------------------------------

    async def chat(self, request: ChatRequest, call: CallContext = NO_CALL) -> CompletionResponse:
        if self.publisher(request.model) == "anthropic":
            return await self._claude_chat(request, call)
        return await self._gemini_chat(request, call)

    async def stream(self, request: ChatRequest, call: CallContext = NO_CALL) -> AsyncGenerator[StreamChunk, None]:
        if self.publisher(request.model) == "anthropic":
            inner = self._claude_stream(request, call)
        else:
            inner = self._gemini_stream(request, call)
        # Closing this stream closes the inner one at once, and with it the upstream response.
        async with contextlib.aclosing(inner):
            async for chunk in inner:
                yield chunk

    # -- Gemini -------------------------------------------------------------------------

    def _gemini_body(self, request: ChatRequest) -> dict[str, Any]:
        body = build_generate_request(request, self._gemini, self.name)
        if request.passthrough:
            body = merge_passthrough(body, merge_nested(body, request.passthrough), GEMINI_RESERVED_PASSTHROUGH)
        return body

    async def _gemini_chat(self, request: ChatRequest, call: CallContext) -> CompletionResponse:
        body = await offload.run(self._gemini_body, request)
        path = await self._path("google", request.model, "generateContent", call)
        data = await self.request_json("POST", path, body=body, call=call)
        if not isinstance(data, dict):
            raise self._protocol("answered with JSON that is not an object")
        turn = Turn(request.model)
        turn.feed(data)
        if not turn.finished:
            raise self._protocol("answered without a candidate or a finish reason")
        return turn.completion(self.name)

    async def _gemini_stream(self, request: ChatRequest, call: CallContext) -> AsyncGenerator[StreamChunk, None]:
        body = await offload.run(self._gemini_body, request)
        path = await self._path("google", request.model, "streamGenerateContent", call)
        turn = Turn(request.model)
        async with self.send("POST", path, body=body, params={"alt": "sse"}, call=call,
                             headers={"accept": "text/event-stream"}) as response:
            if not response.is_event_stream:
                raise self._protocol("answered a stream with a body that is not an event stream")
            async for event in response.events():
                if not event.data:
                    continue
                data = self._event_json(event.data)
                if "error" in data:
                    raise stream_error(data, provider=self.name, scrub=self.scrub)
                for chunk in turn.feed(data):
                    yield chunk
        if not turn.finished:
            # No [DONE] in this dialect: a stream whose last event has no finishReason was cut.
            raise self._protocol("stream ended before its finish reason")
        yield turn.final_chunk(self.name)

    # -- Claude -------------------------------------------------------------------------

    def _claude_plan(self, request: ChatRequest, *, stream: bool) -> Plan:
        if request.reasoning is not None:
            facts = model_facts(_claude_family(request.model))
            if facts is not None and not facts.thinking:
                raise reasoning_unsupported(self.name, request.model, "it has no extended thinking "
                                            "(Claude 3.7 Sonnet and later have)")
        plan = build_plan(request, self._default_max_tokens(request.model, request.passthrough, request.reasoning))
        body = plan.body
        body.pop("model", None)  # the model is in the path; Vertex refuses it in the body
        body["anthropic_version"] = self.options.anthropic_version
        if stream:
            body["stream"] = True
        else:
            body.pop("stream", None)
        return plan

    def _claude_headers(self) -> dict[str, str]:
        betas = self.options.anthropic_betas
        return {"anthropic-beta": ",".join(betas)} if betas else {}

    def _default_max_tokens(self, model: str, passthrough: Mapping[str, Any],
                            reasoning: ReasoningConfig | None) -> int:
        """As the `anthropic` provider: the model's output limit up to 16384, plus any
        thinking budget, unless configured."""
        if self.options.default_max_tokens is not None:
            return self.options.default_max_tokens
        override = self.settings.capabilities.get(model)
        facts = model_facts(_claude_family(model))
        if override is not None and override.max_output_tokens:
            limit = override.max_output_tokens
        else:
            limit = facts.max_output_tokens if facts else UNKNOWN_MODEL_MAX_OUTPUT
        chosen = min(limit, DEFAULT_MAX_TOKENS_CAP)
        if thinking_enabled(passthrough, reasoning):
            # max_tokens must exceed the thinking budget, or the answer gets no room.
            thinking = passthrough.get("thinking")
            budget = thinking.get("budget_tokens") if isinstance(thinking, dict) else None
            if budget is None and reasoning is not None:
                budget = budget_for(reasoning)
            if isinstance(budget, int) and budget > 0:
                chosen = min(limit, budget + chosen)
        return chosen

    async def _claude_chat(self, request: ChatRequest, call: CallContext) -> CompletionResponse:
        plan = await offload.run(partial(self._claude_plan, request, stream=False))
        path = await self._path("anthropic", request.model, "rawPredict", call)
        async with self.send("POST", path, body=plan.body, call=call, headers=self._claude_headers()) as response:
            raw = await response.read()
            request_id = response.headers.get("request-id", "")
        return completion(raw, answer_tool=plan.answer_tool, request_id=request_id, provider=self.name)

    async def _claude_stream(self, request: ChatRequest, call: CallContext) -> AsyncGenerator[StreamChunk, None]:
        plan = await offload.run(partial(self._claude_plan, request, stream=True))
        path = await self._path("anthropic", request.model, "streamRawPredict", call)
        translator = StreamTranslator(self.name, plan.answer_tool)
        async with self.send("POST", path, body=plan.body, call=call,
                             headers={"accept": "text/event-stream", **self._claude_headers()}) as response:
            if not response.is_event_stream:
                raise self._protocol("answered a stream request without text/event-stream")
            translator.request_id = response.headers.get("request-id", "")
            async for event in response.events():
                if not event.data:
                    continue
                data = self._event_json(event.data)
                kind = str(data.get("type") or event.event)
                if kind == "error":
                    raise anthropic_errors.error_from_event(self, data)
                chunk = translator.feed(kind, data)
                if translator.finished:
                    break  # leaving the block reads the rest, so the connection is reused
                if chunk is not None:
                    yield chunk
        if not translator.finished:
            raise self._protocol("ended the stream before message_stop")
        yield translator.final()

    # -- embeddings, tokens, capabilities, health ---------------------------------------

    async def embed(self, request: EmbedRequest, call: CallContext = NO_CALL) -> EmbedResponse:
        if self.publisher(request.model) != "google":
            raise CapabilityUnsupported(f"provider {self.name!r}: {request.model!r} makes no embeddings",
                                        provider=self.name, metadata={"capability": "embeddings"})
        path = await self._path("google", request.model, "predict", call)

        async def one(batch: list[str]) -> tuple[list[bytes], int]:
            data = await self.request_json("POST", path, body=embeddings.predict_body(batch, request.dimensions),
                                           call=call)
            read = embeddings.read_predictions(data, len(batch))
            if read is None:
                raise self._protocol("answered an embedding request without one vector of numbers per text")
            return read

        size = embeddings.batch_size(request.model)
        inputs = request.inputs
        batches = await in_order([partial(one, inputs[start : start + size])
                                  for start in range(0, len(inputs), size)], EMBED_CONCURRENCY)
        tokens = sum(counted for _, counted in batches)
        return EmbedResponse(vectors=[v for packed, _ in batches for v in packed],
                             usage=Usage(prompt_tokens=tokens, total_tokens=tokens),
                             model=request.model, provider=self.name)

    async def count_tokens(self, request: ChatRequest, call: CallContext = NO_CALL) -> TokenCount:
        if self.publisher(request.model) == "anthropic":
            plan = await offload.run(partial(self._claude_plan, request, stream=False))
            counted: dict[str, Any] = {"model": request.model}
            counted.update({k: plan.body[k] for k in _COUNTED_FIELDS if k in plan.body})
            path = await self._path("anthropic", "count-tokens", "rawPredict", call)
            data = await self.request_json("POST", path, body=counted, call=call)
            tokens = data.get("input_tokens") if isinstance(data, dict) else None
        else:
            body = await offload.run(build_generate_request, request, self._gemini, self.name)
            # Sampling does not change the prompt's count, and Vertex's CountTokensRequest
            # has no toolConfig.
            body.pop("generationConfig", None)
            body.pop("toolConfig", None)
            path = await self._path("google", request.model, "countTokens", call)
            data = await self.request_json("POST", path, body=body, call=call)
            # Protobuf JSON leaves out zeros: no totalTokens means nothing to count.
            tokens = data.get("totalTokens", 0) if isinstance(data, dict) else None
        if not isinstance(tokens, int) or isinstance(tokens, bool):
            raise self._protocol("answered a token count without an integer count")
        return TokenCount(tokens=tokens, source=Source.PROVIDER, model=request.model)

    def known_capabilities(self, model: str) -> Capabilities | None:
        if model.lower().startswith("claude-"):
            facts = model_facts(_claude_family(model))
            return capabilities(model, facts, Source.BUILT_IN) if facts else None
        return embeddings.known_embedding_model(model) or known_gemini_model(model)

    def supports_embeddings(self) -> bool:
        return self.options.publisher != "anthropic"

    async def health_check(self) -> bool:
        """Whether an access token can be had: the credentials work and the token
        endpoint answers. (Vertex has no cheap model-free call to probe.)"""
        try:
            await self.tokens.token(NO_CALL)
        except UpstreamError:
            return False
        return True

    # -- errors -------------------------------------------------------------------------

    def _event_json(self, text: str) -> dict[str, Any]:
        try:
            data = jsonwire.loads(text)
        except ValueError:
            raise self._protocol("sent a stream event that is not JSON") from None
        if not isinstance(data, dict):
            raise self._protocol("sent a stream event that is not a JSON object")
        return data

    def _protocol(self, what: str) -> UpstreamProtocol:
        return UpstreamProtocol(f"provider {self.name!r} {what}", provider=self.name)

    def error_from_response(self, status: int, headers: Mapping[str, str], body: bytes) -> UpstreamError:
        """Claude's own errors come in Anthropic's shape; Vertex's (auth, quota, unknown
        model, ...) as `google.rpc.Status` JSON, for either publisher."""
        if _anthropic_shaped(body):
            return anthropic_errors.error_from_response(self, status, headers, body)
        return google_error(status, error_object(body), parse_retry_after(headers), provider=self.name,
                            scrub=self.scrub)


def _claude_family(model: str) -> str:
    """`claude-sonnet-4@20250514` -> `claude-sonnet-4` (Vertex puts the snapshot after @)."""
    return model.partition("@")[0]


def _anthropic_shaped(body: bytes) -> bool:
    try:
        data = json.loads(body)
    except ValueError:
        return False
    return isinstance(data, dict) and data.get("type") == "error"

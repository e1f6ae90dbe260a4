"""The `gemini` provider: Google's Gemini API in its native dialect (`generateContent`).

Chat goes to `models/{model}:generateContent`, streaming to `:streamGenerateContent?alt=sse`,
embeddings to `:batchEmbedContents`, token counts to `:countTokens`, and discovery reads
`models/{model}`. The key travels in the `x-goog-api-key` header, never in the URL, so it
cannot end up in an access log.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping
from functools import partial
from typing import Any, ClassVar
from urllib.parse import quote

from pydantic import SecretStr

from ... import jsonwire, offload, vectors
from ...call import NO_CALL, CallContext
from ...config import ProviderSettings
from ...domain import (
    Capabilities,
    ChatRequest,
    CompletionResponse,
    EmbedRequest,
    EmbedResponse,
    Source,
    StreamChunk,
    TokenCount,
)
from ...errors import PorticoError, UpstreamError, UpstreamProtocol, parse_retry_after
from ..base import RESERVED_PASSTHROUGH, merge_passthrough
from ..batching import in_order
from ..http import HttpProvider
from .errors import error_object, google_error, stream_error
from .models import known_gemini_model
from .options import GeminiOptions
from .request import build_generate_request, merge_nested
from .response import Turn, int_or_zero

#: The API refuses request bodies over 20 MiB ("Request payload size exceeds the limit").
DEFAULT_MAX_REQUEST_BYTES = 20 * 1024 * 1024
#: batchEmbedContents takes at most this many texts per call.
EMBED_BATCH_SIZE = 100
#: Most batchEmbedContents calls of one Embed in flight at once.
EMBED_CONCURRENCY = 4


#: Gemini's JSON takes both camelCase and snake_case names. The conversation and the
#: number of answers (candidateCount, OpenAI's `n`) stay out of passthrough's reach.
GEMINI_RESERVED_PASSTHROUGH = RESERVED_PASSTHROUGH | {
    "contents", "systeminstruction", "system_instruction",
    "generationconfig.candidatecount", "generationconfig.candidate_count",
    "generation_config.candidatecount", "generation_config.candidate_count",
}


class GeminiProvider(HttpProvider):
    kind: ClassVar[str] = "gemini"
    reserved_passthrough = GEMINI_RESERVED_PASSTHROUGH
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
        """`/v1beta/models/{model}[:method]`."""
        return f"/{self.options.api_version}/{_resource(model)}" + (f":{method}" if method else "")

    # -- chat ---------------------------------------------------------------------------

    def _body(self, request: ChatRequest) -> dict[str, Any]:
        body = build_generate_request(request, self.options, self.name)
        if request.passthrough:
            body = merge_passthrough(body, merge_nested(body, request.passthrough), GEMINI_RESERVED_PASSTHROUGH)
        return body

    async def chat(self, request: ChatRequest, call: CallContext = NO_CALL) -> CompletionResponse:
        body = await offload.run(self._body, request)
        data = await self.request_json(
            "POST", self._path(request.model, "generateContent"), body=body, call=call
        )
        if not isinstance(data, dict):
            raise self._protocol("answered with JSON that is not an object")
        turn = Turn(request.model)
        turn.feed(data)
        if not turn.finished:
            raise self._protocol("answered without a candidate or a finish reason")
        return turn.completion(self.name)

    async def stream(self, request: ChatRequest, call: CallContext = NO_CALL) -> AsyncGenerator[StreamChunk, None]:
        body = await offload.run(self._body, request)
        turn = Turn(request.model)
        async with self.send(
            "POST",
            self._path(request.model, "streamGenerateContent"),
            body=body,
            params={"alt": "sse"},
            call=call,
            headers={"accept": "text/event-stream"},
        ) as response:
            if not response.is_event_stream:
                raise self._protocol("answered a stream with a body that is not an event stream")
            async for event in response.events():
                if not event.data:
                    continue
                try:
                    data = jsonwire.loads(event.data)
                except ValueError:
                    raise self._protocol("sent a stream event that is not JSON") from None
                if not isinstance(data, dict):
                    raise self._protocol("sent a stream event that is not a JSON object")
                if "error" in data:
                    raise stream_error(data, provider=self.name, scrub=self.scrub)
                for chunk in turn.feed(data):
                    yield chunk
        if not turn.finished:
            # Gemini sends no [DONE]: a stream whose last event has no finishReason was cut.
            raise self._protocol("stream ended before its finish reason")
        yield turn.final_chunk(self.name)

    # -- embeddings, tokens, capabilities, health ---------------------------------------

    async def embed(self, request: EmbedRequest, call: CallContext = NO_CALL) -> EmbedResponse:
        resource = _resource(request.model)
        dimensions = {} if request.dimensions is None else {"outputDimensionality": request.dimensions}
        path = self._path(request.model, "batchEmbedContents")

        async def one(batch: list[str]) -> list[bytes]:
            items = [{"model": resource, "content": {"parts": [{"text": text}]}, **dimensions} for text in batch]
            data = await self.request_json("POST", path, body={"requests": items}, call=call)
            embeddings = data.get("embeddings") if isinstance(data, dict) else None
            if not isinstance(embeddings, list) or len(embeddings) != len(batch):
                raise self._protocol("answered an embedding batch with the wrong number of vectors")
            packed: list[bytes] = []
            for embedding in embeddings:
                values = embedding.get("values") if isinstance(embedding, dict) else None
                if not isinstance(values, list):
                    raise self._protocol("answered an embedding without values")
                try:
                    packed.append(vectors.pack(values))
                except (TypeError, OverflowError):
                    raise self._protocol("answered an embedding with values that are not numbers") from None
            return packed

        inputs = request.inputs
        calls = [partial(one, inputs[start : start + EMBED_BATCH_SIZE])
                 for start in range(0, len(inputs), EMBED_BATCH_SIZE)]
        batches = await in_order(calls, EMBED_CONCURRENCY)
        return EmbedResponse(vectors=[v for batch in batches for v in batch], model=request.model,
                             provider=self.name)

    async def count_tokens(self, request: ChatRequest, call: CallContext = NO_CALL) -> TokenCount:
        generate = build_generate_request(request, self.options, self.name)
        generate.pop("generationConfig", None)  # sampling does not change the prompt's count
        # Only this nested form counts the system instruction and tools too.
        generate["model"] = _resource(request.model)
        data = await self.request_json(
            "POST", self._path(request.model, "countTokens"),
            body={"generateContentRequest": generate}, call=call,
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
            context_window=int_or_zero(data.get("inputTokenLimit")),
            max_output_tokens=int_or_zero(data.get("outputTokenLimit")),
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

    def error_from_response(self, status: int, headers: Mapping[str, str], body: bytes) -> UpstreamError:
        return google_error(
            status, error_object(body), parse_retry_after(headers), provider=self.name, scrub=self.scrub
        )


def _resource(model: str) -> str:
    """`models/{model}`, with the name escaped; tuned models keep their own collection."""
    if model.startswith("tunedModels/"):
        return "tunedModels/" + quote(model.removeprefix("tunedModels/"), safe="")
    return "models/" + quote(model.removeprefix("models/"), safe="")


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

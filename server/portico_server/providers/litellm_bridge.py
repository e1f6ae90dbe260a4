"""`litellm`: the long tail of vendors (Bedrock, Vertex, Cohere, ...) through LiteLLM.

Optional: LiteLLM is a large dependency, installed with `pip install 'portico[litellm]'`.
Without it, configuring a `litellm` provider fails at start-up and says how to install it.
LiteLLM speaks OpenAI's format on both sides, so requests are built and answers read with
the OpenAI-compatible adapter's functions; this module only adds the library calls and
the mapping of LiteLLM's exceptions onto the error table.
"""

from __future__ import annotations

import importlib
from collections.abc import AsyncGenerator, AsyncIterable, Callable, Mapping
from types import ModuleType
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from ..call import NO_CALL, CallContext
from ..config import ConfigError, ProviderSettings
from ..domain import (
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
from ..errors import (
    ContextLengthExceeded,
    InvalidRequest,
    PorticoError,
    UpstreamConnection,
    UpstreamError,
    UpstreamProtocol,
    UpstreamTimeout,
    parse_retry_after,
    upstream_error,
)
from . import registry
from .base import RESERVED_PASSTHROUGH, Provider, refused_passthrough
from .openai_compat import (
    ChunkReader,
    Preset,
    chat_body,
    decode_vector,
    message_json,
    parse_completion,
    parse_usage,
    redact_key_shapes,
)

INSTALL_HINT = "pip install 'portico[litellm]'"

#: LiteLLM takes any keyword argument, and many carry credentials, endpoints or routing
#: (`aws_secret_access_key`, `vertex_credentials`, `custom_llm_provider`, `api_base`...):
#: a passthrough key with one of these words between its underscores is refused.
LITELLM_RESERVED_WORDS = frozenset({
    "api", "key", "token", "secret", "credential", "credentials", "password", "url", "uri", "base",
    "endpoint", "host", "header", "headers", "auth", "proxy", "aws", "vertex", "azure", "region",
    "project", "location", "client", "session", "retries", "retry", "fallback", "fallbacks",
    "timeout", "litellm", "provider", "deployment", "model", "mock", "callback", "callbacks",
    "logger", "ssl", "cert", "organization", "stream", "cache", "caching",
})

#: LiteLLM takes OpenAI's request shape and translates it per vendor itself.
_LITELLM = Preset("litellm", base_url="")


class LiteLLMOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: Keyword arguments for every LiteLLM call (e.g. aws_region_name, vertex_project).
    extra_kwargs: dict[str, Any] = Field(default_factory=dict)
    #: Let LiteLLM drop OpenAI parameters the vendor does not support instead of failing.
    drop_params: bool = False


def import_litellm(provider: str) -> ModuleType:
    """The litellm module, or a ConfigError that says how to install it."""
    try:
        return importlib.import_module("litellm")
    except ImportError:
        raise ConfigError(
            f"provider {provider!r} (kind litellm) needs the optional LiteLLM package, which is "
            f"not installed; install it with: {INSTALL_HINT}"
        ) from None


# -- pure conversions -------------------------------------------------------------------------


def common_kwargs(settings: ProviderSettings, options: LiteLLMOptions, timeout: float | None) -> dict[str, Any]:
    """Credentials, endpoint and limits every LiteLLM call carries."""
    kwargs: dict[str, Any] = {"timeout": timeout if timeout is not None else settings.timeout}
    if settings.api_key is not None:
        kwargs["api_key"] = settings.api_key.get_secret_value()
    if settings.base_url:
        kwargs["api_base"] = settings.base_url
    if settings.headers:
        kwargs["extra_headers"] = dict(settings.headers)
    if options.drop_params:
        kwargs["drop_params"] = True
    kwargs.update(options.extra_kwargs)
    return kwargs


def completion_kwargs(
    request: ChatRequest, settings: ProviderSettings, options: LiteLLMOptions, *, stream: bool,
    timeout: float | None = None,
) -> dict[str, Any]:
    """Arguments of `litellm.acompletion` for a request: the OpenAI body plus credentials.
    The caller's passthrough is part of the body, so vendor-specific options reach LiteLLM."""
    refused = refused_passthrough(request.passthrough, RESERVED_PASSTHROUGH, LITELLM_RESERVED_WORDS)
    if refused:
        raise InvalidRequest([(f"passthrough_json.{key}", why) for key, why in refused])
    kwargs = chat_body(request, _LITELLM, stream=stream, stream_usage=True)
    kwargs.pop("stream", None)
    kwargs["stream"] = stream
    # Portico retries and fails over itself; LiteLLM retrying underneath would multiply that.
    kwargs["num_retries"] = 0
    kwargs.update(common_kwargs(settings, options, timeout))
    return kwargs


def as_dict(obj: Any) -> Any:
    """A LiteLLM response object (pydantic) as plain JSON-like data."""
    if isinstance(obj, dict):
        return obj
    dump = getattr(obj, "model_dump", None)
    if callable(dump):
        return dump()
    legacy = getattr(obj, "dict", None)
    return legacy() if callable(legacy) else obj


def completion_from_litellm(response: Any, *, provider: str, model: str,
                            scrub: Callable[[str], str]) -> CompletionResponse:
    return parse_completion(as_dict(response), provider=provider, model=model, scrub=scrub)


async def chunks_from_litellm(chunks: AsyncIterable[Any], reader: ChunkReader) -> AsyncGenerator[StreamChunk, None]:
    """LiteLLM's OpenAI-shaped stream chunks as domain chunks, the final one last.

    LiteLLM has no `[DONE]` to check, so a stream that ends without a finish reason is
    taken as cut off."""
    async for item in chunks:
        delta = reader.feed(as_dict(item))
        if delta is not None:
            yield delta
    if not reader.finish_reason:
        raise UpstreamProtocol(
            f"provider {reader.provider!r} ended the stream without a finish reason; the answer is incomplete",
            provider=reader.provider,
        )
    yield reader.finish()


def embed_from_litellm(response: Any, expected: int, *, provider: str, model: str) -> EmbedResponse:
    data = as_dict(response)
    items = data.get("data") if isinstance(data, dict) else None
    if not isinstance(items, list) or len(items) != expected:
        raise UpstreamProtocol(f"provider {provider!r} returned a different number of embeddings than inputs",
                               provider=provider)
    ordered = sorted(enumerate(items), key=lambda p: as_dict(p[1]).get("index", p[0]))
    vectors = [decode_vector(as_dict(item).get("embedding"), provider) for _, item in ordered]
    usage = parse_usage(data.get("usage")) or Usage()
    return EmbedResponse(vectors=vectors, usage=usage, model=str(data.get("model") or model), provider=provider)


def capabilities_from_model_info(model: str, info: Mapping[str, Any]) -> Capabilities:
    """LiteLLM's bundled model table (`get_model_info`) as built-in capabilities."""

    def number(key: str) -> int:
        value = info.get(key)
        return value if isinstance(value, int) and not isinstance(value, bool) else 0

    embedding = info.get("mode") == "embedding"
    return Capabilities(
        model=model,
        context_window=number("max_input_tokens") or number("max_tokens"),
        max_output_tokens=number("max_output_tokens"),
        supports_tools=bool(info.get("supports_function_calling")),
        supports_streaming=not embedding,
        supports_embeddings=embedding,
        supports_vision=bool(info.get("supports_vision")),
        supports_response_format=bool(info.get("supports_response_schema")),
        source=Source.BUILT_IN,
    )


def error_from_litellm(exc: BaseException, provider: str, scrub: Callable[[str], str]) -> UpstreamError:
    """A LiteLLM exception (OpenAI-style classes carrying `status_code`) as a domain error."""
    names = {cls.__name__ for cls in type(exc).__mro__}
    message = scrub(redact_key_shapes(str(getattr(exc, "message", "") or exc))) or type(exc).__name__
    text = f"provider {provider!r}: {message}"
    if names & {"Timeout", "APITimeoutError"}:
        return UpstreamTimeout(text, provider=provider)
    if "APIConnectionError" in names:
        return UpstreamConnection(text, provider=provider)
    status = getattr(exc, "status_code", None)
    if "ContextWindowExceededError" in names:
        return ContextLengthExceeded(text, provider=provider, status=status if isinstance(status, int) else 400)
    if not isinstance(status, int) or status < 400:
        status = 500
    headers = getattr(getattr(exc, "response", None), "headers", None)
    retry_after = parse_retry_after(headers) if isinstance(headers, Mapping) else None
    code = "insufficient_quota" if "insufficient_quota" in message.lower() else ""
    return upstream_error(status, text, provider=provider, code=code, retry_after=retry_after)


# -- the provider ------------------------------------------------------------------------------


class LiteLLMProvider(Provider):
    """Calls `litellm.acompletion` / `aembedding`; model names are LiteLLM's
    (`bedrock/anthropic.claude-3-5-sonnet-20240620-v1:0`, `vertex_ai/gemini-1.5-pro`, ...)."""

    kind: ClassVar[str] = "litellm"
    reserved_passthrough_words = LITELLM_RESERVED_WORDS
    Options = LiteLLMOptions
    options: LiteLLMOptions

    def __init__(self, settings: ProviderSettings) -> None:
        super().__init__(settings)
        self._litellm = import_litellm(settings.name)

    def scrub(self, text: str) -> str:
        key = self.settings.api_key.get_secret_value() if self.settings.api_key else ""
        return (text.replace(key, "[redacted]") if key else text)[:500]

    def _error(self, exc: BaseException) -> PorticoError:
        return exc if isinstance(exc, PorticoError) else error_from_litellm(exc, self.name, self.scrub)

    async def chat(self, request: ChatRequest, call: CallContext = NO_CALL) -> CompletionResponse:
        try:
            response = await self._litellm.acompletion(
                **completion_kwargs(request, self.settings, self.options, stream=False,
                                    timeout=call.remaining()))
        except Exception as exc:
            raise self._error(exc) from None
        return completion_from_litellm(response, provider=self.name, model=request.model, scrub=self.scrub)

    async def stream(self, request: ChatRequest, call: CallContext = NO_CALL) -> AsyncGenerator[StreamChunk, None]:
        reader = ChunkReader(self.name, request.model, self.scrub)
        try:
            response = await self._litellm.acompletion(
                **completion_kwargs(request, self.settings, self.options, stream=True,
                                    timeout=call.remaining()))
        except Exception as exc:
            raise self._error(exc) from None
        chunks = chunks_from_litellm(response, reader)
        try:
            async for chunk in chunks:
                yield chunk
        except Exception as exc:
            raise self._error(exc) from None
        finally:
            await chunks.aclose()
            close = getattr(response, "aclose", None)
            if callable(close):
                await close()

    async def embed(self, request: EmbedRequest, call: CallContext = NO_CALL) -> EmbedResponse:
        kwargs: dict[str, Any] = {"model": request.model, "input": list(request.inputs),
                                  **common_kwargs(self.settings, self.options, call.remaining())}
        if request.dimensions is not None:
            kwargs["dimensions"] = request.dimensions
        try:
            response = await self._litellm.aembedding(**kwargs)
        except Exception as exc:
            raise self._error(exc) from None
        return embed_from_litellm(response, len(request.inputs), provider=self.name, model=request.model)

    async def count_tokens(self, request: ChatRequest, call: CallContext = NO_CALL) -> TokenCount:
        # LiteLLM counts with the model's tokenizer where it has one and tiktoken otherwise,
        # without the vendor's chat framing: closer than the base estimate, still an estimate.
        try:
            tokens = int(self._litellm.token_counter(
                model=request.model, messages=[message_json(m) for m in request.messages]))
        except Exception:
            return await super().count_tokens(request)
        return TokenCount(tokens=tokens, source=Source.ESTIMATE, model=request.model)

    def known_capabilities(self, model: str) -> Capabilities | None:
        try:
            info = self._litellm.get_model_info(model)
        except Exception:
            return None  # LiteLLM raises for models its table does not list
        return capabilities_from_model_info(model, info) if isinstance(info, Mapping) else None


registry.register("litellm", LiteLLMProvider)

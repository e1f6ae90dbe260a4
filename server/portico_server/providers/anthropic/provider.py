"""The `anthropic` provider: Claude over HTTP (`POST /v1/messages`), its options, and the
environment variables that add it to the embedded default configuration."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping
from typing import Any, ClassVar, Literal
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from ... import jsonwire, offload
from ...call import NO_CALL, CallContext
from ...config import ProviderSettings
from ...domain import (
    Capabilities,
    ChatRequest,
    CompletionResponse,
    ReasoningConfig,
    Source,
    StreamChunk,
    TokenCount,
)
from ...errors import PorticoError, UpstreamError, UpstreamProtocol
from ..http import HttpProvider
from ..reasoning_controls import budget_for, reasoning_unsupported
from ..wire import SSEEvent
from . import errors
from .models import UNKNOWN_MODEL_MAX_OUTPUT, capabilities, model_facts
from .request import ANTHROPIC_RESERVED_PASSTHROUGH, Plan, build_plan, thinking_enabled
from .response import StreamTranslator, completion, int_field

API_VERSION = "2023-06-01"
DEFAULT_BASE_URL = "https://api.anthropic.com"
#: The Messages API refuses request bodies over 32 MB.
MAX_REQUEST_BYTES = 32 * 1024 * 1024
#: A request without `max_tokens` gets the model's output limit, but at most this: a
#: bigger default makes a non-streamed answer risk running into the upstream's timeouts.
DEFAULT_MAX_TOKENS_CAP = 16_384

_MESSAGES = "/v1/messages"
_COUNT_TOKENS = "/v1/messages/count_tokens"
#: The parts of a Messages body the count-tokens endpoint takes.
_COUNTED_FIELDS = ("model", "messages", "system", "tools", "tool_choice", "thinking")
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


class AnthropicProvider(HttpProvider):
    kind: ClassVar[str] = "anthropic"
    reserved_passthrough = ANTHROPIC_RESERVED_PASSTHROUGH
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

    def default_max_tokens(self, model: str, passthrough: Mapping[str, Any],
                           reasoning: ReasoningConfig | None = None) -> int:
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
        if thinking_enabled(passthrough, reasoning):
            # max_tokens must exceed the thinking budget, or the answer gets no room.
            thinking = passthrough.get("thinking")
            budget = thinking.get("budget_tokens") if isinstance(thinking, dict) else None
            if budget is None and reasoning is not None:
                budget = budget_for(reasoning)
            if isinstance(budget, int) and budget > 0:
                chosen = min(limit, budget + chosen)
        return chosen

    def plan(self, request: ChatRequest) -> Plan:
        """The Messages API body for a chat request (without `stream`)."""
        if request.reasoning is not None:
            facts = model_facts(request.model)
            if facts is not None and not facts.thinking:
                raise reasoning_unsupported(self.name, request.model, "it has no extended thinking "
                                            "(Claude 3.7 Sonnet and later have)")
        return build_plan(request, self.default_max_tokens(request.model, request.passthrough, request.reasoning))

    async def chat(self, request: ChatRequest, call: CallContext = NO_CALL) -> CompletionResponse:
        plan = self.plan(request)
        plan.body.pop("stream", None)
        async with self.send("POST", _MESSAGES, body=plan.body, call=call) as response:
            raw = await response.read()
            request_id = response.headers.get("request-id", "")
        return completion(raw, answer_tool=plan.answer_tool, request_id=request_id, provider=self.name)

    async def stream(self, request: ChatRequest, call: CallContext = NO_CALL) -> AsyncGenerator[StreamChunk, None]:
        plan = self.plan(request)
        plan.body["stream"] = True
        translator = StreamTranslator(self.name, plan.answer_tool)
        async with self.send("POST", _MESSAGES, body=plan.body, call=call,
                             headers={"accept": "text/event-stream"}) as response:
            if not response.is_event_stream:
                raise UpstreamProtocol(
                    f"provider {self.name!r} answered a stream request without text/event-stream",
                    provider=self.name,
                )
            translator.request_id = response.headers.get("request-id", "")
            async for event in response.events():
                if not event.data:
                    continue
                kind, data = self._event(event)
                chunk = translator.feed(kind, data)
                if translator.finished:
                    break  # leaving the block reads the rest, so the connection is reused
                if chunk is not None:
                    yield chunk
        if not translator.finished:
            raise UpstreamProtocol(f"provider {self.name!r} ended the stream before message_stop",
                                   provider=self.name)
        yield translator.final()

    def _event(self, event: SSEEvent) -> tuple[str, dict[str, Any]]:
        """(type, data) of an event; an `error` event raises its domain exception."""
        try:
            data = jsonwire.loads(event.data)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise UpstreamProtocol(f"provider {self.name!r} sent an event that is not JSON",
                                   provider=self.name)
        kind = str(data.get("type") or event.event)
        if kind == "error":
            raise errors.error_from_event(self, data)
        return kind, data

    def error_from_response(self, status: int, headers: Mapping[str, str], body: bytes) -> UpstreamError:
        return errors.error_from_response(self, status, headers, body)

    # -- the rest -------------------------------------------------------------------------

    async def count_tokens(self, request: ChatRequest, call: CallContext = NO_CALL) -> TokenCount:
        if self.options.token_counting == "estimate":
            return await super().count_tokens(request)
        body = (await offload.run(self.plan, request)).body
        counted: dict[str, Any] = {k: body[k] for k in _COUNTED_FIELDS if k in body}
        data = await self.request_json("POST", _COUNT_TOKENS, body=counted, call=call)
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
        context = int_field(data, "max_input_tokens")
        output = int_field(data, "max_tokens")
        if not context and not output:
            return None
        facts = model_facts(str(data.get("id") or model)) or model_facts(model)
        caps = capabilities(model, facts, Source.PROVIDER)
        caps.context_window = context or caps.context_window
        caps.max_output_tokens = output or caps.max_output_tokens
        return caps

    def known_capabilities(self, model: str) -> Capabilities | None:
        facts = model_facts(model)
        return capabilities(model, facts, Source.BUILT_IN) if facts else None

    async def health_check(self) -> bool:
        try:
            await self.request_json("GET", "/v1/models", params={"limit": "1"}, timeout=_LOOKUP_SECONDS)
        except PorticoError:
            return False
        return True


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

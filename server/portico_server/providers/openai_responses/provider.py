"""The `openai_responses` provider: OpenAI's Responses API (`POST /v1/responses`) as an
upstream dialect, for the models and features only it serves (reasoning items carried
across turns without server-side state, reasoning summaries)."""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Mapping
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from ... import jsonwire, offload
from ...call import NO_CALL, CallContext
from ...domain import Capabilities, ChatRequest, CompletionResponse, Source, StreamChunk, TokenCount
from ...errors import UpstreamBadRequest, UpstreamError, UpstreamModelNotFound, UpstreamProtocol
from ..base import estimated_usage
from ..http import HttpProvider
from ..openai_compat.errors import error_from_http, redact_key_shapes
from ..openai_compat.models import known_model
from .errors import error_from_event
from .request import RESERVED, BodyOptions, build_body, count_body
from .response import StreamTranslator, completion

log = logging.getLogger("portico.providers.openai_responses")

DEFAULT_BASE_URL = "https://api.openai.com/v1"
_RESPONSES = "/responses"
_INPUT_TOKENS = "/responses/input_tokens"
#: Health probes are small GETs; they should not wait like a generation.
_PROBE_TIMEOUT = 15.0
#: Model-name prefixes of OpenAI's reasoning models (see `reasoning_models`).
REASONING_MODELS = ("o1", "o3", "o4", "gpt-5", "codex")


class OpenAIResponsesOptions(BaseModel):
    """`options:` of an `openai_responses` provider."""

    model_config = ConfigDict(extra="forbid")

    #: `store` on every request. Off by default: the gateway keeps no state upstream, and
    #: reasoning travels back to the model as encrypted items instead.
    store: bool = False
    #: Ask for `reasoning.encrypted_content` when `store` is off, so the next turn can
    #: send the model its reasoning back.
    encrypted_reasoning: bool = True
    #: `reasoning.summary`; `none` asks for no summaries (organisations that are not
    #: verified with OpenAI get an error when they ask for them).
    reasoning_summary: Literal["auto", "concise", "detailed", "none"] = "auto"
    #: Model-name prefixes of the models that reason: they get a `reasoning` object
    #: (summary, encrypted content) on every request and take reasoning controls; other
    #: models get none, and reasoning controls for them fail with FAILED_PRECONDITION.
    #: `[""]` makes every model a reasoning model (a server with other model names).
    reasoning_models: list[str] = Field(default_factory=lambda: list(REASONING_MODELS))
    #: `provider`: POST /responses/input_tokens; `estimate`: Portico's heuristic.
    token_counting: Literal["provider", "estimate"] = "provider"
    #: OpenAI-Organization / OpenAI-Project headers.
    organization: str | None = None
    project: str | None = None


class OpenAIResponsesProvider(HttpProvider):
    kind: ClassVar[str] = "openai_responses"
    reserved_passthrough = RESERVED
    Options = OpenAIResponsesOptions
    options: OpenAIResponsesOptions
    default_base_url = DEFAULT_BASE_URL

    def auth_headers(self) -> dict[str, str]:
        headers = super().auth_headers()
        if self.options.organization:
            headers["OpenAI-Organization"] = self.options.organization
        if self.options.project:
            headers["OpenAI-Project"] = self.options.project
        return headers

    # -- requests -------------------------------------------------------------------------

    def body_options(self, model: str) -> BodyOptions:
        bare = model.rsplit("/", 1)[-1]
        return BodyOptions(
            store=self.options.store,
            encrypted_reasoning=self.options.encrypted_reasoning,
            reasoning_summary="" if self.options.reasoning_summary == "none" else self.options.reasoning_summary,
            reasoning_model=any(bare.startswith(prefix) for prefix in self.options.reasoning_models),
            provider=self.name,
        )

    def body(self, request: ChatRequest, *, stream: bool) -> dict[str, Any]:
        return build_body(request, self.body_options(request.model), stream=stream)

    async def chat(self, request: ChatRequest, call: CallContext = NO_CALL) -> CompletionResponse:
        body = await offload.run(self.body, request, stream=False)
        async with self.send("POST", _RESPONSES, body=body, call=call) as response:
            raw = await response.read()
            request_id = response.headers.get("x-request-id", "")
        data = self._json(raw)
        if not isinstance(data, dict) or data.get("object") not in (None, "response"):
            raise UpstreamProtocol(f"provider {self.name!r} answered with a body that is not a response",
                                   provider=self.name)
        if data.get("status") == "failed":
            raise error_from_event("response.failed", {"response": data}, provider=self.name, scrub=self.scrub)
        return completion(data, provider=self.name, request_id=request_id)

    async def stream(self, request: ChatRequest, call: CallContext = NO_CALL) -> AsyncGenerator[StreamChunk, None]:
        body = await offload.run(self.body, request, stream=True)
        translator = StreamTranslator(self.name)
        async with self.send("POST", _RESPONSES, body=body, call=call,
                             headers={"accept": "text/event-stream"}) as response:
            if not response.is_event_stream:
                raise UpstreamProtocol(
                    f"provider {self.name!r} answered a stream request without text/event-stream",
                    provider=self.name,
                )
            translator.request_id = response.headers.get("x-request-id", "")
            async for event in response.events():
                if not event.data.strip():
                    continue
                data = self._json(event.data)
                if not isinstance(data, dict):
                    raise UpstreamProtocol(f"provider {self.name!r} sent an event that is not an object",
                                           provider=self.name)
                kind = str(data.get("type") or event.event)
                if kind in ("error", "response.failed"):
                    raise error_from_event(kind, data, provider=self.name, scrub=self.scrub)
                chunk = translator.feed(kind, data)
                if chunk is not None:
                    yield chunk
                if translator.finished:
                    break  # leaving the block reads the rest, so the connection is reused
        if not translator.finished:
            raise UpstreamProtocol(
                f"provider {self.name!r} ended the stream before response.completed; the answer is incomplete",
                provider=self.name,
            )
        final = translator.final()
        if not translator.usage_reported:
            # A Responses-compatible server that reports no usage: an estimate, marked.
            final.usage = estimated_usage(request, final)
        yield final

    def _json(self, raw: str | bytes) -> Any:
        try:
            return jsonwire.loads(raw)
        except ValueError:
            raise UpstreamProtocol(f"provider {self.name!r} sent data that is not JSON",
                                   provider=self.name) from None

    # -- token counting -------------------------------------------------------------------

    async def count_tokens(self, request: ChatRequest, call: CallContext = NO_CALL) -> TokenCount:
        if self.options.token_counting == "estimate":
            return await super().count_tokens(request)
        body = await offload.run(count_body, request, self.body_options(request.model))
        try:
            data = await self.request_json("POST", _INPUT_TOKENS, body=body, call=call)
        except (UpstreamBadRequest, UpstreamModelNotFound) as exc:
            # A Responses-compatible server without the counter: an estimate still helps.
            log.info("provider %s cannot count tokens (%s); estimating", self.name, exc.reason)
            return await super().count_tokens(request)
        tokens = data.get("input_tokens") if isinstance(data, dict) else None
        if not isinstance(tokens, int):
            raise UpstreamProtocol(f"provider {self.name!r} answered a token count without a count",
                                   provider=self.name)
        return TokenCount(tokens=tokens, source=Source.PROVIDER, model=request.model)

    # -- capabilities and health ----------------------------------------------------------

    def known_capabilities(self, model: str) -> Capabilities | None:
        return known_model(model)

    async def health_check(self) -> bool:
        try:
            async with self.send("GET", "/models", timeout=_PROBE_TIMEOUT):
                return True
        except (UpstreamModelNotFound, UpstreamBadRequest):
            return True  # it answered and took the key; this server just has no listing
        except UpstreamError as exc:
            log.info("health probe of %s failed: %s", self.name, exc.reason)
            return False

    # -- errors ---------------------------------------------------------------------------

    def scrub(self, text: str) -> str:
        return super().scrub(redact_key_shapes(text))

    def error_from_response(self, status: int, headers: Mapping[str, str], body: bytes) -> UpstreamError:
        return error_from_http(status, headers, body, provider=self.name, scrub=self.scrub)

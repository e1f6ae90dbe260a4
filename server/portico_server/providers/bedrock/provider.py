"""The `bedrock` provider: every model family on Amazon Bedrock through the Converse and
ConverseStream APIs, embeddings through InvokeModel, and CountTokens; requests signed
with SigV4 (or a Bedrock API key), over the provider's own pooled HTTP session."""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections.abc import AsyncGenerator, Mapping
from typing import Any, ClassVar, Literal
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ... import jsonwire, offload
from ...call import NO_CALL, CallContext
from ...config import ConfigError, ProviderSettings
from ...domain import (
    Capabilities,
    ChatRequest,
    CompletionResponse,
    EmbedRequest,
    EmbedResponse,
    ReasoningEffort,
    Source,
    StreamChunk,
    TokenCount,
    Usage,
)
from ...errors import (
    CapabilityUnsupported,
    InvalidRequest,
    ModelFeatureUnsupported,
    PorticoError,
    UpstreamBadRequest,
    UpstreamError,
    UpstreamProtocol,
)
from ..base import estimate_tokens
from ..http import HttpProvider
from . import aws, embeddings, errors
from .models import capabilities, embedding_family, foundation_id, model_facts, reasoning_style
from .request import BEDROCK_RESERVED_PASSTHROUGH, Plan, build_plan
from .response import StreamTranslator, completion

EVENT_STREAM = "application/vnd.amazon.eventstream"
#: Thinking budgets for an effort without an explicit budget (Claude's minimum is 1024).
CLAUDE_BUDGETS = {ReasoningEffort.LOW: 1_024, ReasoningEffort.MEDIUM: 4_096, ReasoningEffort.HIGH: 16_384}
#: The parts of a Converse body CountTokens takes.
_COUNTED_FIELDS = ("messages", "system", "toolConfig", "additionalModelRequestFields")
#: Room left for the answer above a thinking budget when the request sets no max_tokens.
ANSWER_ROOM = 4_096


class BedrockOptions(BaseModel):
    """`options:` of a `bedrock` provider."""

    model_config = ConfigDict(extra="forbid")

    #: The AWS region (`us-east-1`, ...); unset: AWS_REGION or AWS_DEFAULT_REGION.
    region: str | None = Field(default=None, pattern=r"^[a-z0-9-]+$")
    #: A named profile of the shared AWS config/credentials files; unset: the standard
    #: chain (AWS_PROFILE, environment keys, web identity, container, instance metadata).
    profile: str | None = None
    #: A guardrail applied to every call (`guardrailConfig`), by id or ARN, and version.
    guardrail_identifier: str | None = None
    guardrail_version: str | None = None
    guardrail_trace: Literal["enabled", "disabled", "enabled_full"] | None = None
    #: For streams: `sync` holds text back until the guardrail passed it; `async` doesn't.
    guardrail_stream_mode: Literal["sync", "async"] | None = None
    #: `provider`: the CountTokens API (falls back to the estimate for models it does not
    #: count); `estimate`: Portico's heuristic only.
    token_counting: Literal["provider", "estimate"] = "provider"
    #: Cohere's `input_type` for Embed.
    cohere_input_type: Literal["search_document", "search_query", "classification", "clustering"] = \
        "search_document"
    #: InvokeModel calls one Embed makes at once (Titan embeds one text per call).
    embed_concurrency: int = Field(default=8, gt=0, le=64)

    @model_validator(mode="after")
    def _guardrail_whole(self) -> BedrockOptions:
        if (self.guardrail_identifier is None) != (self.guardrail_version is None):
            raise ValueError("guardrail_identifier and guardrail_version go together")
        return self


class BedrockProvider(HttpProvider):
    kind: ClassVar[str] = "bedrock"
    reserved_passthrough = BEDROCK_RESERVED_PASSTHROUGH
    Options = BedrockOptions
    options: BedrockOptions
    keep_path_encoding = True

    def __init__(self, settings: ProviderSettings) -> None:
        options = BedrockOptions.model_validate(settings.options)
        region = options.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or ""
        if not region:
            raise ConfigError(f"provider {settings.name!r}: options.region is required (or set AWS_REGION)")
        if settings.base_url is None:
            settings = settings.model_copy(update={"base_url": f"https://bedrock-runtime.{region}.amazonaws.com"})
        super().__init__(settings)
        self.region = region
        self.credentials = aws.CredentialSource(self.name, options.profile)
        #: Models CountTokens refused: they get the estimate from then on.
        self._uncounted: set[str] = set()

    # -- signing ----------------------------------------------------------------------------

    async def sign_request(self, method: str, url: str, headers: dict[str, str], content: bytes | None) -> None:
        if self.api_key():
            return  # a Bedrock API key goes as `Authorization: Bearer` (auth_headers)
        credentials = await self.credentials.current()
        # Signing hashes the whole body: a large one is hashed off the loop.
        headers.update(await offload.run(aws.sign, credentials, self.region, method, url, headers, content))

    def error_from_response(self, status: int, headers: Mapping[str, str], body: bytes) -> UpstreamError:
        return errors.error_from_response(self, status, headers, body)

    # -- chat -------------------------------------------------------------------------------

    def plan(self, request: ChatRequest) -> Plan:
        fields, max_tokens = self._reasoning(request)
        if max_tokens is not None and max_tokens != request.max_tokens:
            request = dataclasses.replace(request, max_tokens=max_tokens)  # the caller's stays as it was
        plan = build_plan(request, additional_fields=fields, guardrail=self._guardrail())
        if plan.answer_tool and _thinking_requested(plan.body):
            # Claude refuses a forced tool while thinking; the model is asked, not made.
            config = plan.body.get("toolConfig") or {}
            config.pop("toolChoice", None)
        return plan

    async def chat(self, request: ChatRequest, call: CallContext = NO_CALL) -> CompletionResponse:
        plan = self.plan(request)
        async with self.send("POST", _path(request.model, "converse"), body=plan.body, call=call) as response:
            raw = await response.read()
            request_id = response.headers.get("x-amzn-requestid", "")
        return completion(raw, answer_tool=plan.answer_tool, request_id=request_id, provider=self.name,
                          model=request.model)

    async def stream(self, request: ChatRequest, call: CallContext = NO_CALL) -> AsyncGenerator[StreamChunk, None]:
        plan = self.plan(request)
        guardrail = plan.body.get("guardrailConfig")
        if isinstance(guardrail, dict) and self.options.guardrail_stream_mode:
            guardrail.setdefault("streamProcessingMode", self.options.guardrail_stream_mode)
        translator = StreamTranslator(self.name, request.model, plan.answer_tool)
        async with self.send("POST", _path(request.model, "converse-stream"), body=plan.body, call=call,
                             headers={"accept": EVENT_STREAM}) as response:
            if EVENT_STREAM not in response.headers.get("content-type", ""):
                raise UpstreamProtocol(f"provider {self.name!r} answered a stream request without {EVENT_STREAM}",
                                       provider=self.name)
            translator.request_id = response.headers.get("x-amzn-requestid", "")
            reader = aws.EventStreamReader(frame_limit=self.settings.max_event_bytes)
            while not translator.finished and (piece := await response.next_piece()):
                try:
                    frames = reader.feed(piece)
                except aws.FrameError as exc:
                    raise aws.frame_error(self.name, exc) from None
                for frame in frames:
                    if frame.message_type != "event":
                        raise errors.error_from_exception_frame(
                            self, frame.name, frame.payload, str(frame.headers.get(":error-message") or ""))
                    chunk = translator.feed(frame.name, self._event(frame.payload))
                    if chunk is not None:
                        yield chunk
            if not reader.idle and not translator.finished:
                raise UpstreamProtocol(f"provider {self.name!r} ended the stream inside a frame",
                                       provider=self.name)
        if not translator.stopped:
            raise UpstreamProtocol(f"provider {self.name!r} ended the stream before messageStop",
                                   provider=self.name)
        yield translator.final()

    def _event(self, payload: bytes) -> dict[str, Any]:
        try:
            data = jsonwire.loads(payload)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise UpstreamProtocol(f"provider {self.name!r} sent an event that is not a JSON object",
                                   provider=self.name)
        return data

    def _guardrail(self) -> dict[str, Any] | None:
        options = self.options
        if options.guardrail_identifier is None:
            return None
        config: dict[str, Any] = {"guardrailIdentifier": options.guardrail_identifier,
                                  "guardrailVersion": options.guardrail_version}
        if options.guardrail_trace:
            config["trace"] = options.guardrail_trace
        return config

    def _reasoning(self, request: ChatRequest) -> tuple[dict[str, Any], int | None]:
        """(additionalModelRequestFields that switch reasoning on, the max_tokens it needs)
        for the request's reasoning controls, in the model family's own terms."""
        config = request.reasoning
        if config is None or (config.effort is None and not config.budget_tokens):
            return {}, None
        budget = config.budget_tokens
        effort = config.effort or _effort_for_budget(budget or 0)
        style = reasoning_style(request.model)
        if style == "claude":
            budget = budget or CLAUDE_BUDGETS[effort]
            if budget < 1_024:
                raise InvalidRequest([("reasoning.budget_tokens", "Claude on Bedrock needs at least 1024 tokens")])
            max_tokens = request.max_tokens
            if max_tokens is None:
                max_tokens = budget + ANSWER_ROOM
            elif max_tokens <= budget:
                raise InvalidRequest([("max_tokens", f"must exceed the thinking budget ({budget}) for Claude")])
            return {"thinking": {"type": "enabled", "budget_tokens": budget}}, max_tokens
        if style == "nova":
            return {"reasoningConfig": {"type": "enabled", "maxReasoningEffort": effort.value}}, None
        if style == "gpt-oss":
            return {"reasoning_effort": effort.value}, None
        if style == "always":
            return {}, None  # it reasons unasked and has no control for it (documented)
        raise ModelFeatureUnsupported(
            f"provider {self.name!r}: model {request.model!r} has no reasoning control on Bedrock",
            provider=self.name, metadata={"capability": "reasoning"},
        )

    # -- tokens, embeddings, capabilities ---------------------------------------------------

    async def count_tokens(self, request: ChatRequest, call: CallContext = NO_CALL) -> TokenCount:
        model = request.model
        estimate = TokenCount(tokens=estimate_tokens(request), source=Source.ESTIMATE, model=model)
        facts = model_facts(model)
        if self.options.token_counting == "estimate" or model in self._uncounted or (facts and not facts.count_tokens):
            return estimate
        body = self.plan(request).body
        converse = {k: body[k] for k in _COUNTED_FIELDS if k in body}
        try:
            # CountTokens takes the model's own id, not a cross-region inference profile.
            data = await self.request_json("POST", _path(foundation_id(model), "count-tokens"),
                                           body={"input": {"converse": converse}}, call=call)
        except UpstreamBadRequest:
            # ValidationException: this model is not one CountTokens counts.
            self._uncounted.add(model)
            return estimate
        tokens = data.get("inputTokens") if isinstance(data, dict) else None
        if not isinstance(tokens, int):
            raise UpstreamProtocol(f"provider {self.name!r} answered CountTokens without inputTokens",
                                   provider=self.name)
        return TokenCount(tokens=tokens, source=Source.PROVIDER, model=model)

    async def embed(self, request: EmbedRequest, call: CallContext = NO_CALL) -> EmbedResponse:
        family = embedding_family(request.model)
        if not family:
            raise CapabilityUnsupported(
                f"provider {self.name!r}: {request.model!r} is not a Titan or Cohere embedding model",
                provider=self.name, metadata={"capability": "embeddings"},
            )
        results: list[bytes] = [b""] * len(request.inputs)
        tokens = 0
        slots = asyncio.Semaphore(self.options.embed_concurrency)
        path = _path(request.model, "invoke")

        async def one(positions: list[int], body: dict[str, Any]) -> None:
            nonlocal tokens
            async with slots, self.send("POST", path, body=body, call=call,
                                        headers={"accept": "application/json"}) as response:
                raw = await response.read()
                counted = response.headers.get("x-amzn-bedrock-input-token-count", "")
            try:
                data = jsonwire.loads(raw)
            except ValueError:
                data = None
            packed, in_body = embeddings.vectors_of(family, data, len(positions), self.name)
            for position, vector in zip(positions, packed, strict=True):
                results[position] = vector
            tokens += int(counted) if counted.isdigit() else in_body

        bodies = embeddings.request_bodies(family, request.inputs, request.dimensions, self.options.cohere_input_type)
        try:
            async with asyncio.TaskGroup() as group:
                for positions, body in bodies:
                    group.create_task(one(positions, body))
        except* PorticoError as failures:
            raise failures.exceptions[0] from None
        return EmbedResponse(vectors=results, usage=Usage(prompt_tokens=tokens, total_tokens=tokens),
                             model=request.model, provider=self.name)

    def known_capabilities(self, model: str) -> Capabilities | None:
        if model_facts(model) is None and not embedding_family(model):
            return None
        return capabilities(model, Source.BUILT_IN)

    def supports_tools(self, model: str) -> bool:
        facts = model_facts(model)
        return facts.tools if facts else True

    def supports_streaming(self, model: str) -> bool:
        return not embedding_family(model)

    async def health_check(self) -> bool:
        """Whether credentials resolve: Bedrock's runtime has no free endpoint to probe."""
        if self.api_key():
            return True
        try:
            await self.credentials.current()
        except PorticoError:
            return False
        return True


def _path(model: str, action: str) -> str:
    """`/model/{id}/{action}`, the id escaped whole: ids have `:` and ARNs `/`, which go
    percent-encoded (and are signed that way), as AWS's own SDKs send them."""
    return f"/model/{quote(model, safe='')}/{action}"


def _effort_for_budget(budget: int) -> ReasoningEffort:
    """The effort for a token budget, for families that take only an effort."""
    if budget < 2_048:
        return ReasoningEffort.LOW
    return ReasoningEffort.MEDIUM if budget < 8_192 else ReasoningEffort.HIGH


def _thinking_requested(body: dict[str, Any]) -> bool:
    fields = body.get("additionalModelRequestFields")
    thinking = fields.get("thinking") if isinstance(fields, dict) else None
    return isinstance(thinking, dict) and thinking.get("type", "enabled") != "disabled"

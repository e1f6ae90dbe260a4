"""Request messages built from keyword options; shared by Client and AsyncClient."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, TypedDict

from pydantic import BaseModel

from ._messages import MessagesLike, to_messages
from ._schema import SchemaLike, is_model_class, schema_text
from ._tools import ToolLike, tool_definitions
from .v1 import llm_service_pb2, types_pb2

MetadataLike = Mapping[str, str | bytes] | Sequence[tuple[str, str | bytes]]
#: "auto", "none", "required", or the name of the one tool the model must call.
ToolChoiceLike = types_pb2.ToolChoice | str
#: "text", "json_object", or a JSON Schema (dict, pydantic model class) for JSON_SCHEMA.
ResponseFormatLike = types_pb2.ResponseFormat | SchemaLike
#: "low", "normal", "high", or a `Priority` value.
PriorityLike = types_pb2.Priority | str
#: "none", "restart", "continue", or a `StreamFailover` value.
StreamFailoverLike = llm_service_pb2.StreamFailover | str
#: "low", "medium", "high", or a `ReasoningEffort` value.
ReasoningEffortLike = types_pb2.ReasoningEffort | str


class CallOptions(TypedDict, total=False):
    """Options every call takes."""

    #: Seconds for this call, overriding the client's default; None: no deadline.
    timeout: float | None
    #: gRPC metadata sent with this call, after the client's own.
    metadata: MetadataLike


class ChatOptions(CallOptions, total=False):
    """Options of `chat` and `stream`; see `ChatRequest` in the API for each field."""

    provider: str
    model: str
    # None, like leaving the option out, lets the provider decide.
    temperature: float | None
    top_p: float | None
    max_tokens: int | None
    stop_sequences: Sequence[str]
    seed: int | None
    tools: Sequence[ToolLike]
    tool_choice: ToolChoiceLike
    response_format: ResponseFormatLike
    priority: PriorityLike
    tags: Mapping[str, str]
    #: Merged into the provider's request body, e.g. {"top_k": 40}.
    passthrough: Mapping[str, Any] | str
    #: Your id for this call (at most 64 printable ASCII characters), in the gateway's logs
    #: and errors' `request_id`; the gateway makes one up when you pass none.
    request_id: str
    #: What a stream may do when its provider fails after the first chunk: "none" (the
    #: default: the stream fails), "restart" or "continue". See `ChatStream`.
    stream_failover: StreamFailoverLike
    #: How hard a reasoning model thinks: "low", "medium" or "high" (each provider's own
    #: knob; a model without one fails with FailedPreconditionError).
    reasoning_effort: ReasoningEffortLike
    #: The most tokens the model may spend on reasoning (Anthropic, Gemini 2.5 take it as
    #: is; effort-only providers map it to the nearest effort).
    reasoning_budget: int


class EmbedOptions(CallOptions, total=False):
    provider: str
    model: str
    dimensions: int | None
    tags: Mapping[str, str]
    request_id: str


class CountTokensOptions(CallOptions, total=False):
    provider: str
    model: str
    tools: Sequence[ToolLike]


class CapabilitiesOptions(CallOptions, total=False):
    provider: str
    model: str


_TOOL_MODES = {
    "auto": types_pb2.TOOL_CHOICE_MODE_AUTO,
    "none": types_pb2.TOOL_CHOICE_MODE_NONE,
    "required": types_pb2.TOOL_CHOICE_MODE_REQUIRED,
}
_FAILOVERS = {
    "none": llm_service_pb2.STREAM_FAILOVER_NONE,
    "restart": llm_service_pb2.STREAM_FAILOVER_RESTART,
    "continue": llm_service_pb2.STREAM_FAILOVER_CONTINUE,
}
_EFFORTS = {
    "low": types_pb2.REASONING_EFFORT_LOW,
    "medium": types_pb2.REASONING_EFFORT_MEDIUM,
    "high": types_pb2.REASONING_EFFORT_HIGH,
}
_PRIORITIES = {
    "low": types_pb2.PRIORITY_LOW,
    "normal": types_pb2.PRIORITY_NORMAL,
    "high": types_pb2.PRIORITY_HIGH,
}


def check_options(options: Mapping[str, Any], allowed: type[Any], method: str) -> None:
    """Reject keyword arguments the method does not take (typos would pass silently)."""
    unknown = set(options) - set(allowed.__optional_keys__)
    if unknown:
        raise TypeError(f"{method}() got unexpected keyword argument(s) {sorted(unknown)}")


def chat_request(
    messages: MessagesLike,
    options: Mapping[str, Any],
    *,
    response_model: type[BaseModel] | None = None,
) -> llm_service_pb2.ChatRequest:
    request = llm_service_pb2.ChatRequest(
        provider=options.get("provider", ""),
        model=options.get("model", ""),
        messages=to_messages(messages),
        stop_sequences=list(options.get("stop_sequences", ())),
        tools=tool_definitions(options.get("tools", ())),
        tags=dict(options.get("tags", {})),
        request_id=options.get("request_id", ""),
    )
    for name in ("temperature", "top_p", "max_tokens", "seed"):
        if options.get(name) is not None:
            setattr(request, name, options[name])
    if "tool_choice" in options:
        request.tool_choice.CopyFrom(tool_choice(options["tool_choice"]))
    if response_model is not None:
        if "response_format" in options:
            raise TypeError("chat(): pass response_model or response_format, not both")
        request.response_format.CopyFrom(response_format(response_model))
    elif "response_format" in options:
        request.response_format.CopyFrom(response_format(options["response_format"]))
    if "priority" in options:
        request.priority = priority(options["priority"])
    if "stream_failover" in options:
        request.stream_failover = stream_failover(options["stream_failover"])
    if options.get("reasoning_effort") is not None:
        request.reasoning.effort = reasoning_effort(options["reasoning_effort"])
    if options.get("reasoning_budget") is not None:
        request.reasoning.budget_tokens = options["reasoning_budget"]
    passthrough = options.get("passthrough")
    if passthrough:
        request.passthrough_json = (
            passthrough if isinstance(passthrough, str) else json.dumps(dict(passthrough))
        )
    return request


def embed_request(inputs: str | Sequence[str], options: Mapping[str, Any]) -> llm_service_pb2.EmbedRequest:
    request = llm_service_pb2.EmbedRequest(
        provider=options.get("provider", ""),
        model=options.get("model", ""),
        inputs=[inputs] if isinstance(inputs, str) else list(inputs),
        tags=dict(options.get("tags", {})),
        request_id=options.get("request_id", ""),
    )
    if options.get("dimensions") is not None:
        request.dimensions = options["dimensions"]
    return request


def count_tokens_request(
    messages: MessagesLike, options: Mapping[str, Any]
) -> llm_service_pb2.CountTokensRequest:
    return llm_service_pb2.CountTokensRequest(
        provider=options.get("provider", ""),
        model=options.get("model", ""),
        messages=to_messages(messages),
        tools=tool_definitions(options.get("tools", ())),
    )


def capabilities_request(options: Mapping[str, Any]) -> llm_service_pb2.GetCapabilitiesRequest:
    return llm_service_pb2.GetCapabilitiesRequest(
        provider=options.get("provider", ""), model=options.get("model", "")
    )


def tool_choice(value: ToolChoiceLike) -> types_pb2.ToolChoice:
    if isinstance(value, types_pb2.ToolChoice):
        return value
    if isinstance(value, str) and value:
        mode = _TOOL_MODES.get(value.lower())
        if mode is not None:
            return types_pb2.ToolChoice(mode=mode)
        return types_pb2.ToolChoice(mode=types_pb2.TOOL_CHOICE_MODE_TOOL, tool_name=value)
    raise TypeError("tool_choice: expected 'auto', 'none', 'required', a tool name or a ToolChoice")


def response_format(value: ResponseFormatLike) -> types_pb2.ResponseFormat:
    if isinstance(value, types_pb2.ResponseFormat):
        return value
    if value == "text":
        return types_pb2.ResponseFormat(type=types_pb2.RESPONSE_FORMAT_TYPE_TEXT)
    if value == "json_object":
        return types_pb2.ResponseFormat(type=types_pb2.RESPONSE_FORMAT_TYPE_JSON_OBJECT)
    name = value.__name__ if is_model_class(value) else "response"
    return types_pb2.ResponseFormat(
        type=types_pb2.RESPONSE_FORMAT_TYPE_JSON_SCHEMA,
        name=name,
        json_schema=schema_text(value, what="response_format"),
    )


def reasoning_effort(value: ReasoningEffortLike) -> types_pb2.ReasoningEffort:
    if isinstance(value, str):
        effort = _EFFORTS.get(value.lower())
        if effort is None:
            raise ValueError(f"reasoning_effort: expected 'low', 'medium' or 'high', got {value!r}")
        return effort
    if value in _EFFORTS.values():
        return value
    raise ValueError(f"reasoning_effort: not a ReasoningEffort: {value!r}")


def stream_failover(value: StreamFailoverLike) -> llm_service_pb2.StreamFailover:
    if isinstance(value, str):
        if value.lower() in _FAILOVERS:
            return _FAILOVERS[value.lower()]
        raise ValueError(f"stream_failover: expected one of {sorted(_FAILOVERS)}, got {value!r}")
    return value


def priority(value: PriorityLike) -> types_pb2.Priority:
    if isinstance(value, str):
        if value.lower() in _PRIORITIES:
            return _PRIORITIES[value.lower()]
        raise ValueError(f"priority: expected one of {sorted(_PRIORITIES)}, got {value!r}")
    return value


def call_metadata(*sources: MetadataLike | None) -> list[tuple[str, str | bytes]]:
    """Metadata pairs in order, keys lower-cased as HTTP/2 requires."""
    pairs: list[tuple[str, str | bytes]] = []
    for source in sources:
        items = source.items() if isinstance(source, Mapping) else (source or ())
        pairs.extend((key.lower(), value) for key, value in items)
    return pairs


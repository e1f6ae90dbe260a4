from google.api import field_behavior_pb2 as _field_behavior_pb2
from portico.v1 import types_pb2 as _types_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class StreamFailover(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STREAM_FAILOVER_UNSPECIFIED: _ClassVar[StreamFailover]
    STREAM_FAILOVER_NONE: _ClassVar[StreamFailover]
    STREAM_FAILOVER_RESTART: _ClassVar[StreamFailover]
    STREAM_FAILOVER_CONTINUE: _ClassVar[StreamFailover]

class TokenCountSource(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TOKEN_COUNT_SOURCE_UNSPECIFIED: _ClassVar[TokenCountSource]
    TOKEN_COUNT_SOURCE_PROVIDER: _ClassVar[TokenCountSource]
    TOKEN_COUNT_SOURCE_ESTIMATE: _ClassVar[TokenCountSource]

class CapabilitySource(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CAPABILITY_SOURCE_UNSPECIFIED: _ClassVar[CapabilitySource]
    CAPABILITY_SOURCE_DISCOVERED: _ClassVar[CapabilitySource]
    CAPABILITY_SOURCE_BUILT_IN: _ClassVar[CapabilitySource]
    CAPABILITY_SOURCE_CONFIGURED: _ClassVar[CapabilitySource]

class ProviderHealth(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PROVIDER_HEALTH_UNSPECIFIED: _ClassVar[ProviderHealth]
    PROVIDER_HEALTH_SERVING: _ClassVar[ProviderHealth]
    PROVIDER_HEALTH_NOT_SERVING: _ClassVar[ProviderHealth]

class BreakerState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    BREAKER_STATE_UNSPECIFIED: _ClassVar[BreakerState]
    BREAKER_STATE_CLOSED: _ClassVar[BreakerState]
    BREAKER_STATE_OPEN: _ClassVar[BreakerState]
    BREAKER_STATE_HALF_OPEN: _ClassVar[BreakerState]
STREAM_FAILOVER_UNSPECIFIED: StreamFailover
STREAM_FAILOVER_NONE: StreamFailover
STREAM_FAILOVER_RESTART: StreamFailover
STREAM_FAILOVER_CONTINUE: StreamFailover
TOKEN_COUNT_SOURCE_UNSPECIFIED: TokenCountSource
TOKEN_COUNT_SOURCE_PROVIDER: TokenCountSource
TOKEN_COUNT_SOURCE_ESTIMATE: TokenCountSource
CAPABILITY_SOURCE_UNSPECIFIED: CapabilitySource
CAPABILITY_SOURCE_DISCOVERED: CapabilitySource
CAPABILITY_SOURCE_BUILT_IN: CapabilitySource
CAPABILITY_SOURCE_CONFIGURED: CapabilitySource
PROVIDER_HEALTH_UNSPECIFIED: ProviderHealth
PROVIDER_HEALTH_SERVING: ProviderHealth
PROVIDER_HEALTH_NOT_SERVING: ProviderHealth
BREAKER_STATE_UNSPECIFIED: BreakerState
BREAKER_STATE_CLOSED: BreakerState
BREAKER_STATE_OPEN: BreakerState
BREAKER_STATE_HALF_OPEN: BreakerState

class ChatRequest(_message.Message):
    __slots__ = ("provider", "model", "messages", "temperature", "top_p", "max_tokens", "stop_sequences", "seed", "tools", "tool_choice", "response_format", "priority", "tags", "passthrough_json", "request_id", "stream_failover", "reasoning")
    class TagsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    TOP_P_FIELD_NUMBER: _ClassVar[int]
    MAX_TOKENS_FIELD_NUMBER: _ClassVar[int]
    STOP_SEQUENCES_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    TOOLS_FIELD_NUMBER: _ClassVar[int]
    TOOL_CHOICE_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_FORMAT_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    PASSTHROUGH_JSON_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    STREAM_FAILOVER_FIELD_NUMBER: _ClassVar[int]
    REASONING_FIELD_NUMBER: _ClassVar[int]
    provider: str
    model: str
    messages: _containers.RepeatedCompositeFieldContainer[_types_pb2.Message]
    temperature: float
    top_p: float
    max_tokens: int
    stop_sequences: _containers.RepeatedScalarFieldContainer[str]
    seed: int
    tools: _containers.RepeatedCompositeFieldContainer[_types_pb2.ToolDefinition]
    tool_choice: _types_pb2.ToolChoice
    response_format: _types_pb2.ResponseFormat
    priority: _types_pb2.Priority
    tags: _containers.ScalarMap[str, str]
    passthrough_json: str
    request_id: str
    stream_failover: StreamFailover
    reasoning: _types_pb2.ReasoningConfig
    def __init__(self, provider: _Optional[str] = ..., model: _Optional[str] = ..., messages: _Optional[_Iterable[_Union[_types_pb2.Message, _Mapping]]] = ..., temperature: _Optional[float] = ..., top_p: _Optional[float] = ..., max_tokens: _Optional[int] = ..., stop_sequences: _Optional[_Iterable[str]] = ..., seed: _Optional[int] = ..., tools: _Optional[_Iterable[_Union[_types_pb2.ToolDefinition, _Mapping]]] = ..., tool_choice: _Optional[_Union[_types_pb2.ToolChoice, _Mapping]] = ..., response_format: _Optional[_Union[_types_pb2.ResponseFormat, _Mapping]] = ..., priority: _Optional[_Union[_types_pb2.Priority, str]] = ..., tags: _Optional[_Mapping[str, str]] = ..., passthrough_json: _Optional[str] = ..., request_id: _Optional[str] = ..., stream_failover: _Optional[_Union[StreamFailover, str]] = ..., reasoning: _Optional[_Union[_types_pb2.ReasoningConfig, _Mapping]] = ...) -> None: ...

class Failover(_message.Message):
    __slots__ = ("mode", "provider", "model", "reason")
    MODE_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    mode: StreamFailover
    provider: str
    model: str
    reason: str
    def __init__(self, mode: _Optional[_Union[StreamFailover, str]] = ..., provider: _Optional[str] = ..., model: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class CompletionResponse(_message.Message):
    __slots__ = ("content", "role", "tool_calls", "stop_reason", "raw_stop_reason", "usage", "model", "provider", "reasoning_content", "metadata", "parts")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    TOOL_CALLS_FIELD_NUMBER: _ClassVar[int]
    STOP_REASON_FIELD_NUMBER: _ClassVar[int]
    RAW_STOP_REASON_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    REASONING_CONTENT_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    PARTS_FIELD_NUMBER: _ClassVar[int]
    content: str
    role: _types_pb2.Role
    tool_calls: _containers.RepeatedCompositeFieldContainer[_types_pb2.ToolCall]
    stop_reason: _types_pb2.StopReason
    raw_stop_reason: str
    usage: _types_pb2.Usage
    model: str
    provider: str
    reasoning_content: str
    metadata: _containers.ScalarMap[str, str]
    parts: _containers.RepeatedCompositeFieldContainer[_types_pb2.ContentPart]
    def __init__(self, content: _Optional[str] = ..., role: _Optional[_Union[_types_pb2.Role, str]] = ..., tool_calls: _Optional[_Iterable[_Union[_types_pb2.ToolCall, _Mapping]]] = ..., stop_reason: _Optional[_Union[_types_pb2.StopReason, str]] = ..., raw_stop_reason: _Optional[str] = ..., usage: _Optional[_Union[_types_pb2.Usage, _Mapping]] = ..., model: _Optional[str] = ..., provider: _Optional[str] = ..., reasoning_content: _Optional[str] = ..., metadata: _Optional[_Mapping[str, str]] = ..., parts: _Optional[_Iterable[_Union[_types_pb2.ContentPart, _Mapping]]] = ...) -> None: ...

class StreamChunk(_message.Message):
    __slots__ = ("content", "tool_call_deltas", "tool_calls", "stop_reason", "raw_stop_reason", "final", "usage", "reasoning_content", "model", "provider", "metadata", "parts", "failover")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    TOOL_CALL_DELTAS_FIELD_NUMBER: _ClassVar[int]
    TOOL_CALLS_FIELD_NUMBER: _ClassVar[int]
    STOP_REASON_FIELD_NUMBER: _ClassVar[int]
    RAW_STOP_REASON_FIELD_NUMBER: _ClassVar[int]
    FINAL_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    REASONING_CONTENT_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    PARTS_FIELD_NUMBER: _ClassVar[int]
    FAILOVER_FIELD_NUMBER: _ClassVar[int]
    content: str
    tool_call_deltas: _containers.RepeatedCompositeFieldContainer[_types_pb2.ToolCallDelta]
    tool_calls: _containers.RepeatedCompositeFieldContainer[_types_pb2.ToolCall]
    stop_reason: _types_pb2.StopReason
    raw_stop_reason: str
    final: bool
    usage: _types_pb2.Usage
    reasoning_content: str
    model: str
    provider: str
    metadata: _containers.ScalarMap[str, str]
    parts: _containers.RepeatedCompositeFieldContainer[_types_pb2.ContentPart]
    failover: Failover
    def __init__(self, content: _Optional[str] = ..., tool_call_deltas: _Optional[_Iterable[_Union[_types_pb2.ToolCallDelta, _Mapping]]] = ..., tool_calls: _Optional[_Iterable[_Union[_types_pb2.ToolCall, _Mapping]]] = ..., stop_reason: _Optional[_Union[_types_pb2.StopReason, str]] = ..., raw_stop_reason: _Optional[str] = ..., final: _Optional[bool] = ..., usage: _Optional[_Union[_types_pb2.Usage, _Mapping]] = ..., reasoning_content: _Optional[str] = ..., model: _Optional[str] = ..., provider: _Optional[str] = ..., metadata: _Optional[_Mapping[str, str]] = ..., parts: _Optional[_Iterable[_Union[_types_pb2.ContentPart, _Mapping]]] = ..., failover: _Optional[_Union[Failover, _Mapping]] = ...) -> None: ...

class EmbedRequest(_message.Message):
    __slots__ = ("provider", "model", "inputs", "dimensions", "tags", "request_id")
    class TagsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    DIMENSIONS_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    provider: str
    model: str
    inputs: _containers.RepeatedScalarFieldContainer[str]
    dimensions: int
    tags: _containers.ScalarMap[str, str]
    request_id: str
    def __init__(self, provider: _Optional[str] = ..., model: _Optional[str] = ..., inputs: _Optional[_Iterable[str]] = ..., dimensions: _Optional[int] = ..., tags: _Optional[_Mapping[str, str]] = ..., request_id: _Optional[str] = ...) -> None: ...

class Embedding(_message.Message):
    __slots__ = ("index", "values")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    index: int
    values: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, index: _Optional[int] = ..., values: _Optional[_Iterable[float]] = ...) -> None: ...

class EmbedResponse(_message.Message):
    __slots__ = ("embeddings", "usage", "model", "provider")
    EMBEDDINGS_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    embeddings: _containers.RepeatedCompositeFieldContainer[Embedding]
    usage: _types_pb2.Usage
    model: str
    provider: str
    def __init__(self, embeddings: _Optional[_Iterable[_Union[Embedding, _Mapping]]] = ..., usage: _Optional[_Union[_types_pb2.Usage, _Mapping]] = ..., model: _Optional[str] = ..., provider: _Optional[str] = ...) -> None: ...

class CountTokensRequest(_message.Message):
    __slots__ = ("provider", "model", "messages", "tools")
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    TOOLS_FIELD_NUMBER: _ClassVar[int]
    provider: str
    model: str
    messages: _containers.RepeatedCompositeFieldContainer[_types_pb2.Message]
    tools: _containers.RepeatedCompositeFieldContainer[_types_pb2.ToolDefinition]
    def __init__(self, provider: _Optional[str] = ..., model: _Optional[str] = ..., messages: _Optional[_Iterable[_Union[_types_pb2.Message, _Mapping]]] = ..., tools: _Optional[_Iterable[_Union[_types_pb2.ToolDefinition, _Mapping]]] = ...) -> None: ...

class CountTokensResponse(_message.Message):
    __slots__ = ("token_count", "source", "provider", "model")
    TOKEN_COUNT_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    token_count: int
    source: TokenCountSource
    provider: str
    model: str
    def __init__(self, token_count: _Optional[int] = ..., source: _Optional[_Union[TokenCountSource, str]] = ..., provider: _Optional[str] = ..., model: _Optional[str] = ...) -> None: ...

class GetCapabilitiesRequest(_message.Message):
    __slots__ = ("provider", "model")
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    provider: str
    model: str
    def __init__(self, provider: _Optional[str] = ..., model: _Optional[str] = ...) -> None: ...

class Capabilities(_message.Message):
    __slots__ = ("provider", "model", "context_window_tokens", "max_output_tokens", "supports_tools", "supports_streaming", "supports_embeddings", "supports_vision", "supports_response_format", "source")
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_WINDOW_TOKENS_FIELD_NUMBER: _ClassVar[int]
    MAX_OUTPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    SUPPORTS_TOOLS_FIELD_NUMBER: _ClassVar[int]
    SUPPORTS_STREAMING_FIELD_NUMBER: _ClassVar[int]
    SUPPORTS_EMBEDDINGS_FIELD_NUMBER: _ClassVar[int]
    SUPPORTS_VISION_FIELD_NUMBER: _ClassVar[int]
    SUPPORTS_RESPONSE_FORMAT_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    provider: str
    model: str
    context_window_tokens: int
    max_output_tokens: int
    supports_tools: bool
    supports_streaming: bool
    supports_embeddings: bool
    supports_vision: bool
    supports_response_format: bool
    source: CapabilitySource
    def __init__(self, provider: _Optional[str] = ..., model: _Optional[str] = ..., context_window_tokens: _Optional[int] = ..., max_output_tokens: _Optional[int] = ..., supports_tools: _Optional[bool] = ..., supports_streaming: _Optional[bool] = ..., supports_embeddings: _Optional[bool] = ..., supports_vision: _Optional[bool] = ..., supports_response_format: _Optional[bool] = ..., source: _Optional[_Union[CapabilitySource, str]] = ...) -> None: ...

class GetCapabilitiesResponse(_message.Message):
    __slots__ = ("capabilities",)
    CAPABILITIES_FIELD_NUMBER: _ClassVar[int]
    capabilities: Capabilities
    def __init__(self, capabilities: _Optional[_Union[Capabilities, _Mapping]] = ...) -> None: ...

class ListProvidersRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ProviderInfo(_message.Message):
    __slots__ = ("name", "kind", "models", "health", "default_model", "breaker_state", "breaker_open_seconds", "cooldown_seconds", "latency_ms", "ttft_ms", "error_rate", "in_flight", "queue_depth")
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    HEALTH_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_MODEL_FIELD_NUMBER: _ClassVar[int]
    BREAKER_STATE_FIELD_NUMBER: _ClassVar[int]
    BREAKER_OPEN_SECONDS_FIELD_NUMBER: _ClassVar[int]
    COOLDOWN_SECONDS_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    TTFT_MS_FIELD_NUMBER: _ClassVar[int]
    ERROR_RATE_FIELD_NUMBER: _ClassVar[int]
    IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    QUEUE_DEPTH_FIELD_NUMBER: _ClassVar[int]
    name: str
    kind: str
    models: _containers.RepeatedScalarFieldContainer[str]
    health: ProviderHealth
    default_model: str
    breaker_state: BreakerState
    breaker_open_seconds: float
    cooldown_seconds: float
    latency_ms: float
    ttft_ms: float
    error_rate: float
    in_flight: int
    queue_depth: int
    def __init__(self, name: _Optional[str] = ..., kind: _Optional[str] = ..., models: _Optional[_Iterable[str]] = ..., health: _Optional[_Union[ProviderHealth, str]] = ..., default_model: _Optional[str] = ..., breaker_state: _Optional[_Union[BreakerState, str]] = ..., breaker_open_seconds: _Optional[float] = ..., cooldown_seconds: _Optional[float] = ..., latency_ms: _Optional[float] = ..., ttft_ms: _Optional[float] = ..., error_rate: _Optional[float] = ..., in_flight: _Optional[int] = ..., queue_depth: _Optional[int] = ...) -> None: ...

class ListProvidersResponse(_message.Message):
    __slots__ = ("providers", "next_page_token")
    PROVIDERS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    providers: _containers.RepeatedCompositeFieldContainer[ProviderInfo]
    next_page_token: str
    def __init__(self, providers: _Optional[_Iterable[_Union[ProviderInfo, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

"""Portico's Python client: one API in front of many LLM providers.

    from portico import Client

    with Client("127.0.0.1:50051") as client:
        answer = client.chat("Say hello")
        print(answer.content, answer.stop_reason_name)

`Client` blocks, `AsyncClient` is its asyncio twin; both return the API's protobuf
messages (re-exported here), answers with the gateway's attempt trace beside them and
enum values readable as words (`stop_reason_name`), and raise the typed exceptions of
`portico.PorticoError`.
The generated stubs live in `portico.v1`.
"""

from . import filters
from ._async_client import AsyncClient
from ._channel import TLS
from ._client import Client
from ._errors import (
    AlreadyExistsError,
    CallCancelledError,
    ConnectionFailedError,
    DeadlineExceededError,
    FailedPreconditionError,
    FieldViolation,
    IncompleteStreamError,
    InternalError,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
    PorticoError,
    ResourceExhaustedError,
    ResponseParseError,
    StatusError,
    UnauthenticatedError,
    UnavailableError,
)
from ._parts import assistant_message, cache, cache_breakpoint, document, image, media, reasoning_parts
from ._retry import RetryPolicy
from ._stream import AsyncChatStream, ChatStream
from ._tools import tool
from ._trace import Attempt, ChatResponse, EmbedResult, Provider, TokenCount
from ._vectors import AsyncVectors, UpsertResult, VectorCollection, VectorMatch, VectorRecord, Vectors
from ._version import __version__
from .v1.error_reason_pb2 import ErrorReason
from .v1.llm_service_pb2 import (
    Capabilities,
    CapabilitySource,
    CompletionResponse,
    CountTokensResponse,
    EmbedResponse,
    Failover,
    ProviderHealth,
    ProviderInfo,
    StreamChunk,
    StreamFailover,
    TokenCountSource,
)
from .v1.types_pb2 import (
    CacheBreakpoint,
    ContentPart,
    Media,
    Message,
    Priority,
    Reasoning,
    ReasoningConfig,
    ReasoningEffort,
    ResponseFormat,
    ResponseFormatType,
    Role,
    StopReason,
    ToolCall,
    ToolCallDelta,
    ToolChoice,
    ToolChoiceMode,
    ToolDefinition,
    Usage,
)

__all__ = [
    "TLS",
    "AlreadyExistsError",
    "AsyncChatStream",
    "AsyncClient",
    "AsyncVectors",
    "Attempt",
    "CacheBreakpoint",
    "CallCancelledError",
    "Capabilities",
    "CapabilitySource",
    "ChatResponse",
    "ChatStream",
    "Client",
    "CompletionResponse",
    "ConnectionFailedError",
    "ContentPart",
    "CountTokensResponse",
    "DeadlineExceededError",
    "EmbedResponse",
    "EmbedResult",
    "ErrorReason",
    "FailedPreconditionError",
    "Failover",
    "FieldViolation",
    "IncompleteStreamError",
    "InternalError",
    "InvalidArgumentError",
    "Media",
    "Message",
    "NotFoundError",
    "PermissionDeniedError",
    "PorticoError",
    "Priority",
    "Provider",
    "ProviderHealth",
    "ProviderInfo",
    "Reasoning",
    "ReasoningConfig",
    "ReasoningEffort",
    "ResourceExhaustedError",
    "ResponseFormat",
    "ResponseFormatType",
    "ResponseParseError",
    "RetryPolicy",
    "Role",
    "StatusError",
    "StopReason",
    "StreamChunk",
    "StreamFailover",
    "TokenCount",
    "TokenCountSource",
    "ToolCall",
    "ToolCallDelta",
    "ToolChoice",
    "ToolChoiceMode",
    "ToolDefinition",
    "UnauthenticatedError",
    "UnavailableError",
    "UpsertResult",
    "Usage",
    "VectorCollection",
    "VectorMatch",
    "VectorRecord",
    "Vectors",
    "__version__",
    "assistant_message",
    "cache",
    "cache_breakpoint",
    "document",
    "filters",
    "image",
    "media",
    "reasoning_parts",
    "tool",
]

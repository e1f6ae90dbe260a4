"""Plain domain types that providers produce and consume.

Providers never see protobuf and the servicer never sees HTTP; `convert.py` is the one
place that maps these types to and from `portico.v1` messages.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class Role(enum.Enum):
    SYSTEM = "system"
    USER = "user"
    ASSISTANT = "assistant"
    TOOL = "tool"


class StopReason(enum.Enum):
    UNSPECIFIED = "unspecified"
    END_TURN = "end_turn"
    MAX_TOKENS = "max_tokens"
    STOP_SEQUENCE = "stop_sequence"
    TOOL_CALLS = "tool_calls"
    CONTENT_FILTER = "content_filter"
    REFUSAL = "refusal"
    OTHER = "other"


class ToolChoiceMode(enum.Enum):
    UNSPECIFIED = "unspecified"
    AUTO = "auto"
    NONE = "none"
    REQUIRED = "required"
    TOOL = "tool"


class ResponseFormatType(enum.Enum):
    TEXT = "text"
    JSON_OBJECT = "json_object"
    JSON_SCHEMA = "json_schema"


class Priority(enum.IntEnum):
    LOW = 1
    NORMAL = 2
    HIGH = 3


class StreamFailover(enum.Enum):
    """What a stream may do when its provider fails after the first chunk was sent."""

    NONE = "none"  # end with the error status (the default: honest, never a silent OK)
    RESTART = "restart"  # a marker chunk discards what was sent; the next target answers whole
    CONTINUE = "continue"  # the next target continues from the text so far, after a marker


class Source(enum.Enum):
    """Where a figure (capabilities, token count) comes from."""

    PROVIDER = "provider"  # asked of the provider over HTTP, exact
    BUILT_IN = "built_in"  # Portico's table of known models
    CONFIGURED = "configured"  # the gateway's configuration
    ESTIMATE = "estimate"  # a heuristic


class ReasoningEffort(enum.Enum):
    """How hard a reasoning model thinks; each dialect maps it to its own knob."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


@dataclass(slots=True)
class ReasoningConfig:
    """Reasoning controls of a request. `budget_tokens` wins over `effort` for providers that
    take a token budget; providers with only an effort knob map the budget to an effort."""

    effort: ReasoningEffort | None = None
    budget_tokens: int | None = None


@dataclass(slots=True)
class CacheBreakpoint:
    """A prompt-cache breakpoint after a message, part or tool. `ttl_seconds` None means the
    provider's default lifetime."""

    ttl_seconds: int | None = None


@dataclass(slots=True)
class MediaPart:
    """An image or a document: inline `data` or a `uri` (http(s), gs://, data:), exactly one."""

    mime_type: str = ""
    data: bytes = b""
    uri: str = ""
    detail: str = ""  # the provider's detail hint for images ("low", "high", "auto")


@dataclass(slots=True)
class ReasoningPart:
    """A thought of the model. Returned in answers and sent back unchanged on the next turn,
    so providers that sign their reasoning (Anthropic, Gemini, OpenAI) can verify it.

    `text` is the readable thought (may be empty); `signature` the provider's signature over
    it (Anthropic `signature`, Gemini `thoughtSignature`); `redacted` an opaque payload
    (Anthropic `redacted_thinking` data, OpenAI `encrypted_content`). `source` names the
    dialect that produced it ("anthropic", "gemini", "openai", ...): a provider sends back
    only the parts of its own dialect, so a conversation can move between providers.
    A signature-only part (no text, no redacted payload) belongs to the part that follows it
    (Gemini signs the function call or text that comes after the thought).
    """

    text: str = ""
    signature: str = ""
    redacted: str = ""
    source: str = ""


@dataclass(slots=True)
class ContentPart:
    """Exactly one of `text`, `media` and `reasoning` is set."""

    text: str | None = None
    media: MediaPart | None = None
    reasoning: ReasoningPart | None = None
    cache: CacheBreakpoint | None = None


@dataclass(slots=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # the JSON text exactly as the model produced it


@dataclass(slots=True)
class ToolCallDelta:
    index: int
    id: str = ""
    name: str = ""
    arguments_delta: str = ""


@dataclass(slots=True)
class Message:
    role: Role
    content: str = ""
    parts: list[ContentPart] = field(default_factory=list)
    name: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    tool_call_id: str = ""
    cache: CacheBreakpoint | None = None

    def text(self) -> str:
        """The message's text: `content`, or its text parts joined (reasoning excluded)."""
        if self.parts:
            return "".join(p.text for p in self.parts if p.text is not None)
        return self.content


@dataclass(slots=True)
class ToolDefinition:
    name: str
    description: str = ""
    parameters: dict[str, Any] = field(default_factory=dict)  # JSON Schema, key order kept
    parameters_json: str = ""  # the caller's exact text, for providers that pass it on
    cache: CacheBreakpoint | None = None


@dataclass(slots=True)
class ToolChoice:
    mode: ToolChoiceMode = ToolChoiceMode.UNSPECIFIED
    tool_name: str = ""


@dataclass(slots=True)
class ResponseFormat:
    type: ResponseFormatType = ResponseFormatType.TEXT
    name: str = ""
    schema: dict[str, Any] | None = None
    strict: bool = False


@dataclass(slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cache_creation_tokens: int = 0
    cache_read_tokens: int = 0
    reasoning_tokens: int = 0
    estimated: bool = False  # the gateway estimated the figures: the provider sent none


@dataclass(slots=True)
class ChatRequest:
    """A validated chat request. `model` is the provider's own model name after routing."""

    model: str
    messages: list[Message]
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    stop: list[str] = field(default_factory=list)
    seed: int | None = None
    tools: list[ToolDefinition] = field(default_factory=list)
    tool_choice: ToolChoice | None = None
    response_format: ResponseFormat | None = None
    passthrough: dict[str, Any] = field(default_factory=dict)
    reasoning: ReasoningConfig | None = None


@dataclass(slots=True)
class CompletionResponse:
    content: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    stop_reason: StopReason = StopReason.UNSPECIFIED
    raw_stop_reason: str = ""
    usage: Usage = field(default_factory=Usage)
    model: str = ""
    provider: str = ""
    reasoning_content: str = ""
    #: The assistant turn in order (text and reasoning parts, signatures included); a
    #: caller sends these back as the assistant message's parts on the next turn.
    parts: list[ContentPart] = field(default_factory=list)
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class FailoverMarker:
    """Sent alone in a chunk when a stream moves to another target after its first chunk."""

    mode: StreamFailover
    provider: str  # the target taking over
    model: str
    reason: str = ""  # the ErrorReason that ended the previous target


@dataclass(slots=True)
class StreamChunk:
    content: str = ""
    tool_call_deltas: list[ToolCallDelta] = field(default_factory=list)
    tool_calls: list[ToolCall] = field(default_factory=list)
    stop_reason: StopReason = StopReason.UNSPECIFIED
    raw_stop_reason: str = ""
    is_final: bool = False
    usage: Usage | None = None
    reasoning_content: str = ""
    model: str = ""
    provider: str = ""
    #: On the final chunk: the assistant turn's parts, as `CompletionResponse.parts`.
    parts: list[ContentPart] = field(default_factory=list)
    #: On the first and the final chunk: provider extras (response id, ...).
    metadata: dict[str, str] = field(default_factory=dict)
    #: Set (on a chunk of its own) when the stream moved to another target mid-way.
    failover: FailoverMarker | None = None


@dataclass(slots=True)
class EmbedRequest:
    model: str
    inputs: list[str]
    dimensions: int | None = None


@dataclass(slots=True)
class EmbedResponse:
    #: One per input, in input order: float32 values packed little-endian (`vectors.py`),
    #: the layout of both OpenAI's base64 vectors and protobuf's packed `repeated float`.
    vectors: list[bytes]
    usage: Usage = field(default_factory=Usage)
    model: str = ""
    provider: str = ""


@dataclass(slots=True)
class TokenCount:
    tokens: int
    source: Source  # PROVIDER or ESTIMATE
    model: str = ""


@dataclass(slots=True)
class Capabilities:
    model: str = ""
    context_window: int = 0
    max_output_tokens: int = 0
    supports_tools: bool = False
    supports_streaming: bool = True
    supports_embeddings: bool = False
    supports_vision: bool = False
    supports_response_format: bool = False
    source: Source = Source.CONFIGURED

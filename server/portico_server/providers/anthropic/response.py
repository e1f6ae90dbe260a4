"""Messages API answers as domain objects: a whole message, or the events of a stream.

Streams are server-sent events: `message_start`, `content_block_start/delta/stop`
(`text_delta`, `thinking_delta`, `input_json_delta`, `signature_delta`), `message_delta`
(stop reason, usage), `message_stop`, `ping`, and `error`, which may arrive after HTTP 200
(the provider raises it before it gets here).

The input of the answer tool (see `request`) comes back as the answer's text.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ... import jsonwire
from ...domain import CompletionResponse, ContentPart, ReasoningPart, StopReason, StreamChunk, ToolCall, Usage
from ...errors import UpstreamProtocol
from ..call_ids import portable_call_id
from ..streaming import ToolCallAssembler

_STOP_REASONS = {
    "end_turn": StopReason.END_TURN,
    "max_tokens": StopReason.MAX_TOKENS,
    "model_context_window_exceeded": StopReason.MAX_TOKENS,
    "stop_sequence": StopReason.STOP_SEQUENCE,
    "tool_use": StopReason.TOOL_CALLS,
    "refusal": StopReason.REFUSAL,
    "pause_turn": StopReason.OTHER,
}


#: The `source` of the reasoning parts of this dialect (see `request.REASONING_SOURCE`).
_SOURCE = "anthropic"


def completion(raw: bytes, *, answer_tool: str, request_id: str, provider: str) -> CompletionResponse:
    """The domain response for the body of a non-streamed answer."""
    try:
        data = jsonwire.loads(raw)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise UpstreamProtocol(f"provider {provider!r} answered with a body that is not a message",
                               provider=provider)
    text: list[str] = []
    reasoning: list[str] = []
    parts: list[ContentPart] = []
    calls: list[ToolCall] = []
    answered = False
    for block in data.get("content") or []:
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text":
            text.append(str(block.get("text") or ""))
            parts.append(ContentPart(text=text[-1]))
        elif kind == "thinking":
            reasoning.append(str(block.get("thinking") or ""))
            parts.append(_thinking(reasoning[-1], block.get("signature")))
        elif kind == "redacted_thinking":
            parts.append(_redacted(block.get("data")))
        elif kind == "tool_use" and answer_tool and block.get("name") == answer_tool:
            text.append(_arguments(block.get("input")))
            parts.append(ContentPart(text=text[-1]))
            answered = True
        elif kind == "tool_use":
            calls.append(ToolCall(id=portable_call_id(str(block.get("id") or "")) or f"call_{len(calls)}",
                                  name=str(block.get("name") or ""),
                                  arguments=_arguments(block.get("input"))))
    raw_stop = str(data.get("stop_reason") or "")
    metadata = {"response_id": str(data.get("id") or "")}
    if request_id:
        metadata["request_id"] = request_id
    if data.get("stop_sequence"):
        metadata["stop_sequence"] = str(data["stop_sequence"])
    return CompletionResponse(
        content="".join(text),
        tool_calls=calls,
        stop_reason=_stop_reason(raw_stop, answered=answered and not calls),
        raw_stop_reason=raw_stop,
        usage=_usage(data.get("usage") or {}),
        model=str(data.get("model") or ""),
        provider=provider,
        reasoning_content="".join(reasoning),
        parts=parts,
        metadata=metadata,
    )


def _thinking(text: str, signature: Any) -> ContentPart:
    return ContentPart(reasoning=ReasoningPart(text=text, signature=str(signature or ""), source=_SOURCE))


def _redacted(data: Any) -> ContentPart:
    return ContentPart(reasoning=ReasoningPart(redacted=str(data or ""), source=_SOURCE))


def int_field(fields: Mapping[str, Any], name: str) -> int:
    """An integer field of a JSON object; 0 when it is missing or not an integer."""
    value = fields.get(name)
    return value if isinstance(value, int) else 0


def _stop_reason(raw: str, *, answered: bool) -> StopReason:
    if raw == "tool_use" and answered:
        return StopReason.END_TURN  # the only tool called was the answer tool
    if not raw:
        return StopReason.UNSPECIFIED
    return _STOP_REASONS.get(raw, StopReason.OTHER)


def _usage(fields: Mapping[str, Any]) -> Usage:
    # Anthropic's input_tokens leaves out cached tokens; Portico's prompt count has them.
    cache_write = int_field(fields, "cache_creation_input_tokens")
    cache_read = int_field(fields, "cache_read_input_tokens")
    prompt = int_field(fields, "input_tokens") + cache_write + cache_read
    output = int_field(fields, "output_tokens")
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=output,
        total_tokens=prompt + output,
        cache_creation_tokens=cache_write,
        cache_read_tokens=cache_read,
    )


def _arguments(value: Any) -> str:
    return json.dumps(value if value is not None else {}, ensure_ascii=False)


# -- streams -------------------------------------------------------------------------------


@dataclass(slots=True)
class _Block:
    kind: str  # text, thinking, redacted, tool, answer or other
    tool_index: int = -1
    text: list[str] = field(default_factory=list)  # text, thinking or the answer's JSON
    signature: str = ""
    data: str = ""  # a redacted block's payload

    def part(self) -> ContentPart | None:
        """The block as a part of the answer (None for tool calls and unknown blocks)."""
        if self.kind in ("text", "answer"):
            return ContentPart(text="".join(self.text))
        if self.kind == "thinking":
            return _thinking("".join(self.text), self.signature)
        if self.kind == "redacted":
            return _redacted(self.data)
        return None


@dataclass(slots=True)
class StreamTranslator:
    """Turns the events of one stream into domain chunks, one event at a time."""

    provider: str
    answer_tool: str = ""
    #: The `request-id` response header, for the metadata.
    request_id: str = ""
    model: str = ""
    response_id: str = ""
    raw_stop: str = ""
    finished: bool = False
    answered: bool = False
    usage: dict[str, Any] = field(default_factory=dict)
    tools: ToolCallAssembler = field(default_factory=ToolCallAssembler)
    _blocks: dict[int, _Block] = field(default_factory=dict)
    _complete: set[int] = field(default_factory=set)
    _tool_count: int = 0
    _announced: bool = False

    def feed(self, kind: str, data: dict[str, Any]) -> StreamChunk | None:
        chunk = self._translate(kind, data)
        if chunk is not None and not self._announced:
            # The first chunk says who answers, like `final` does.
            self._announced = True
            chunk.model, chunk.provider, chunk.metadata = self.model, self.provider, self.metadata()
        return chunk

    def metadata(self) -> dict[str, str]:
        """As a whole answer's metadata: the message id and the request id."""
        metadata = {"response_id": self.response_id}
        if self.request_id:
            metadata["request_id"] = self.request_id
        return metadata

    def _translate(self, kind: str, data: dict[str, Any]) -> StreamChunk | None:
        if kind == "message_start":
            message = data.get("message") or {}
            self.model = str(message.get("model") or "")
            self.response_id = str(message.get("id") or "")
            self._take_usage(message.get("usage"))
        elif kind == "content_block_start":
            return self._start(int(data.get("index", 0)), data.get("content_block") or {})
        elif kind == "content_block_delta":
            return self._delta(int(data.get("index", 0)), data.get("delta") or {})
        elif kind == "content_block_stop":
            block = self._blocks.get(int(data.get("index", 0)))
            if block is not None and block.kind == "tool":
                self._complete.add(block.tool_index)
        elif kind == "message_delta":
            delta = data.get("delta") or {}
            self.raw_stop = str(delta.get("stop_reason") or self.raw_stop)
            self._take_usage(data.get("usage"))
        elif kind == "message_stop":
            self.finished = True
        # `ping` and event types added after this was written carry nothing to forward.
        return None

    def _take_usage(self, usage: Any) -> None:
        # Each report is cumulative: the latest value of a field replaces the earlier one.
        if isinstance(usage, dict):
            self.usage.update({k: v for k, v in usage.items() if v is not None})

    def _start(self, index: int, block: dict[str, Any]) -> StreamChunk | None:
        kind = block.get("type")
        if kind == "text":
            self._blocks[index] = _Block("text", text=[str(block.get("text") or "")])
            return StreamChunk(content=block["text"]) if block.get("text") else None
        if kind == "thinking":
            self._blocks[index] = _Block("thinking", text=[str(block.get("thinking") or "")],
                                         signature=str(block.get("signature") or ""))
            return StreamChunk(reasoning_content=block["thinking"]) if block.get("thinking") else None
        if kind == "redacted_thinking":
            self._blocks[index] = _Block("redacted", data=str(block.get("data") or ""))
            return None
        if kind == "tool_use" and self.answer_tool and block.get("name") == self.answer_tool:
            self._blocks[index] = _Block("answer")
            self.answered = True
            return None
        if kind == "tool_use":
            # The block's `input` is always {} here; the arguments follow as JSON text.
            position = self._tool_count
            self._tool_count += 1
            self._blocks[index] = _Block("tool", position)
            delta = self.tools.add(position, id=portable_call_id(str(block.get("id") or "")),
                                   name=str(block.get("name") or ""))
            return StreamChunk(tool_call_deltas=[delta])
        self._blocks[index] = _Block("other")
        return None

    def _delta(self, index: int, delta: dict[str, Any]) -> StreamChunk | None:
        kind = delta.get("type")
        block = self._blocks.get(index, _Block("other"))
        if kind == "text_delta" and delta.get("text"):
            block.text.append(str(delta["text"]))
            return StreamChunk(content=block.text[-1])
        if kind == "thinking_delta" and delta.get("thinking"):
            block.text.append(str(delta["thinking"]))
            return StreamChunk(reasoning_content=block.text[-1])
        if kind == "signature_delta":
            # Opaque; it reaches the caller whole, on the final chunk's parts.
            block.signature += str(delta.get("signature") or "")
            return None
        if kind == "input_json_delta" and delta.get("partial_json"):
            piece = str(delta["partial_json"])
            if block.kind == "answer":
                block.text.append(piece)
                return StreamChunk(content=piece)
            if block.kind == "tool":
                return StreamChunk(tool_call_deltas=[self.tools.add(block.tool_index, arguments=piece)])
        # Citations and delta types added after this was written: nothing to forward.
        return None

    def final(self) -> StreamChunk:
        # A tool call whose block never closed was cut off (max_tokens): its arguments
        # are not valid JSON, so it is left out of the assembled calls.
        calls = [c for i, c in enumerate(self.tools.calls()) if i in self._complete]
        parts = [part for _, block in sorted(self._blocks.items()) if (part := block.part()) is not None]
        return StreamChunk(
            tool_calls=calls,
            stop_reason=_stop_reason(self.raw_stop, answered=self.answered and not calls),
            raw_stop_reason=self.raw_stop,
            is_final=True,
            usage=_usage(self.usage),
            model=self.model,
            provider=self.provider,
            parts=parts,
            metadata=self.metadata(),
        )

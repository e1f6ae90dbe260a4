"""Converse answers as domain objects: a whole response, or the events of a stream.

ConverseStream sends `messageStart`, `contentBlockStart` (a tool call's id and name),
`contentBlockDelta` (text, a piece of a tool call's input JSON, reasoning text, its
signature or a redacted payload), `contentBlockStop`, `messageStop` (the stop reason)
and `metadata` (usage), each as one frame of the binary event stream; an exception frame
may arrive after HTTP 200 (the provider raises it before it gets here).
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
from .request import REASONING_SOURCE

_STOP_REASONS = {
    "end_turn": StopReason.END_TURN,
    "tool_use": StopReason.TOOL_CALLS,
    "max_tokens": StopReason.MAX_TOKENS,
    "model_context_window_exceeded": StopReason.MAX_TOKENS,
    "stop_sequence": StopReason.STOP_SEQUENCE,
    "guardrail_intervened": StopReason.CONTENT_FILTER,
    "content_filtered": StopReason.CONTENT_FILTER,
}


def completion(raw: bytes, *, answer_tool: str, request_id: str, provider: str, model: str) -> CompletionResponse:
    """The domain response for the body of a Converse answer."""
    try:
        data = jsonwire.loads(raw)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise UpstreamProtocol(f"provider {provider!r} answered with a body that is not a Converse response",
                               provider=provider)
    message = (data.get("output") or {}).get("message") or {}
    text: list[str] = []
    reasoning: list[str] = []
    parts: list[ContentPart] = []
    calls: list[ToolCall] = []
    answered = False
    for block in message.get("content") or []:
        if not isinstance(block, dict):
            continue
        if "text" in block:
            text.append(str(block.get("text") or ""))
            parts.append(ContentPart(text=text[-1]))
        elif "reasoningContent" in block:
            content = block.get("reasoningContent") or {}
            if "redactedContent" in content:
                parts.append(_reasoning(redacted=str(content.get("redactedContent") or "")))
            else:
                thought = content.get("reasoningText") or {}
                reasoning.append(str(thought.get("text") or ""))
                parts.append(_reasoning(text=reasoning[-1], signature=str(thought.get("signature") or "")))
        elif "toolUse" in block:
            use = block.get("toolUse") or {}
            arguments = _arguments(use.get("input"))
            if answer_tool and use.get("name") == answer_tool:
                text.append(arguments)
                parts.append(ContentPart(text=arguments))
                answered = True
            else:
                calls.append(ToolCall(id=portable_call_id(str(use.get("toolUseId") or "")) or f"call_{len(calls)}",
                                      name=str(use.get("name") or ""), arguments=arguments))
    raw_stop = str(data.get("stopReason") or "")
    metadata = {"request_id": request_id} if request_id else {}
    latency = (data.get("metrics") or {}).get("latencyMs")
    if isinstance(latency, int):
        metadata["latency_ms"] = str(latency)
    return CompletionResponse(
        content="".join(text),
        tool_calls=calls,
        stop_reason=stop_reason(raw_stop, answered=answered and not calls),
        raw_stop_reason=raw_stop,
        usage=usage(data.get("usage") or {}),
        model=model,
        provider=provider,
        reasoning_content="".join(reasoning),
        parts=parts,
        metadata=metadata,
    )


def _reasoning(*, text: str = "", signature: str = "", redacted: str = "") -> ContentPart:
    return ContentPart(reasoning=ReasoningPart(text=text, signature=signature, redacted=redacted,
                                               source=REASONING_SOURCE))


def _arguments(value: Any) -> str:
    return json.dumps(value if value is not None else {}, ensure_ascii=False, separators=(",", ":"))


def _int(fields: Mapping[str, Any], name: str) -> int:
    value = fields.get(name)
    return value if isinstance(value, int) else 0


def stop_reason(raw: str, *, answered: bool) -> StopReason:
    if raw == "tool_use" and answered:
        return StopReason.END_TURN  # the only tool called was the answer tool
    if not raw:
        return StopReason.UNSPECIFIED
    return _STOP_REASONS.get(raw, StopReason.OTHER)


def usage(fields: Mapping[str, Any]) -> Usage:
    """Bedrock's `inputTokens` leaves out the tokens read from or written to the cache;
    Portico's prompt count has them, as for Anthropic."""
    cache_read = _int(fields, "cacheReadInputTokens")
    cache_write = _int(fields, "cacheWriteInputTokens")
    prompt = _int(fields, "inputTokens") + cache_read + cache_write
    output = _int(fields, "outputTokens")
    return Usage(prompt_tokens=prompt, completion_tokens=output, total_tokens=prompt + output,
                 cache_creation_tokens=cache_write, cache_read_tokens=cache_read)


@dataclass(slots=True)
class _Block:
    kind: str  # text, reasoning, redacted, tool or answer
    tool_index: int = -1
    text: list[str] = field(default_factory=list)
    signature: str = ""
    redacted: str = ""

    def part(self) -> ContentPart | None:
        if self.kind in ("text", "answer"):
            return ContentPart(text="".join(self.text))
        if self.kind == "reasoning":
            return _reasoning(text="".join(self.text), signature=self.signature)
        if self.kind == "redacted":
            return _reasoning(redacted=self.redacted)
        return None


@dataclass(slots=True)
class StreamTranslator:
    """Turns the events of one ConverseStream into domain chunks, one event at a time."""

    provider: str
    model: str
    answer_tool: str = ""
    request_id: str = ""
    raw_stop: str = ""
    stopped: bool = False
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
            self._announced = True
            chunk.model, chunk.provider, chunk.metadata = self.model, self.provider, self.metadata()
        return chunk

    def metadata(self) -> dict[str, str]:
        return {"request_id": self.request_id} if self.request_id else {}

    def _translate(self, kind: str, data: dict[str, Any]) -> StreamChunk | None:
        index = data.get("contentBlockIndex")
        position = index if isinstance(index, int) else 0
        if kind == "contentBlockStart":
            return self._start(position, (data.get("start") or {}))
        if kind == "contentBlockDelta":
            return self._delta(position, data.get("delta") or {})
        if kind == "contentBlockStop":
            block = self._blocks.get(position)
            if block is not None and block.kind == "tool":
                self._complete.add(block.tool_index)
        elif kind == "messageStop":
            self.raw_stop = str(data.get("stopReason") or "")
            self.stopped = True
        elif kind == "metadata":
            if isinstance(data.get("usage"), dict):
                self.usage = data["usage"]
            self.finished = True  # the last event of a stream
        # messageStart and event types added after this was written carry nothing to forward.
        return None

    def _start(self, index: int, start: dict[str, Any]) -> StreamChunk | None:
        use = start.get("toolUse")
        if not isinstance(use, dict):
            return None
        if self.answer_tool and use.get("name") == self.answer_tool:
            self._blocks[index] = _Block("answer")
            self.answered = True
            return None
        position = self._tool_count
        self._tool_count += 1
        self._blocks[index] = _Block("tool", position)
        delta = self.tools.add(position, id=portable_call_id(str(use.get("toolUseId") or "")),
                               name=str(use.get("name") or ""))
        return StreamChunk(tool_call_deltas=[delta])

    def _delta(self, index: int, delta: dict[str, Any]) -> StreamChunk | None:
        block = self._blocks.get(index)
        if "text" in delta:
            if block is None:
                block = self._blocks[index] = _Block("text")
            piece = str(delta.get("text") or "")
            if not piece:
                return None
            block.text.append(piece)
            return StreamChunk(content=piece)
        if "toolUse" in delta:
            piece = str((delta.get("toolUse") or {}).get("input") or "")
            if block is None or not piece:
                return None
            if block.kind == "answer":
                block.text.append(piece)
                return StreamChunk(content=piece)
            if block.kind == "tool":
                return StreamChunk(tool_call_deltas=[self.tools.add(block.tool_index, arguments=piece)])
            return None
        if "reasoningContent" in delta:
            content = delta.get("reasoningContent") or {}
            if "redactedContent" in content:
                if block is None or block.kind != "redacted":
                    block = self._blocks[index] = _Block("redacted")
                block.redacted += str(content.get("redactedContent") or "")
                return None
            if block is None:
                block = self._blocks[index] = _Block("reasoning")
            if "signature" in content:
                # Opaque; it reaches the caller whole, on the final chunk's parts.
                block.signature += str(content.get("signature") or "")
                return None
            piece = str(content.get("text") or "")
            if not piece:
                return None
            block.text.append(piece)
            return StreamChunk(reasoning_content=piece)
        return None

    def final(self) -> StreamChunk:
        # A tool call whose block never closed was cut off: its input is not valid JSON.
        calls = [c for i, c in enumerate(self.tools.calls()) if i in self._complete]
        parts = [part for _, block in sorted(self._blocks.items()) if (part := block.part()) is not None]
        return StreamChunk(
            tool_calls=calls,
            stop_reason=stop_reason(self.raw_stop, answered=self.answered and not calls),
            raw_stop_reason=self.raw_stop,
            is_final=True,
            usage=usage(self.usage),
            model=self.model,
            provider=self.provider,
            parts=parts,
            metadata=self.metadata(),
        )

"""Responses API answers as domain objects: a whole response, or the events of a stream.

A response's `output` is a list of items: `reasoning` (summaries, encrypted content),
`message` (output_text and refusal parts) and `function_call`. A stream sends
`response.output_text.delta`, `response.reasoning_summary_text.delta`,
`response.function_call_arguments.delta` and the items whole in
`response.output_item.done`, and ends with `response.completed` or
`response.incomplete` (both carry the whole response and its usage), or with
`response.failed` / `error`, which the provider raises.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ...domain import CompletionResponse, ContentPart, StopReason, StreamChunk, ToolCall, Usage
from ..call_ids import portable_call_id
from ..streaming import ToolCallAssembler
from .request import reasoning_part

#: `incomplete_details.reason` -> stop reason.
_INCOMPLETE = {
    "max_output_tokens": StopReason.MAX_TOKENS,
    "content_filter": StopReason.CONTENT_FILTER,
}
#: Events that end a stream with an answer.
TERMINAL_EVENTS = frozenset({"response.completed", "response.incomplete"})


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def parse_usage(raw: Any) -> Usage:
    """The response's usage; cached input and reasoning tokens from their details."""
    if not isinstance(raw, dict):
        return Usage()
    inputs = raw.get("input_tokens_details") or {}
    outputs = raw.get("output_tokens_details") or {}
    prompt, completion = _int(raw.get("input_tokens")), _int(raw.get("output_tokens"))
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=_int(raw.get("total_tokens")) or prompt + completion,
        cache_read_tokens=_int(inputs.get("cached_tokens")) if isinstance(inputs, dict) else 0,
        reasoning_tokens=_int(outputs.get("reasoning_tokens")) if isinstance(outputs, dict) else 0,
    )


@dataclass(slots=True)
class Output:
    """What a response's output items add up to."""

    text: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    parts: list[ContentPart] = field(default_factory=list)
    calls: list[ToolCall] = field(default_factory=list)
    refused: bool = False


def read_output(items: Any) -> Output:
    out = Output()
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict):
            continue
        kind = item.get("type")
        if kind == "reasoning":
            part = reasoning_part(item)
            if part.text:
                out.reasoning.append(part.text)
            out.parts.append(ContentPart(reasoning=part))
        elif kind == "message":
            for content in item.get("content") or []:
                if not isinstance(content, dict):
                    continue
                if content.get("type") == "output_text":
                    piece = str(content.get("text") or "")
                elif content.get("type") == "refusal":
                    piece = str(content.get("refusal") or "")
                    out.refused = True
                else:
                    continue
                out.text.append(piece)
                out.parts.append(ContentPart(text=piece))
        elif kind == "function_call":
            out.calls.append(ToolCall(
                id=portable_call_id(str(item.get("call_id") or "")) or f"call_{len(out.calls)}",
                name=str(item.get("name") or ""),
                arguments=str(item.get("arguments") or "") or "{}",
            ))
        # Built-in tool items (web search, file search, ...) are out of scope: skipped.
    return out


def stop_reason(data: Mapping[str, Any], out: Output) -> tuple[StopReason, str]:
    """(stop reason, raw reason): the incomplete reason when there is one, else the status."""
    status = str(data.get("status") or "")
    details = data.get("incomplete_details")
    if isinstance(details, dict) and details.get("reason"):
        raw = str(details["reason"])
        return _INCOMPLETE.get(raw, StopReason.OTHER), raw
    if out.refused:
        return StopReason.REFUSAL, status
    if out.calls:
        return StopReason.TOOL_CALLS, status
    if status == "completed":
        return StopReason.END_TURN, status
    return (StopReason.OTHER if status else StopReason.UNSPECIFIED), status


def metadata(data: Mapping[str, Any], request_id: str) -> dict[str, str]:
    out = {"response_id": str(data.get("id") or "")}
    if request_id:
        out["request_id"] = request_id
    return out


def completion(data: Mapping[str, Any], *, provider: str, request_id: str = "") -> CompletionResponse:
    """The domain response for a whole Responses API response object."""
    out = read_output(data.get("output"))
    reason, raw = stop_reason(data, out)
    return CompletionResponse(
        content="".join(out.text),
        tool_calls=out.calls,
        stop_reason=reason,
        raw_stop_reason=raw,
        usage=parse_usage(data.get("usage")),
        model=str(data.get("model") or ""),
        provider=provider,
        reasoning_content="\n\n".join(out.reasoning),
        parts=out.parts,
        metadata=metadata(data, request_id),
    )


@dataclass(slots=True)
class StreamTranslator:
    """Turns the events of one stream into domain chunks, one event at a time."""

    provider: str
    request_id: str = ""
    model: str = ""
    response_id: str = ""
    #: The whole response from the terminal event; None until it arrives.
    result: dict[str, Any] | None = None
    tools: ToolCallAssembler = field(default_factory=ToolCallAssembler)
    #: output_index -> the tool-call index of a function_call item.
    _tool_of: dict[int, int] = field(default_factory=dict)
    #: Items in their final form, by output_index (from response.output_item.done).
    _items: dict[int, dict[str, Any]] = field(default_factory=dict)
    #: (output_index, summary_index) pairs whose first delta was seen.
    _summaries: set[tuple[int, int]] = field(default_factory=set)
    _announced: bool = False

    @property
    def finished(self) -> bool:
        return self.result is not None

    @property
    def usage_reported(self) -> bool:
        return isinstance((self.result or {}).get("usage"), dict)

    def feed(self, kind: str, data: dict[str, Any]) -> StreamChunk | None:
        chunk = self._translate(kind, data)
        if chunk is not None and not self._announced:
            self._announced = True
            chunk.model, chunk.provider = self.model, self.provider
            chunk.metadata = metadata({"id": self.response_id}, self.request_id)
        return chunk

    def _translate(self, kind: str, data: dict[str, Any]) -> StreamChunk | None:
        if kind in ("response.created", "response.in_progress"):
            response = data.get("response") or {}
            self.model = str(response.get("model") or self.model)
            self.response_id = str(response.get("id") or self.response_id)
        elif kind == "response.output_text.delta" or kind == "response.refusal.delta":
            delta = str(data.get("delta") or "")
            return StreamChunk(content=delta) if delta else None
        elif kind in ("response.reasoning_summary_text.delta", "response.reasoning_text.delta"):
            return self._reasoning_delta(data)
        elif kind == "response.output_item.added":
            item = data.get("item") or {}
            if item.get("type") == "function_call":
                position = self._tool_of.setdefault(_int(data.get("output_index")), len(self._tool_of))
                added = self.tools.add(position, id=portable_call_id(str(item.get("call_id") or "")),
                                       name=str(item.get("name") or ""), arguments=str(item.get("arguments") or ""))
                return StreamChunk(tool_call_deltas=[added])
        elif kind == "response.function_call_arguments.delta":
            index = self._tool_of.get(_int(data.get("output_index")))
            piece = str(data.get("delta") or "")
            if index is not None and piece:
                return StreamChunk(tool_call_deltas=[self.tools.add(index, arguments=piece)])
        elif kind == "response.output_item.done":
            item = data.get("item")
            if isinstance(item, dict):
                self._items[_int(data.get("output_index"))] = item
        elif kind in TERMINAL_EVENTS:
            response = data.get("response")
            self.result = response if isinstance(response, dict) else {}
        # Other events (content_part.*, *.done, built-in tools) repeat what came before.
        return None

    def _reasoning_delta(self, data: dict[str, Any]) -> StreamChunk | None:
        delta = str(data.get("delta") or "")
        if not delta:
            return None
        where = (_int(data.get("output_index")), _int(data.get("summary_index", data.get("content_index"))))
        if where not in self._summaries:
            # A summary after the first of its item starts a paragraph, as in the parts' text.
            if any(seen[0] == where[0] for seen in self._summaries):
                delta = "\n\n" + delta
            self._summaries.add(where)
        return StreamChunk(reasoning_content=delta)

    def final(self) -> StreamChunk:
        result = self.result or {}
        items = result.get("output")
        if not isinstance(items, list) or not items:
            items = [self._items[i] for i in sorted(self._items)]
        out = read_output(items)
        if not out.calls and self.tools:
            out.calls = self.tools.calls()  # items never came whole: the assembled deltas
        reason, raw = stop_reason(result, out)
        return StreamChunk(
            tool_calls=out.calls,
            stop_reason=reason,
            raw_stop_reason=raw,
            is_final=True,
            usage=parse_usage(result.get("usage")),
            model=str(result.get("model") or self.model),
            provider=self.provider,
            parts=out.parts,
            metadata=metadata({"id": result.get("id") or self.response_id}, self.request_id),
        )

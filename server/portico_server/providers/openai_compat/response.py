"""OpenAI JSON as domain answers: Chat Completions responses, and the chunks of a
streamed answer (plain functions, so the LiteLLM bridge reads its answers with them).

Reasoning becomes parts of source "openai": the `reasoning_content` / `reasoning` text
as one part, or, where the server sends `reasoning_details` (OpenRouter), one part per
entry: its readable text in `text`, its signature in `signature`, and the entry itself as
compact JSON in `redacted`, which `request` sends back unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from ...domain import (
    CompletionResponse,
    ContentPart,
    ReasoningPart,
    StopReason,
    StreamChunk,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from ...errors import UpstreamProtocol
from ..call_ids import portable_call_id
from ..streaming import ToolCallAssembler
from .errors import Scrub, error_from_payload


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def parse_usage(raw: Any) -> Usage | None:
    """OpenAI's usage object, with the cache and reasoning details vendors add."""
    if not isinstance(raw, dict):
        return None
    prompt_details = raw.get("prompt_tokens_details") or {}
    completion_details = raw.get("completion_tokens_details") or {}
    # OpenAI's field where present; DeepSeek's own name otherwise.
    cached = (_int(prompt_details.get("cached_tokens")) if "cached_tokens" in prompt_details
              else _int(raw.get("prompt_cache_hit_tokens")))
    return Usage(
        prompt_tokens=_int(raw.get("prompt_tokens")),
        completion_tokens=_int(raw.get("completion_tokens")),
        total_tokens=_int(raw.get("total_tokens")),
        cache_read_tokens=cached,
        cache_creation_tokens=_int(prompt_details.get("cache_write_tokens")),  # OpenRouter
        reasoning_tokens=_int(completion_details.get("reasoning_tokens")),
    )


_FINISH: dict[str, StopReason] = {
    "stop": StopReason.END_TURN,
    "eos": StopReason.END_TURN,
    "end_turn": StopReason.END_TURN,
    "length": StopReason.MAX_TOKENS,
    "model_length": StopReason.MAX_TOKENS,
    "max_tokens": StopReason.MAX_TOKENS,
    "tool_calls": StopReason.TOOL_CALLS,
    "function_call": StopReason.TOOL_CALLS,
    "tool_use": StopReason.TOOL_CALLS,
    "stop_sequence": StopReason.STOP_SEQUENCE,
    "content_filter": StopReason.CONTENT_FILTER,
    "refusal": StopReason.REFUSAL,
}


def stop_reason(raw: str, *, tool_calls: bool, stop_matched: bool = False, refused: bool = False) -> StopReason:
    """Map a finish_reason. Some servers say "stop" after tool calls: the caller still
    has calls to run, so that is TOOL_CALLS."""
    if refused:
        return StopReason.REFUSAL
    if not raw:
        return StopReason.TOOL_CALLS if tool_calls else StopReason.UNSPECIFIED
    reason = _FINISH.get(raw, StopReason.OTHER)
    if reason is StopReason.END_TURN:
        if tool_calls:
            return StopReason.TOOL_CALLS
        if stop_matched:
            return StopReason.STOP_SEQUENCE
    return reason


def split_content(value: Any) -> tuple[str, str]:
    """(text, reasoning) of a message's `content`: a string, or a list of typed parts
    (Mistral's reasoning models send `thinking` parts beside `text` parts)."""
    if isinstance(value, str):
        return value, ""
    if not isinstance(value, list):
        return "", ""
    text: list[str] = []
    reasoning: list[str] = []
    for part in value:
        if not isinstance(part, dict):
            continue
        if part.get("type") == "thinking":
            inner = part.get("thinking")
            if isinstance(inner, str):
                reasoning.append(inner)
            elif isinstance(inner, list):
                reasoning.extend(str(p.get("text", "")) for p in inner if isinstance(p, dict))
        elif isinstance(part.get("text"), str):
            text.append(part["text"])
    return "".join(text), "".join(reasoning)


def _reasoning(container: Mapping[str, Any]) -> str:
    # DeepSeek, GLM, Qwen and llama.cpp say `reasoning_content`; OpenRouter, Groq,
    # Cerebras and newer vLLM say `reasoning`. One of them, never both concatenated.
    for key in ("reasoning_content", "reasoning"):
        value = container.get(key)
        if isinstance(value, str) and value:
            return value
    return ""


_SOURCE = "openai"  # `request.REASONING_SOURCE`
#: The fields of a streamed `reasoning_details` entry whose pieces add up.
_DETAIL_PIECES = ("text", "summary", "data", "signature")


def _detail_part(detail: Mapping[str, Any]) -> ContentPart:
    text = detail.get("text") if isinstance(detail.get("text"), str) else detail.get("summary")
    signature = detail.get("signature")
    return ContentPart(reasoning=ReasoningPart(
        text=text if isinstance(text, str) else "",
        signature=signature if isinstance(signature, str) else "",
        redacted=json.dumps(detail, ensure_ascii=False, separators=(",", ":")),
        source=_SOURCE,
    ))


def answer_parts(text: str, reasoning: str, details: Any) -> list[ContentPart]:
    """The answer's parts: its reasoning (the details where the server sent them, else
    the text), then its text."""
    parts: list[ContentPart] = []
    entries = [d for d in details if isinstance(d, dict)] if isinstance(details, list) else []
    if entries:
        parts.extend(_detail_part(d) for d in entries)
    elif reasoning:
        parts.append(ContentPart(reasoning=ReasoningPart(text=reasoning, source=_SOURCE)))
    if text:
        parts.append(ContentPart(text=text))
    return parts


def response_metadata(data: Mapping[str, Any]) -> dict[str, str]:
    """The extras of a response (or stream chunk) a caller may want: id, fingerprint..."""
    metadata: dict[str, str] = {}
    for key in ("id", "system_fingerprint", "service_tier"):
        if isinstance(data.get(key), str) and data[key]:
            metadata[key] = data[key]
    if isinstance(data.get("citations"), list):  # Perplexity's sources
        metadata["citations"] = json.dumps(data["citations"], ensure_ascii=False)
    return metadata


def _arguments(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _stop_matched(choice: Mapping[str, Any]) -> bool:
    # vLLM names the stop string it hit in `stop_reason` (an int is a stop token id).
    return isinstance(choice.get("stop_reason"), str)


def parse_completion(data: Any, *, provider: str, model: str, scrub: Scrub | None = None) -> CompletionResponse:
    """A Chat Completions response body as a domain response."""
    if not isinstance(data, dict):
        raise UpstreamProtocol(f"provider {provider!r} answered with JSON that is not an object", provider=provider)
    if data.get("error"):
        raise error_from_payload(data["error"], provider, scrub)
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise UpstreamProtocol(f"provider {provider!r} answered without choices", provider=provider)
    choice = choices[0]
    message = choice.get("message") or {}
    text, reasoning = split_content(message.get("content"))
    reasoning = _reasoning(message) or reasoning
    refusal = message.get("refusal")
    refused = isinstance(refusal, str) and bool(refusal)
    if refused and not text:
        text = str(refusal)
    calls: list[ToolCall] = []
    for i, call in enumerate(message.get("tool_calls") or []):
        fn = call.get("function") or {}
        calls.append(ToolCall(id=portable_call_id(str(call.get("id") or "")) or f"call_{i}",
                              name=str(fn.get("name") or ""),
                              arguments=_arguments(fn.get("arguments")) or "{}"))
    legacy = message.get("function_call")
    if isinstance(legacy, dict) and not calls:
        calls.append(ToolCall(id="call_0", name=str(legacy.get("name") or ""),
                              arguments=_arguments(legacy.get("arguments")) or "{}"))
    raw = str(choice.get("finish_reason") or "")
    return CompletionResponse(
        content=text,
        tool_calls=calls,
        stop_reason=stop_reason(raw, tool_calls=bool(calls), stop_matched=_stop_matched(choice), refused=refused),
        raw_stop_reason=raw,
        usage=parse_usage(data.get("usage")) or Usage(),
        model=str(data.get("model") or model),
        provider=provider,
        reasoning_content=reasoning,
        parts=answer_parts(text, reasoning, message.get("reasoning_details")),
        metadata=response_metadata(data),
    )


class ChunkReader:
    """Turns the `chat.completion.chunk` objects of one stream into domain chunks.

    `feed` each decoded chunk (it returns the delta to emit, or None), then `finish` for
    the final chunk. Usage is the last one reported (never summed: Groq and OpenRouter
    send it twice); finish_reason is the last non-null one.
    """

    def __init__(self, provider: str, model: str, scrub: Scrub | None = None) -> None:
        self.provider = provider
        self.model = model
        self._scrub = scrub
        self.tools = ToolCallAssembler()
        self.usage: Usage | None = None
        self.finish_reason = ""
        self.stop_matched = False
        self.refused = False
        self._announced = False
        # Upstream tool-call index -> our position, and what we know of each position.
        self._by_index: dict[int, int] = {}
        self._by_id: dict[str, int] = {}
        self._ids: dict[int, str] = {}
        self._named: set[int] = set()
        self._last: int | None = None
        self._next = 0
        # What the final chunk's parts and metadata are made of.
        self._text: list[str] = []
        self._reasoning: list[str] = []
        self._details: dict[int, dict[str, Any]] = {}
        self.metadata: dict[str, str] = {}

    def _position(self, call: Mapping[str, Any]) -> int:
        """Our 0-based position for an upstream tool-call fragment."""
        raw = call.get("index")
        call_id = str(call.get("id") or "")
        pos: int | None
        if isinstance(raw, int):
            pos = self._by_index.get(raw)
            # Some servers number every call 0; a new id at a known index is a new call.
            if pos is not None and call_id and self._ids.get(pos, call_id) != call_id:
                pos = None
        elif call_id:
            pos = self._by_id.get(call_id)
        else:
            pos = self._last
        if pos is None:
            pos = self._next
            self._next += 1
        if isinstance(raw, int):
            self._by_index[raw] = pos
        if call_id and pos not in self._ids:
            self._ids[pos] = call_id
            self._by_id[call_id] = pos
        self._last = pos
        return pos

    def _tool_deltas(self, calls: Any) -> list[ToolCallDelta]:
        deltas: list[ToolCallDelta] = []
        if not isinstance(calls, list):
            return deltas
        for call in calls:
            if not isinstance(call, dict):
                continue
            pos = self._position(call)
            fn = call.get("function") or {}
            name = str(fn.get("name") or "")
            call_id = str(call.get("id") or "")
            arguments = _arguments(fn.get("arguments"))
            first = pos not in self._named
            if name:
                self._named.add(pos)
            # id and name go out on the call's first fragment only, even when the server repeats them.
            delta = self.tools.add(pos, id=portable_call_id(call_id) if first else "", name=name if first else "",
                                   arguments=arguments)
            if delta.id or delta.name or delta.arguments_delta:
                deltas.append(delta)
        return deltas

    def feed(self, data: Any) -> StreamChunk | None:
        if not isinstance(data, dict):
            raise UpstreamProtocol(f"provider {self.provider!r} sent a stream event that is not an object",
                                   provider=self.provider)
        if data.get("error"):
            raise error_from_payload(data["error"], self.provider, self._scrub)
        if isinstance(data.get("model"), str) and data["model"]:
            self.model = data["model"]
        self.metadata.update(response_metadata(data))
        usage = parse_usage(data.get("usage")) or parse_usage((data.get("x_groq") or {}).get("usage"))
        if usage is not None:
            self.usage = usage
        text: list[str] = []
        reasoning: list[str] = []
        deltas: list[ToolCallDelta] = []
        for choice in data.get("choices") or []:
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or choice.get("message") or {}
            content, thinking = split_content(delta.get("content"))
            reasoning.append(_reasoning(delta) or thinking)
            self._take_details(delta.get("reasoning_details"))
            refusal = delta.get("refusal")
            if isinstance(refusal, str) and refusal:
                self.refused = True
                content += refusal
            text.append(content)
            deltas.extend(self._tool_deltas(delta.get("tool_calls")))
            if choice.get("finish_reason"):
                self.finish_reason = str(choice["finish_reason"])
            if _stop_matched(choice):
                self.stop_matched = True
        chunk = StreamChunk(content="".join(text), reasoning_content="".join(reasoning), tool_call_deltas=deltas)
        self._text.append(chunk.content)
        self._reasoning.append(chunk.reasoning_content)
        if not (chunk.content or chunk.reasoning_content or chunk.tool_call_deltas):
            return None
        if not self._announced:
            self._announced = True
            chunk.model, chunk.provider, chunk.metadata = self.model, self.provider, dict(self.metadata)
        return chunk

    def _take_details(self, details: Any) -> None:
        """Add streamed `reasoning_details` pieces to the entries they continue (by index)."""
        if not isinstance(details, list):
            return
        for piece in details:
            if not isinstance(piece, dict):
                continue
            index = piece.get("index")
            key = index if isinstance(index, int) else len(self._details)
            entry = self._details.setdefault(key, {})
            for name, value in piece.items():
                if name in _DETAIL_PIECES and isinstance(value, str) and isinstance(entry.get(name), str):
                    entry[name] += value
                elif name not in entry or entry[name] is None:
                    entry[name] = value

    def finish(self) -> StreamChunk:
        calls = self.tools.calls()
        details = [entry for _, entry in sorted(self._details.items())]
        return StreamChunk(
            parts=answer_parts("".join(self._text), "".join(self._reasoning), details),
            metadata=dict(self.metadata),
            is_final=True,
            stop_reason=stop_reason(self.finish_reason, tool_calls=bool(calls),
                                    stop_matched=self.stop_matched, refused=self.refused),
            raw_stop_reason=self.finish_reason,
            usage=self.usage,
            tool_calls=calls,
            model=self.model,
            provider=self.provider,
        )


def chunks_from_completion(response: CompletionResponse) -> Iterator[StreamChunk]:
    """A whole answer as a stream, for servers that ignore `stream: true`."""
    deltas = [ToolCallDelta(index=i, id=c.id, name=c.name, arguments_delta=c.arguments)
              for i, c in enumerate(response.tool_calls)]
    if response.content or response.reasoning_content or deltas:
        yield StreamChunk(content=response.content, reasoning_content=response.reasoning_content,
                          tool_call_deltas=deltas, model=response.model, provider=response.provider,
                          metadata=dict(response.metadata))
    yield StreamChunk(is_final=True, stop_reason=response.stop_reason, raw_stop_reason=response.raw_stop_reason,
                      usage=response.usage, tool_calls=response.tool_calls, model=response.model,
                      provider=response.provider, parts=response.parts, metadata=response.metadata)

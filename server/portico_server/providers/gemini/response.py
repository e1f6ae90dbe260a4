"""Gemini's `GenerateContentResponse` (one answer, or one per stream event) -> Portico's
completion and stream chunks.

The answer's `parts` keep what Gemini needs back on the next turn: thought parts become
reasoning parts, and a `thoughtSignature` on a text or function-call part becomes a
signature-only reasoning part just before that text (or where the call was), so
`request` can put every signature back on the part it came on.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ...domain import CompletionResponse, ContentPart, ReasoningPart, StopReason, StreamChunk, Usage
from ..call_ids import synthesized_call_id
from ..streaming import ToolCallAssembler

#: The `source` of the reasoning parts this dialect returns and takes back.
REASONING_SOURCE = "gemini"

_FINISH: dict[str, StopReason] = {
    "STOP": StopReason.END_TURN,
    "MAX_TOKENS": StopReason.MAX_TOKENS,
    "SAFETY": StopReason.CONTENT_FILTER,
    "RECITATION": StopReason.CONTENT_FILTER,
    "BLOCKLIST": StopReason.CONTENT_FILTER,
    "PROHIBITED_CONTENT": StopReason.CONTENT_FILTER,
    "SPII": StopReason.CONTENT_FILTER,
    "IMAGE_SAFETY": StopReason.CONTENT_FILTER,
}


class Turn:
    """Accumulates one model turn from a `GenerateContentResponse` or a stream of them."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.parts: list[ContentPart] = []
        # Which last part a piece of the same kind may extend: "text", "thought" or None
        # (a signed part is never extended: its signature covers what it held).
        self._open: str | None = None
        self._announced = False
        self.content: list[str] = []
        self.reasoning: list[str] = []
        self.calls = ToolCallAssembler()
        self.call_count = 0
        self.raw_stop = ""
        self.finished = False
        self.usage = Usage()
        self.response_id = ""

    def stop_reason(self) -> StopReason:
        if self.raw_stop == "STOP" and self.calls:
            # Gemini says STOP even when the turn is function calls.
            return StopReason.TOOL_CALLS
        return _FINISH.get(self.raw_stop, StopReason.OTHER)

    def feed(self, data: Mapping[str, Any]) -> list[StreamChunk]:
        """Take in one response (or stream event); return the deltas it adds."""
        self.model = str(data.get("modelVersion") or self.model)
        self.response_id = str(data.get("responseId") or self.response_id)
        usage = data.get("usageMetadata")
        if isinstance(usage, dict):
            self.usage = _usage(usage)  # cumulative: the last one is the total
        candidates = data.get("candidates")
        if not candidates:
            feedback = data.get("promptFeedback")
            block = feedback.get("blockReason") if isinstance(feedback, dict) else None
            if block:
                # The prompt itself was blocked: no candidate at all.
                self.raw_stop = str(block)
                self.finished = True
            return []
        candidate = candidates[0] if isinstance(candidates[0], dict) else {}
        out: list[StreamChunk] = []
        content = candidate.get("content")
        parts = content.get("parts") if isinstance(content, dict) else None
        for part in parts or []:
            if isinstance(part, dict):
                delta = self._part(part)
                if delta is not None:
                    out.append(delta)
        if out and not self._announced:
            self._announced = True
            out[0].metadata = self.metadata()
        finish = candidate.get("finishReason")
        if finish:
            self.raw_stop = str(finish)
            self.finished = True
        return out

    def completion(self, provider: str) -> CompletionResponse:
        """The whole turn, as a non-streaming answer."""
        return CompletionResponse(
            content="".join(self.content),
            tool_calls=self.calls.calls(),
            stop_reason=self.stop_reason(),
            raw_stop_reason=self.raw_stop,
            usage=self.usage,
            model=self.model,
            provider=provider,
            reasoning_content="".join(self.reasoning),
            parts=self.parts,
            metadata=self.metadata(),
        )

    def metadata(self) -> dict[str, str]:
        return {"response_id": self.response_id} if self.response_id else {}

    def final_chunk(self, provider: str) -> StreamChunk:
        """The stream's last chunk: the assembled calls, the stop reason and the usage."""
        return StreamChunk(
            tool_calls=self.calls.calls(),
            stop_reason=self.stop_reason(),
            raw_stop_reason=self.raw_stop,
            is_final=True,
            usage=self.usage,
            model=self.model,
            provider=provider,
            parts=self.parts,
            metadata=self.metadata(),
        )

    def _part(self, part: Mapping[str, Any]) -> StreamChunk | None:
        raw_signature = part.get("thoughtSignature")
        signature = raw_signature if isinstance(raw_signature, str) else ""
        call = part.get("functionCall")
        if isinstance(call, dict):
            self._sign(signature)
            self._open = None
            return self._function_call(call)
        text = part.get("text")
        if not isinstance(text, str):
            self._sign(signature)
            return None
        if part.get("thought") is True:
            self._keep("thought", text, signature)
            if not text:
                return None
            self.reasoning.append(text)
            return StreamChunk(reasoning_content=text)
        self._sign(signature)
        self._keep("text", text, signature)
        if not text:
            return None  # e.g. the empty text part that only carries a thoughtSignature
        self.content.append(text)
        return StreamChunk(content=text)

    def _sign(self, signature: str) -> None:
        """A signature-only part, placed before the content that carried the signature."""
        if signature:
            self.parts.append(ContentPart(reasoning=ReasoningPart(signature=signature, source=REASONING_SOURCE)))
            self._open = None

    def _keep(self, kind: str, text: str, signature: str) -> None:
        """Add a text or thought piece to the answer's parts, extending the last part of
        the same kind unless either is signed."""
        if not text and not signature:
            return
        last = self.parts[-1] if self.parts else None
        if not signature and self._open == kind and last is not None:
            if last.reasoning is not None:
                last.reasoning.text += text
            else:
                last.text = (last.text or "") + text
            return
        if kind == "thought":
            self.parts.append(ContentPart(reasoning=ReasoningPart(text=text, signature=signature,
                                                                  source=REASONING_SOURCE)))
        elif text or signature:
            self.parts.append(ContentPart(text=text))
        self._open = None if signature else kind

    def _function_call(self, call: Mapping[str, Any]) -> StreamChunk:
        index = self.call_count
        self.call_count += 1
        name = str(call.get("name") or "")
        args = call.get("args")
        arguments = json.dumps(args if isinstance(args, dict) else {}, ensure_ascii=False, separators=(",", ":"))
        call_id = synthesized_call_id(self.response_id, index, str(call.get("id") or ""), name, arguments)
        delta = self.calls.add(index, id=call_id, name=name, arguments=arguments)
        return StreamChunk(tool_call_deltas=[delta])


def _usage(meta: Mapping[str, Any]) -> Usage:
    prompt = int_or_zero(meta.get("promptTokenCount"))
    candidates = int_or_zero(meta.get("candidatesTokenCount"))
    thoughts = int_or_zero(meta.get("thoughtsTokenCount"))
    completion = candidates + thoughts  # Portico counts reasoning as completion
    total = int_or_zero(meta.get("totalTokenCount")) or prompt + completion
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=total,
        cache_read_tokens=int_or_zero(meta.get("cachedContentTokenCount")),
        reasoning_tokens=thoughts,
    )


def int_or_zero(value: Any) -> int:
    """A count from protobuf JSON, which leaves zeros out; anything not an int counts as 0."""
    return value if isinstance(value, int) and not isinstance(value, bool) else 0

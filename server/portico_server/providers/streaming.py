"""Pieces every streaming adapter needs: tool-call assembly from indexed fragments."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..domain import ToolCall, ToolCallDelta


@dataclass(slots=True)
class _Partial:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)


class ToolCallAssembler:
    """Collects tool-call fragments keyed by their index and assembles complete calls.

    Providers send the id and name on the first fragment of a call and pieces of the
    arguments' JSON text after (OpenAI, Anthropic), or a whole call at once (Groq,
    Gemini, Ollama); both feed `add`. Calls come out ordered by index.
    """

    def __init__(self) -> None:
        self._calls: dict[int, _Partial] = {}

    def add(self, index: int, *, id: str = "", name: str = "", arguments: str = "") -> ToolCallDelta:
        """Record one fragment and return the delta to stream to the caller."""
        partial = self._calls.get(index)
        if partial is None:
            partial = self._calls[index] = _Partial()
        if id and not partial.id:
            partial.id = id
        if name and not partial.name:
            partial.name = name
        if arguments:
            partial.arguments.append(arguments)
        return ToolCallDelta(index=index, id=id, name=name, arguments_delta=arguments)

    def __bool__(self) -> bool:
        return bool(self._calls)

    def calls(self) -> list[ToolCall]:
        """The complete calls, by index. A call without an id gets `call_<index>`."""
        return [
            ToolCall(id=p.id or f"call_{i}", name=p.name, arguments="".join(p.arguments) or "{}")
            for i, p in sorted(self._calls.items())
        ]

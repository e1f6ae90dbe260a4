"""Reasoning controls as Gemini's `thinkingConfig`, per model family.

Gemini 3 takes a `thinkingLevel` (Pro: low and high; Flash: minimal to high) and still
accepts a `thinkingBudget`; Gemini 2.5 takes only a `thinkingBudget`, in a range per
model; Gemini 2.0, 1.5 and Gemma do not think. The two fields may not be sent together.
"""

from __future__ import annotations

import re
from typing import Any

from ...domain import ReasoningConfig, ReasoningEffort
from ...errors import InvalidRequest
from ..reasoning_controls import budget_for, reasoning_unsupported

_BARE = re.compile(r"^(?:.*/)?(?:models/)?")
#: Models that do not think: thinkingConfig is refused there.
_NO_THINKING = ("gemini-1.", "gemini-2.0", "gemma-")
#: Gemini 2.5 budget ranges by name prefix (longest first), as Google documents them.
_BUDGET_RANGES: tuple[tuple[str, int, int], ...] = (
    ("gemini-2.5-flash-lite", 512, 24_576),
    ("gemini-2.5-flash", 1, 24_576),
    ("gemini-2.5-pro", 128, 32_768),
)
#: The levels each Gemini 3 model takes; an effort it lacks goes up to the next it has.
_PRO_LEVELS = ("low", "high")
_FLASH_LEVELS = ("low", "medium", "high")


def _bare(model: str) -> str:
    return _BARE.sub("", model).lower()


def _level(effort: ReasoningEffort, model: str) -> str:
    levels = _PRO_LEVELS if "-pro" in model else _FLASH_LEVELS
    order = [e.value for e in ReasoningEffort]
    for value in order[order.index(effort.value):]:
        if value in levels:
            return value
    return levels[-1]


def thinking_config(reasoning: ReasoningConfig, model: str, provider: str) -> dict[str, Any]:
    """The `thinkingConfig` fields for `reasoning` on `model` (without includeThoughts)."""
    bare = _bare(model)
    if bare.startswith(_NO_THINKING):
        raise reasoning_unsupported(provider, model, "it does not think (Gemini 2.5 and later do)")
    if bare.startswith("gemini-3") and reasoning.effort is not None:
        return {"thinkingLevel": _level(reasoning.effort, bare)}
    budget = budget_for(reasoning)
    for prefix, low, high in _BUDGET_RANGES:
        if bare.startswith(prefix):
            if reasoning.budget_tokens is not None and not low <= budget <= high:
                raise InvalidRequest([("reasoning.budget_tokens", f"must be between {low} and {high} for {prefix}")])
            budget = max(low, min(budget, high))
            break
    return {"thinkingBudget": budget}

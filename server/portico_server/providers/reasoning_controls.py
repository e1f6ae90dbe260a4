"""The one translation between a request's reasoning controls (effort, token budget) and
the two kinds of knob providers have: a token budget (Anthropic, Gemini 2.5, Qwen,
OpenRouter) or an effort level (OpenAI, Gemini 3, Ollama's gpt-oss).

Every dialect uses the same table, so an effort costs about the same wherever it goes.
"""

from __future__ import annotations

from ..domain import ReasoningConfig, ReasoningEffort
from ..errors import ModelFeatureUnsupported

#: The token budget an effort stands for where the provider wants a budget. LOW is the
#: smallest budget Anthropic and Gemini 2.5 Flash-Lite accept (1,024 and 512); HIGH is
#: the largest Gemini 2.5 Flash accepts.
EFFORT_BUDGETS: dict[ReasoningEffort, int] = {
    ReasoningEffort.LOW: 1_024,
    ReasoningEffort.MEDIUM: 8_192,
    ReasoningEffort.HIGH: 24_576,
}
#: Budgets up to this are LOW, up to the next MEDIUM, above HIGH (geometric midpoints of
#: the table above, so a budget maps to the effort whose budget is nearest).
_LOW_UPTO = 2_896
_MEDIUM_UPTO = 14_188


def budget_for(config: ReasoningConfig) -> int:
    """The token budget: the one asked for, else the one the effort stands for."""
    if config.budget_tokens is not None:
        return config.budget_tokens
    return EFFORT_BUDGETS[config.effort or ReasoningEffort.MEDIUM]


def effort_for(config: ReasoningConfig) -> ReasoningEffort:
    """The effort: the one asked for, else the one nearest the budget."""
    if config.effort is not None:
        return config.effort
    budget = config.budget_tokens or EFFORT_BUDGETS[ReasoningEffort.MEDIUM]
    if budget <= _LOW_UPTO:
        return ReasoningEffort.LOW
    if budget <= _MEDIUM_UPTO:
        return ReasoningEffort.MEDIUM
    return ReasoningEffort.HIGH


def reasoning_unsupported(provider: str, model: str, why: str = "") -> ModelFeatureUnsupported:
    """FAILED_PRECONDITION for reasoning controls the provider or model cannot honour:
    sent on, they would be refused upstream with a less useful 400 (or silently dropped)."""
    detail = f": {why}" if why else ""
    return ModelFeatureUnsupported(
        f"provider {provider!r} cannot apply reasoning controls to model {model!r}{detail}; "
        "leave `reasoning` unset for this model",
        provider=provider,
        metadata={"capability": "reasoning", "model": model},
    )

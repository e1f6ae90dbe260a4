"""The built-in table of Claude models, and the capabilities Portico reports from it."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ...domain import Capabilities, Source

#: The output limit assumed for a model the table does not know.
UNKNOWN_MODEL_MAX_OUTPUT = 8_192


@dataclass(frozen=True, slots=True)
class ModelFacts:
    context_window: int
    max_output_tokens: int
    vision: bool = True
    #: Takes extended thinking (`thinking.budget_tokens`): Claude 3.7 Sonnet and later.
    thinking: bool = True


#: By family name: a model id without its date snapshot or `-latest`. Every Claude model
#: since Claude 3 takes tools.
KNOWN_MODELS: dict[str, ModelFacts] = {
    "claude-opus-4-5": ModelFacts(200_000, 64_000),
    "claude-sonnet-4-5": ModelFacts(200_000, 64_000),
    "claude-haiku-4-5": ModelFacts(200_000, 64_000),
    "claude-opus-4-1": ModelFacts(200_000, 32_000),
    "claude-opus-4": ModelFacts(200_000, 32_000),
    "claude-sonnet-4": ModelFacts(200_000, 64_000),
    "claude-3-7-sonnet": ModelFacts(200_000, 64_000),
    "claude-3-5-sonnet": ModelFacts(200_000, 8_192, thinking=False),
    # Launched text-only.
    "claude-3-5-haiku": ModelFacts(200_000, 8_192, vision=False, thinking=False),
    "claude-3-opus": ModelFacts(200_000, 4_096, thinking=False),
    "claude-3-sonnet": ModelFacts(200_000, 4_096, thinking=False),
    "claude-3-haiku": ModelFacts(200_000, 4_096, thinking=False),
}

_SNAPSHOT = re.compile(r"-(\d{8}|latest)$")


def model_facts(model: str) -> ModelFacts | None:
    """The table's entry for a model id, snapshot (`-20250514`), `-latest` or `-0` alias."""
    family = _SNAPSHOT.sub("", model.strip().lower())
    facts = KNOWN_MODELS.get(family)
    if facts is None and family.endswith("-0"):
        facts = KNOWN_MODELS.get(family[:-2])  # `claude-sonnet-4-0` names `claude-sonnet-4`
    return facts


def capabilities(model: str, facts: ModelFacts | None, source: Source) -> Capabilities:
    """What a Claude model can do; limits of 0 mean unknown (a model not in the table)."""
    return Capabilities(
        model=model,
        context_window=facts.context_window if facts else 0,
        max_output_tokens=facts.max_output_tokens if facts else 0,
        supports_tools=True,
        supports_streaming=True,
        supports_embeddings=False,
        supports_vision=facts.vision if facts else True,
        supports_response_format=True,
        source=source,
    )

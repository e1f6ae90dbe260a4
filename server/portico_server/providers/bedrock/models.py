"""The built-in table of Bedrock models: limits, what each takes, and how its family
switches reasoning on (Converse passes that in `additionalModelRequestFields`)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ...domain import Capabilities, Source
from ..anthropic.models import model_facts as claude_facts

#: Cross-region inference profiles prefix a model id with a geography (`us.`, `eu.`, ...).
_PROFILE_PREFIX = re.compile(r"^(us|eu|apac|global|us-gov|jp|au|ca)\.")
#: `anthropic.claude-sonnet-4-20250514-v1:0` -> `claude-sonnet-4-20250514`.
_VERSION_SUFFIX = re.compile(r"(-v\d+)?(:\d+)?$")


@dataclass(frozen=True, slots=True)
class ModelFacts:
    context_window: int
    max_output_tokens: int
    vision: bool = False
    tools: bool = True
    documents: bool = False
    #: How the family's reasoning is switched on: "claude" (thinking budget), "nova"
    #: (reasoningConfig effort), "gpt-oss" (reasoning_effort), "always" (reasons
    #: unasked; the controls are ignored), or "" (no reasoning).
    reasoning: str = ""
    #: Whether the CountTokens API counts for it.
    count_tokens: bool = False


#: By model id without its geography prefix and `-vN:M` suffix.
_KNOWN: dict[str, ModelFacts] = {
    "amazon.nova-premier": ModelFacts(1_000_000, 32_000, vision=True, documents=True),
    "amazon.nova-pro": ModelFacts(300_000, 10_000, vision=True, documents=True),
    "amazon.nova-lite": ModelFacts(300_000, 10_000, vision=True, documents=True),
    "amazon.nova-micro": ModelFacts(128_000, 10_000),
    "amazon.nova-2-lite": ModelFacts(1_000_000, 65_535, vision=True, documents=True, reasoning="nova"),
    "meta.llama3-3-70b-instruct": ModelFacts(128_000, 8_192),
    "meta.llama3-1-70b-instruct": ModelFacts(128_000, 8_192),
    "meta.llama3-1-8b-instruct": ModelFacts(128_000, 8_192),
    "mistral.mistral-large-2407": ModelFacts(128_000, 8_192),
    "cohere.command-r-plus": ModelFacts(128_000, 4_096),
    "cohere.command-r": ModelFacts(128_000, 4_096),
    "deepseek.r1": ModelFacts(128_000, 32_768, tools=False, reasoning="always"),
    "openai.gpt-oss-120b-1": ModelFacts(128_000, 128_000, reasoning="gpt-oss"),
    "openai.gpt-oss-20b-1": ModelFacts(128_000, 128_000, reasoning="gpt-oss"),
}

#: Embedding models Embed knows how to call through InvokeModel, by family.
EMBEDDING_FAMILIES = {
    "amazon.titan-embed-text-v2": "titan-v2",
    "amazon.titan-embed-text-v1": "titan-v1",
    "amazon.titan-embed-g1-text-02": "titan-v1",
    "cohere.embed-english-v3": "cohere-v3",
    "cohere.embed-multilingual-v3": "cohere-v3",
    "cohere.embed-v4": "cohere-v4",
}
_EMBEDDING_CONTEXT = {"titan-v2": 8_192, "titan-v1": 8_192, "cohere-v3": 512, "cohere-v4": 128_000}

#: Claude families that take extended thinking (3.7 and every Claude 4).
_THINKING_CLAUDE = re.compile(r"^claude-(3-7-sonnet|(opus|sonnet|haiku)-4)")


def base_id(model: str) -> str:
    """The model id without a geography prefix or version suffix; ARNs are left as they are."""
    return _VERSION_SUFFIX.sub("", _PROFILE_PREFIX.sub("", model.strip().lower()))


def foundation_id(model: str) -> str:
    """The model id without a cross-region inference profile's geography prefix."""
    return _PROFILE_PREFIX.sub("", model.strip())


def embedding_family(model: str) -> str:
    """"titan-v2", "titan-v1", "cohere-v3", "cohere-v4", or "" for a model Embed cannot call."""
    family = foundation_id(model).lower()
    for prefix, kind in EMBEDDING_FAMILIES.items():
        if family.startswith(prefix):
            return kind
    return ""


def model_facts(model: str) -> ModelFacts | None:
    family = base_id(model)
    if family.startswith("anthropic.claude"):
        claude = family.removeprefix("anthropic.")
        facts = claude_facts(claude)
        if facts is None:
            return None
        return ModelFacts(facts.context_window, facts.max_output_tokens, vision=facts.vision, documents=True,
                          reasoning="claude" if _THINKING_CLAUDE.match(claude) else "",
                          count_tokens=True)
    return _KNOWN.get(family)


def reasoning_style(model: str) -> str:
    """How `model` switches reasoning on (see `ModelFacts.reasoning`); Claude models the
    table does not know yet are assumed to think like the newest ones."""
    facts = model_facts(model)
    if facts is not None:
        return facts.reasoning
    family = base_id(model)
    if family.startswith("anthropic.claude"):
        return "claude"
    return ""


def capabilities(model: str, source: Source) -> Capabilities:
    """What a Bedrock model can do; limits of 0 mean unknown."""
    embed = embedding_family(model)
    if embed:
        return Capabilities(model=model, context_window=_EMBEDDING_CONTEXT[embed], supports_tools=False,
                            supports_streaming=False, supports_embeddings=True, source=source)
    facts = model_facts(model)
    return Capabilities(
        model=model,
        context_window=facts.context_window if facts else 0,
        max_output_tokens=facts.max_output_tokens if facts else 0,
        supports_tools=facts.tools if facts else True,
        supports_streaming=True,
        supports_embeddings=False,
        supports_vision=facts.vision if facts else False,
        supports_response_format=facts.tools if facts else True,
        source=source,
    )

"""The built-in table of known models, and what a GET /models listing adds to it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ...domain import Capabilities, Source


@dataclass(frozen=True, slots=True)
class _Known:
    context: int
    output: int = 0
    tools: bool = True
    vision: bool = False
    schema: bool = False  # JSON Schema structured output
    embeddings: bool = False


def _chat(context: int, output: int = 0, *, vision: bool = False, schema: bool = True,
          tools: bool = True) -> _Known:
    return _Known(context, output, tools=tools, vision=vision, schema=schema)


def _embed(context: int) -> _Known:
    return _Known(context, tools=False, embeddings=True)


#: Figures from the vendors' model pages. A name matches itself and dated or tagged
#: variants of itself (`gpt-4o-2024-08-06`, `llama3.2:3b`); the longest entry wins.
KNOWN_MODELS: dict[str, _Known] = {
    # OpenAI
    "gpt-5": _chat(400_000, 128_000, vision=True),
    "gpt-5-mini": _chat(400_000, 128_000, vision=True),
    "gpt-5-nano": _chat(400_000, 128_000, vision=True),
    "gpt-4.1": _chat(1_047_576, 32_768, vision=True),
    "gpt-4.1-mini": _chat(1_047_576, 32_768, vision=True),
    "gpt-4.1-nano": _chat(1_047_576, 32_768, vision=True),
    "gpt-4o": _chat(128_000, 16_384, vision=True),
    "gpt-4o-mini": _chat(128_000, 16_384, vision=True),
    "gpt-4-turbo": _chat(128_000, 4_096, vision=True, schema=False),
    "gpt-4": _chat(8_192, 8_192, schema=False),
    "gpt-3.5-turbo": _chat(16_385, 4_096, schema=False),
    "o1": _chat(200_000, 100_000, vision=True),
    "o1-mini": _chat(128_000, 65_536, tools=False, schema=False),
    "o3": _chat(200_000, 100_000, vision=True),
    "o3-mini": _chat(200_000, 100_000),
    "o4-mini": _chat(200_000, 100_000, vision=True),
    "gpt-oss-120b": _chat(131_072, 131_072),
    "gpt-oss-20b": _chat(131_072, 131_072),
    "text-embedding-3-small": _embed(8_191),
    "text-embedding-3-large": _embed(8_191),
    "text-embedding-ada-002": _embed(8_191),
    # DeepSeek
    "deepseek-chat": _chat(128_000, 8_192, schema=False),
    "deepseek-reasoner": _chat(128_000, 64_000, schema=False),
    # xAI
    "grok-4": _chat(256_000, vision=True),
    "grok-3": _chat(131_072),
    "grok-3-mini": _chat(131_072),
    # Mistral
    "mistral-large-latest": _chat(131_072),
    "mistral-medium-latest": _chat(131_072, vision=True),
    "mistral-small-latest": _chat(131_072, vision=True),
    "codestral-latest": _chat(256_000),
    "mistral-embed": _embed(8_192),
    # Groq-hosted Llama
    "llama-3.3-70b-versatile": _chat(131_072, 32_768, schema=False),
    "llama-3.1-8b-instant": _chat(131_072, 131_072, schema=False),
    # Z.ai GLM
    "glm-4.6": _chat(200_000, 128_000, schema=False),
    "glm-4.5": _chat(131_072, 98_304, schema=False),
    "glm-4.5-air": _chat(131_072, 98_304, schema=False),
    # Moonshot
    "kimi-k2-0905-preview": _chat(262_144, schema=False),
    "kimi-k2-turbo-preview": _chat(262_144, schema=False),
    "moonshot-v1-8k": _chat(8_192, schema=False),
    "moonshot-v1-32k": _chat(32_768, schema=False),
    "moonshot-v1-128k": _chat(131_072, schema=False),
    # Perplexity (search-grounded, no tool calls)
    "sonar": _chat(128_000, tools=False),
    "sonar-pro": _chat(200_000, tools=False),
    # Common open-weight embedding model served by Ollama and others
    "nomic-embed-text": _embed(8_192),
}


def _lookup(name: str) -> _Known | None:
    if name in KNOWN_MODELS:
        return KNOWN_MODELS[name]
    best = ""
    for key in KNOWN_MODELS:
        if len(key) > len(best) and name.startswith(key) and name[len(key)] in "-:@":
            best = key
    return KNOWN_MODELS[best] if best else None


def known_model(model: str) -> Capabilities | None:
    """What the built-in table knows of `model`; vendor prefixes (`openai/gpt-4o`) are ignored."""
    entry = _lookup(model) or (_lookup(model.rsplit("/", 1)[1]) if "/" in model else None)
    if entry is None:
        return None
    return Capabilities(
        model=model,
        context_window=entry.context,
        max_output_tokens=entry.output,
        supports_tools=entry.tools,
        supports_streaming=not entry.embeddings,
        supports_embeddings=entry.embeddings,
        supports_vision=entry.vision,
        supports_response_format=entry.schema,
        source=Source.BUILT_IN,
    )


def _first_int(entry: Mapping[str, Any], *keys: str) -> int:
    for key in keys:
        value = entry.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return 0


def capabilities_from_listing(model: str, entry: Mapping[str, Any], known: Capabilities | None) -> Capabilities | None:
    """Capabilities from a GET /models entry when it states a context window: vLLM
    (`max_model_len`), OpenRouter and Together (`context_length`), Groq (`context_window`),
    Mistral (`max_context_length`). Figures the listing lacks come from the built-in table."""
    context = _first_int(entry, "max_model_len", "context_length", "context_window", "max_context_length")
    if not context:
        return None
    top = entry.get("top_provider")  # OpenRouter states the output limit there
    output = _first_int(entry, "max_completion_tokens") or (
        _first_int(top, "max_completion_tokens") if isinstance(top, dict) else 0)
    caps = Capabilities(
        model=model,
        context_window=context,
        max_output_tokens=output or (known.max_output_tokens if known else 0),
        supports_tools=known.supports_tools if known else True,
        supports_vision=known.supports_vision if known else False,
        supports_response_format=known.supports_response_format if known else entry.get("owned_by") == "vllm",
        supports_embeddings=known.supports_embeddings if known else False,
        source=Source.PROVIDER,
    )
    params = entry.get("supported_parameters")
    if isinstance(params, list):  # OpenRouter
        caps.supports_tools = "tools" in params
        caps.supports_response_format = "structured_outputs" in params or "response_format" in params
    arch = entry.get("architecture")
    if isinstance(arch, dict) and isinstance(arch.get("input_modalities"), list):
        caps.supports_vision = "image" in arch["input_modalities"]
    flags = entry.get("capabilities")
    if isinstance(flags, dict):  # Mistral
        caps.supports_tools = bool(flags.get("function_calling", caps.supports_tools))
        caps.supports_vision = bool(flags.get("vision", caps.supports_vision))
    caps.supports_streaming = not caps.supports_embeddings
    return caps

"""Presets of the OpenAI-compatible family and the built-in table of known models.

A preset is what differs between vendors that speak the same Chat Completions dialect:
where the API lives, which variable holds the key, default models, and the quirks the
adapter must honour. The provider `kind` is the preset name (kind `groq` is the
OpenAI-compatible adapter with the `groq` preset).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from ..domain import Capabilities, Source

#: How a provider counts tokens, where it has an endpoint for it.
TokenCounter = Literal["none", "openai_responses", "vllm_tokenize"]


@dataclass(frozen=True, slots=True)
class Preset:
    name: str
    #: Base URL including the version segment; empty for `openai_compat` (config gives it).
    base_url: str
    #: Environment variables that hold the key, first set wins; empty for local servers,
    #: which the embedded default never adds on its own.
    env_vars: tuple[str, ...] = ()
    default_model: str = ""
    embedding_model: str = ""
    models: tuple[str, ...] = ()
    #: Whether the server accepts `stream_options: {include_usage: true}`.
    stream_usage: bool = True
    #: Models (by name prefix) that take `max_completion_tokens` instead of `max_tokens`.
    max_completion_tokens_models: tuple[str, ...] = ()
    #: The server validates strictly and answers 422 to fields it does not know, so
    #: optional extras (participant names) are left out.
    strict_fields: bool = False
    #: Mistral calls the seed `random_seed`.
    seed_field: str = "seed"
    #: What `tool_choice: required` is spelled as.
    tool_choice_required: str = "required"
    #: Most inputs one embeddings request may carry.
    embedding_batch_size: int = 256
    #: Ask for base64 vectors (a quarter of the bytes of JSON floats) where supported.
    embedding_base64: bool = False
    #: The server has an embeddings endpoint at all.
    embeddings: bool = True
    token_counter: TokenCounter = "none"
    #: Path probed by the health check; empty: the API has no cheap GET to probe.
    health_path: str = "/models"
    #: Extra request headers every call carries.
    headers: dict[str, str] = field(default_factory=dict)


_OPENAI_REASONING = ("o1", "o3", "o4", "gpt-5")

PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(
            "openai_compat",
            base_url="",
        ),
        Preset(
            "openai",
            base_url="https://api.openai.com/v1",
            env_vars=("OPENAI_API_KEY",),
            default_model="gpt-4o-mini",
            embedding_model="text-embedding-3-small",
            models=("gpt-4o-mini", "gpt-4o", "gpt-4.1", "gpt-4.1-mini", "o4-mini", "gpt-5", "gpt-5-mini"),
            max_completion_tokens_models=_OPENAI_REASONING,
            embedding_batch_size=2048,
            embedding_base64=True,
            token_counter="openai_responses",
        ),
        Preset(
            "groq",
            base_url="https://api.groq.com/openai/v1",
            env_vars=("GROQ_API_KEY",),
            default_model="llama-3.3-70b-versatile",
            models=("llama-3.3-70b-versatile", "llama-3.1-8b-instant", "openai/gpt-oss-120b"),
            embeddings=False,
        ),
        Preset(
            "together",
            base_url="https://api.together.xyz/v1",
            env_vars=("TOGETHER_API_KEY",),
            default_model="meta-llama/Llama-3.3-70B-Instruct-Turbo",
            embedding_model="BAAI/bge-base-en-v1.5",
            models=("meta-llama/Llama-3.3-70B-Instruct-Turbo",),
        ),
        Preset(
            "deepseek",
            base_url="https://api.deepseek.com/v1",
            env_vars=("DEEPSEEK_API_KEY",),
            default_model="deepseek-chat",
            models=("deepseek-chat", "deepseek-reasoner"),
            embeddings=False,
        ),
        Preset(
            "xai",
            base_url="https://api.x.ai/v1",
            env_vars=("XAI_API_KEY",),
            default_model="grok-3-mini",
            models=("grok-3-mini", "grok-3", "grok-4"),
            embeddings=False,
        ),
        Preset(
            "mistral",
            base_url="https://api.mistral.ai/v1",
            env_vars=("MISTRAL_API_KEY",),
            default_model="mistral-small-latest",
            embedding_model="mistral-embed",
            models=("mistral-small-latest", "mistral-medium-latest", "mistral-large-latest"),
            # Mistral's validator answers 422 to fields it does not know, and reports
            # usage on the last chunk without being asked.
            stream_usage=False,
            strict_fields=True,
            seed_field="random_seed",
            tool_choice_required="any",
            embedding_batch_size=128,
        ),
        Preset(
            "openrouter",
            base_url="https://openrouter.ai/api/v1",
            env_vars=("OPENROUTER_API_KEY",),
            default_model="openai/gpt-4o-mini",
            models=("openai/gpt-4o-mini",),
            embeddings=False,
        ),
        Preset(
            "fireworks",
            base_url="https://api.fireworks.ai/inference/v1",
            env_vars=("FIREWORKS_API_KEY",),
            default_model="accounts/fireworks/models/llama-v3p3-70b-instruct",
            embedding_model="nomic-ai/nomic-embed-text-v1.5",
            models=("accounts/fireworks/models/llama-v3p3-70b-instruct",),
        ),
        Preset(
            "cerebras",
            base_url="https://api.cerebras.ai/v1",
            env_vars=("CEREBRAS_API_KEY",),
            default_model="llama3.1-8b",
            models=("llama3.1-8b", "gpt-oss-120b"),
            embeddings=False,
        ),
        Preset(
            "perplexity",
            base_url="https://api.perplexity.ai",
            env_vars=("PERPLEXITY_API_KEY", "PPLX_API_KEY"),
            default_model="sonar",
            models=("sonar", "sonar-pro", "sonar-reasoning"),
            embeddings=False,
            health_path="",  # no model listing to probe
        ),
        Preset(
            "moonshot",
            base_url="https://api.moonshot.ai/v1",
            env_vars=("MOONSHOT_API_KEY",),
            default_model="kimi-k2-0905-preview",
            models=("kimi-k2-0905-preview", "moonshot-v1-8k", "moonshot-v1-32k", "moonshot-v1-128k"),
            embeddings=False,
        ),
        Preset(
            "dashscope",
            base_url="https://dashscope.aliyuncs.com/compatible-mode/v1",
            env_vars=("DASHSCOPE_API_KEY",),
            default_model="qwen-plus",
            embedding_model="text-embedding-v3",
            models=("qwen-plus", "qwen-max", "qwen-turbo"),
            embedding_batch_size=10,
        ),
        Preset(
            # Qwen through Alibaba Cloud Model Studio's international endpoint.
            "qwen",
            base_url="https://dashscope-intl.aliyuncs.com/compatible-mode/v1",
            env_vars=("QWEN_API_KEY",),
            default_model="qwen-plus",
            embedding_model="text-embedding-v3",
            models=("qwen-plus", "qwen-max", "qwen-turbo"),
            embedding_batch_size=10,
        ),
        Preset(
            "zai",
            base_url="https://api.z.ai/api/paas/v4",
            env_vars=("ZAI_API_KEY",),
            default_model="glm-4.6",
            models=("glm-4.6", "glm-4.5", "glm-4.5-air", "glm-4.5-flash"),
            embeddings=False,
        ),
        Preset(
            "huggingface",
            base_url="https://router.huggingface.co/v1",
            env_vars=("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"),
            default_model="meta-llama/Llama-3.1-8B-Instruct",
            models=("meta-llama/Llama-3.1-8B-Instruct",),
            embeddings=False,
        ),
        # Local servers: no key needed, never added from the environment.
        Preset(
            "vllm",
            base_url="http://localhost:8000/v1",
            token_counter="vllm_tokenize",
        ),
        Preset(
            "lmstudio",
            base_url="http://localhost:1234/v1",
        ),
        Preset(
            "llamacpp",
            base_url="http://localhost:8080/v1",
        ),
        Preset(
            "mlx",
            base_url="http://localhost:8080/v1",
            embeddings=False,
        ),
        Preset(
            # Ollama's OpenAI-compatible `/v1` endpoint; the kind `ollama` is its native API.
            "ollama_openai",
            base_url="http://localhost:11434/v1",
            default_model="llama3.2",
            embedding_model="nomic-embed-text",
        ),
    )
}


# -- the built-in table of known models ------------------------------------------------------


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
    top = entry.get("top_provider") if isinstance(entry.get("top_provider"), dict) else {}
    output = _first_int(entry, "max_completion_tokens") or _first_int(top or {}, "max_completion_tokens")
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

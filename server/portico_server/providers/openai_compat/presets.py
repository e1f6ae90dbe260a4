"""The presets of the OpenAI-compatible family, and which of them the environment turns on.

A preset is what differs between vendors that speak the same Chat Completions dialect:
where the API lives, which variable holds the key, default models, and the quirks the
adapter must honour. The provider `kind` is the preset name (kind `groq` is the
OpenAI-compatible adapter with the `groq` preset).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import SecretStr

from ...config import ProviderSettings

#: How a provider counts tokens, where it has an endpoint for it.
TokenCounter = Literal["none", "openai_responses", "vllm_tokenize"]
#: The knob a server takes reasoning controls by: `reasoning_effort` ("low", "medium",
#: "high"); OpenRouter's `reasoning: {effort | max_tokens}`; Qwen's `enable_thinking` and
#: `thinking_budget`; Z.ai's `thinking: {type: enabled}` (no budget or level); or none
#: (the request fails with FAILED_PRECONDITION rather than be refused or ignored upstream).
ReasoningKnob = Literal["reasoning_effort", "openrouter", "qwen", "zai", "none"]


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
    #: Most tokens one embeddings request may carry (by a high estimate); 0: no limit.
    embedding_token_budget: int = 0
    #: Ask for base64 vectors (a quarter of the bytes of JSON floats, decoded without a
    #: Python object per value) where the vendor documents `encoding_format: base64`.
    embedding_base64: bool = False
    #: The server has an embeddings endpoint at all.
    embeddings: bool = True
    token_counter: TokenCounter = "none"
    #: Path probed by the health check; empty: the API has no cheap GET to probe.
    health_path: str = "/models"
    #: Extra request headers every call carries.
    headers: dict[str, str] = field(default_factory=dict)
    #: How the server takes reasoning back on an assistant message: "reasoning_content"
    #: (the text, on turns with tool calls, which the server requires there),
    #: "reasoning_details" (OpenRouter's signed and encrypted entries, unchanged), or ""
    #: (not at all: plain Chat Completions has no field for it).
    reasoning_back: Literal["", "reasoning_content", "reasoning_details"] = ""
    reasoning_knob: ReasoningKnob = "reasoning_effort"
    #: Models (by name prefix, after any `vendor/`) that take the knob; empty: any model
    #: (the server decides; local servers and gateways whose models Portico cannot know).
    reasoning_models: tuple[str, ...] = ()
    #: The `reasoning_effort` values the server accepts; an effort it lacks goes up to
    #: the next one it has.
    reasoning_levels: tuple[str, ...] = ("low", "medium", "high")


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
            embedding_token_budget=300_000,  # OpenAI's cap per embeddings request
            embedding_base64=True,
            token_counter="openai_responses",
            reasoning_models=_OPENAI_REASONING,
        ),
        Preset(
            "groq",
            base_url="https://api.groq.com/openai/v1",
            env_vars=("GROQ_API_KEY",),
            default_model="llama-3.3-70b-versatile",
            models=("llama-3.3-70b-versatile", "llama-3.1-8b-instant", "openai/gpt-oss-120b"),
            embeddings=False,
            reasoning_models=("gpt-oss",),
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
            reasoning_back="reasoning_content",
            reasoning_knob="none",  # deepseek-reasoner always reasons; no knob
        ),
        Preset(
            "xai",
            base_url="https://api.x.ai/v1",
            env_vars=("XAI_API_KEY",),
            default_model="grok-3-mini",
            models=("grok-3-mini", "grok-3", "grok-4"),
            embeddings=False,
            # grok-3-mini takes low and high; grok-4 reasons always and refuses the field.
            reasoning_models=("grok-3-mini",),
            reasoning_levels=("low", "high"),
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
            embedding_base64=True,  # `encoding_format: float | base64` in Mistral's API spec
            reasoning_knob="none",
        ),
        Preset(
            "openrouter",
            base_url="https://openrouter.ai/api/v1",
            env_vars=("OPENROUTER_API_KEY",),
            default_model="openai/gpt-4o-mini",
            models=("openai/gpt-4o-mini",),
            embeddings=False,
            reasoning_back="reasoning_details",
            reasoning_knob="openrouter",
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
            reasoning_models=("gpt-oss",),
        ),
        Preset(
            "perplexity",
            base_url="https://api.perplexity.ai",
            env_vars=("PERPLEXITY_API_KEY", "PPLX_API_KEY"),
            default_model="sonar",
            models=("sonar", "sonar-pro", "sonar-reasoning"),
            embeddings=False,
            health_path="",  # no model listing to probe
            reasoning_models=("sonar-deep-research",),
        ),
        Preset(
            "moonshot",
            base_url="https://api.moonshot.ai/v1",
            env_vars=("MOONSHOT_API_KEY",),
            default_model="kimi-k2-0905-preview",
            models=("kimi-k2-0905-preview", "moonshot-v1-8k", "moonshot-v1-32k", "moonshot-v1-128k"),
            embeddings=False,
            reasoning_back="reasoning_content",
            reasoning_knob="none",
        ),
        Preset(
            "dashscope",
            base_url="https://dashscope.aliyuncs.com/compatible-mode/v1",
            env_vars=("DASHSCOPE_API_KEY",),
            default_model="qwen-plus",
            embedding_model="text-embedding-v3",
            models=("qwen-plus", "qwen-max", "qwen-turbo"),
            embedding_batch_size=10,
            reasoning_knob="qwen",
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
            reasoning_knob="qwen",
        ),
        Preset(
            "zai",
            base_url="https://api.z.ai/api/paas/v4",
            env_vars=("ZAI_API_KEY",),
            default_model="glm-4.6",
            models=("glm-4.6", "glm-4.5", "glm-4.5-air", "glm-4.5-flash"),
            embeddings=False,
            reasoning_back="reasoning_content",
            reasoning_knob="zai",
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
            embedding_base64=True,
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


def providers_from_environment(environ: Mapping[str, str]) -> list[ProviderSettings]:
    """One provider per preset whose key variable is set (local servers are never added)."""
    found: list[ProviderSettings] = []
    for preset in PRESETS.values():
        key = next((environ[v] for v in preset.env_vars if environ.get(v)), "")
        if not key:
            continue
        options: dict[str, Any] = {}
        base_url = None
        if preset.name == "openai":
            base_url = environ.get("OPENAI_BASE_URL") or None
            if environ.get("OPENAI_ORG_ID"):
                options["organization"] = environ["OPENAI_ORG_ID"]
            if environ.get("OPENAI_PROJECT_ID"):
                options["project"] = environ["OPENAI_PROJECT_ID"]
        found.append(ProviderSettings(
            name=preset.name,
            kind=preset.name,
            api_key=SecretStr(key),
            base_url=base_url,
            models=list(preset.models),
            default_model=preset.default_model or None,
            embedding_model=(preset.embedding_model or None) if preset.embeddings else None,
            options=options,
        ))
    return found

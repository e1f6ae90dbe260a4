"""The interface every provider implements.

A provider speaks one wire protocol over HTTP (or scripts answers, for `fake`). It sees
only domain types; it raises the exceptions of `portico_server.errors`.
"""

from __future__ import annotations

import abc
import json
from collections.abc import AsyncGenerator
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from ..call import NO_CALL, CallContext
from ..config import ConfigError, ProviderSettings
from ..domain import (
    Capabilities,
    ChatRequest,
    CompletionResponse,
    EmbedRequest,
    EmbedResponse,
    Source,
    StreamChunk,
    TokenCount,
    Usage,
)
from ..errors import CapabilityUnsupported, InvalidRequest
from ..redaction import register_secrets

#: Keys passthrough may never set, in any dialect: the routed model, the conversation,
#: streaming and the number of answers, tools (they come through the typed, validated
#: field), and anything that names credentials, URLs, headers or the call's own policy.
#: Compared lower-cased; a dotted entry names a key inside an object.
RESERVED_PASSTHROUGH = frozenset({
    "model", "messages", "stream", "stream_options", "n", "tools", "functions",
    "api_key", "api_base", "base_url", "api_version", "extra_headers", "headers",
    "timeout", "num_retries", "max_retries",
})


class NoOptions(BaseModel):
    """Kind-specific options of a provider that takes none."""

    model_config = ConfigDict(extra="forbid")


class Provider(abc.ABC):
    """One configured provider instance. Create through the registry, close when done."""

    #: The `kind` this class is registered under.
    kind: ClassVar[str] = ""
    #: Passthrough keys this dialect refuses (see `refused_passthrough`).
    reserved_passthrough: ClassVar[frozenset[str]] = RESERVED_PASSTHROUGH
    #: Words (between underscores) that make any passthrough key refused, for dialects
    #: whose parameters are an open set of keyword arguments.
    reserved_passthrough_words: ClassVar[frozenset[str]] = frozenset()
    #: Validates `ProviderSettings.options`; a subclass replaces it with its own model.
    Options: ClassVar[type[BaseModel]] = NoOptions

    def __init__(self, settings: ProviderSettings) -> None:
        self.settings = settings
        self.name = settings.name
        self.options = self.Options.model_validate(settings.options)
        # From here on, these values are redacted from every error and log line.
        secrets = list(settings.headers.values())
        if settings.api_key is not None:
            secrets.append(settings.api_key.get_secret_value())
        register_secrets(secrets)

        allow = settings.passthrough_allow
        if allow is not None:
            clashes = refused_passthrough(
                dict.fromkeys(allow), self.reserved_passthrough, self.reserved_passthrough_words)
            if clashes:
                raise ConfigError(
                    f"provider {self.name!r}: passthrough_allow names keys passthrough may never set: "
                    + ", ".join(key for key, _ in clashes)
                )

    def check_passthrough(self, passthrough: dict[str, Any]) -> None:
        """Refuse, with every offending key named, a passthrough this provider does not take:
        a key its dialect reserves, or one outside the configured `passthrough_allow`."""
        if not passthrough:
            return
        refused = refused_passthrough(passthrough, self.reserved_passthrough, self.reserved_passthrough_words)
        allow = self.settings.passthrough_allow
        if allow is not None:
            named = {key for key, _ in refused}
            refused += [
                (key, f"is not in provider {self.name!r}'s passthrough_allow")
                for key in passthrough if key not in allow and key not in named
            ]
        if refused:
            raise InvalidRequest([(f"passthrough_json.{key}", why) for key, why in refused])

    # -- required -------------------------------------------------------------------

    @abc.abstractmethod
    async def chat(self, request: ChatRequest, call: CallContext = NO_CALL) -> CompletionResponse:
        """One complete answer."""

    @abc.abstractmethod
    def stream(self, request: ChatRequest, call: CallContext = NO_CALL) -> AsyncGenerator[StreamChunk, None]:
        """Chunks of the answer; the last has `is_final` with stop reason, usage and the
        assembled tool calls. Closing the iterator (`aclose()`) must close the upstream
        response at once."""

    async def close(self) -> None:
        """Release connections. Called once at shutdown."""

    # -- optional -------------------------------------------------------------------

    async def embed(self, request: EmbedRequest, call: CallContext = NO_CALL) -> EmbedResponse:
        raise CapabilityUnsupported(
            f"provider {self.name!r} does not support embeddings",
            provider=self.name,
            metadata={"capability": "embeddings"},
        )

    async def count_tokens(self, request: ChatRequest, call: CallContext = NO_CALL) -> TokenCount:
        """The provider's own count where it has an endpoint; else an estimate."""
        return TokenCount(tokens=estimate_tokens(request), source=Source.ESTIMATE, model=request.model)

    async def discover_capabilities(self, model: str) -> Capabilities | None:
        """Ask the provider what `model` can do; None when it cannot tell."""
        return None

    def known_capabilities(self, model: str) -> Capabilities | None:
        """What Portico's built-in table knows of `model` (source BUILT_IN); None if nothing."""
        return None

    async def health_check(self) -> bool:
        """A cheap probe of the upstream; True when it answers."""
        return True

    def accepts_model(self, model: str) -> bool:
        """Whether a call naming this provider may use `model`. Real providers pass any
        name on (the upstream knows its catalogue); `fake` serves only its list."""
        return True

    def supports_tools(self, model: str) -> bool:
        return True

    def supports_streaming(self, model: str) -> bool:
        return True

    def supports_embeddings(self) -> bool:
        return type(self).embed is not Provider.embed

    def models(self) -> list[str]:
        """Models this provider is configured or known to serve."""
        names = list(self.settings.models)
        for extra in (self.settings.default_model, self.settings.embedding_model):
            if extra and extra not in names:
                names.append(extra)
        return names

    def default_model(self) -> str:
        return self.settings.default_model or (self.settings.models[0] if self.settings.models else "")

    def configured_kind(self) -> str:
        """The kind its configuration names (a preset such as "groq" shares a class, and so
        the class's `kind`, with others)."""
        return self.settings.kind

    def embedding_model(self) -> str:
        """Its default embedding model, or "" without one."""
        return self.settings.embedding_model or ""

    def capability_overrides(self, model: str) -> dict[str, Any]:
        """The capability figures its configuration sets for `model` (unset ones left out)."""
        override = self.settings.capabilities.get(model)
        return {} if override is None else override.model_dump(exclude_none=True)


def estimate_tokens(request: ChatRequest) -> int:
    """About four characters a token, plus a few tokens of framing per message."""
    chars = 0
    for message in request.messages:
        chars += len(message.text()) + len(message.name)
        for call in message.tool_calls:
            chars += len(call.name) + len(call.arguments)
    for tool in request.tools:
        chars += len(tool.name) + len(tool.description)
        chars += len(tool.parameters_json or json.dumps(tool.parameters))
    return (chars + 3) // 4 + 4 * len(request.messages)


def estimated_usage(request: ChatRequest, final: StreamChunk) -> Usage:
    """Usage for a stream whose provider reported none, by the same four-characters-a-token
    rule as `estimate_tokens`, marked `estimated` so nobody bills by it unawares. The
    answer is read from the final chunk: its text and reasoning parts and its tool calls."""
    chars = sum(len(p.text or "") + (len(p.reasoning.text) if p.reasoning else 0) for p in final.parts)
    chars += sum(len(c.name) + len(c.arguments) for c in final.tool_calls)
    prompt = estimate_tokens(request)
    completion = (chars + 3) // 4
    return Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion,
                 estimated=True)


def refused_passthrough(
    passthrough: dict[str, Any], reserved: frozenset[str], reserved_words: frozenset[str] = frozenset()
) -> list[tuple[str, str]]:
    """(key path, why) for every key of `passthrough` that `reserved` or `reserved_words` refuse."""
    refused = []
    lowered = {key.lower(): key for key in passthrough}
    for key in passthrough:
        low = key.lower()
        if low in reserved:
            refused.append((key, "cannot be set through passthrough; use the request's own fields"))
        elif reserved_words & set(low.split("_")):
            refused.append((key, "cannot be set through passthrough: it may name credentials, "
                                 "endpoints, headers or routing"))
    for path in sorted(r for r in reserved if "." in r):
        outer, _, inner = path.partition(".")
        value = passthrough.get(lowered.get(outer, outer))
        if isinstance(value, dict):
            refused += [
                (f"{lowered[outer]}.{key}", "cannot be set through passthrough; use the request's own fields")
                for key in value if key.lower() == inner
            ]
    return refused


def merge_passthrough(
    body: dict[str, Any], passthrough: dict[str, Any], reserved: frozenset[str] = RESERVED_PASSTHROUGH
) -> dict[str, Any]:
    """Merge the caller's passthrough object into a request body (passthrough wins over
    sampling options); a key of `reserved` is refused rather than merged."""
    if passthrough:
        refused = refused_passthrough(passthrough, reserved)
        if refused:
            raise InvalidRequest([(f"passthrough_json.{key}", why) for key, why in refused])
        body.update(passthrough)
    return body

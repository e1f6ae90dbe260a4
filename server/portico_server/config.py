"""Gateway configuration: one YAML file, `${ENV}` substitution, validated with pydantic.

With no file the embedded default applies: the `fake` provider plus every real provider
whose API key variable is set (see `providers.registry.providers_from_environment`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_NOT_KEY_CHARACTER = re.compile(r"[^\x21-\x7e]")
_NOT_HEADER_CHARACTER = re.compile(r"[^\x20-\x7e\t]")
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


class ConfigError(Exception):
    """The configuration is wrong; the message names the file and the key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CapabilityOverride(_Strict):
    """What configuration says about one model, where discovery and the table are silent."""

    context_window: int | None = Field(default=None, gt=0)
    max_output_tokens: int | None = Field(default=None, gt=0)
    supports_tools: bool | None = None
    supports_vision: bool | None = None
    supports_response_format: bool | None = None
    supports_embeddings: bool | None = None


class LimitSettings(_Strict):
    """Rate limits of one provider, deployment (provider and model) or model group.

    Each limit left unset does not apply; with none set nothing is counted or queued.
    Calls over a limit wait in a priority queue of at most `queue` calls.
    """

    #: Calls in progress at once (a stream counts until it ends).
    concurrency: int | None = Field(default=None, gt=0)
    #: Requests started per minute.
    rpm: int | None = Field(default=None, gt=0)
    #: Tokens per minute: prompt estimate plus `max_tokens` at admission, corrected by
    #: the usage the provider reports.
    tpm: int | None = Field(default=None, gt=0)
    #: Calls that may wait for a slot; 0 refuses at once when over a limit.
    queue: int = Field(default=100, ge=0)

    @property
    def limited(self) -> bool:
        return self.concurrency is not None or self.rpm is not None or self.tpm is not None


class ProviderSettings(_Strict):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    kind: str = Field(min_length=1)
    api_key: SecretStr | None = None
    base_url: str | None = None
    models: list[str] = Field(default_factory=list)
    default_model: str | None = None
    embedding_model: str | None = None
    #: Seconds for a whole upstream call when the caller set no deadline.
    timeout: float = Field(default=600.0, gt=0)
    connect_timeout: float = Field(default=10.0, gt=0)
    headers: dict[str, str] = Field(default_factory=dict)
    #: Largest request body the provider accepts; larger requests are refused unsent.
    max_request_bytes: int | None = Field(default=None, gt=0)
    #: Connections to the upstream in use at once; calls beyond them wait for a free one.
    max_connections: int = Field(default=2048, gt=0)
    #: The same bound per upstream host; unset: `max_connections`.
    max_connections_per_host: int | None = Field(default=None, gt=0)
    #: Seconds an idle connection is kept open for the next call.
    keepalive_timeout: float = Field(default=15.0, gt=0)
    #: Seconds a call may wait for a free connection before it fails with
    #: UPSTREAM_POOL_EXHAUSTED (it never reached the upstream).
    pool_timeout: float = Field(default=5.0, gt=0)
    #: Caps on what the upstream sends back, counted after decompression: a whole body,
    #: one line of an SSE or NDJSON stream, one SSE event. Over a cap, the call fails with
    #: UPSTREAM_PROTOCOL naming the limit.
    max_response_bytes: int = Field(default=64 * 1024 * 1024, gt=0)
    max_line_bytes: int = Field(default=16 * 1024 * 1024, gt=0)
    max_event_bytes: int = Field(default=32 * 1024 * 1024, gt=0)
    capabilities: dict[str, CapabilityOverride] = Field(default_factory=dict)
    #: When set, the only passthrough keys callers may send to this provider.
    passthrough_allow: list[str] | None = None
    #: Kind-specific options, validated by the provider class's own `Options` model.
    options: dict[str, Any] = Field(default_factory=dict)
    #: Rate limits of the whole provider (all its models together).
    limits: LimitSettings = Field(default_factory=LimitSettings)
    #: Rate limits of one deployment: this provider serving one model (by the provider's
    #: own model name), on top of `limits`.
    model_limits: dict[str, LimitSettings] = Field(default_factory=dict)

    @field_validator("api_key")
    @classmethod
    def _key_is_one_token(cls, value: SecretStr | None) -> SecretStr | None:
        # A key pasted with its trailing newline would otherwise fail every call as an
        # invalid HTTP header, far from its cause. The message never shows the key.
        if value is not None and _NOT_KEY_CHARACTER.search(value.get_secret_value()):
            raise ValueError(
                "contains whitespace, a control character or a non-ASCII character (a trailing newline?)")
        return value

    @field_validator("headers")
    @classmethod
    def _headers_are_single_line(cls, value: dict[str, str]) -> dict[str, str]:
        for name, text in value.items():
            if not _HEADER_NAME.fullmatch(name):
                raise ValueError(f"{name!r} is not a valid HTTP header name")
            if text != text.strip() or _NOT_HEADER_CHARACTER.search(text):
                raise ValueError(f"the value of {name!r} has leading or trailing whitespace, "
                                 "a control character or a non-ASCII character")
        return value


class RequestLimits(_Strict):
    """Most items one request may hold. Counted on the wire before the request is decoded,
    so an oversized request is refused in time proportional to the limit, not its size."""

    #: Messages of a ChatRequest or CountTokensRequest.
    messages: int = Field(default=10_000, gt=0)
    #: Content parts and tool calls, summed over all messages of a request.
    parts: int = Field(default=20_000, gt=0)
    #: Tool definitions of a request.
    tools: int = Field(default=512, gt=0)
    stop_sequences: int = Field(default=64, gt=0)
    #: Inputs of an EmbedRequest (OpenAI's own limit per call).
    embed_inputs: int = Field(default=2_048, gt=0)
    #: Entries of a request's `tags` map.
    tags: int = Field(default=64, gt=0)


class ServerSettings(_Strict):
    address: str = "127.0.0.1:50051"
    max_message_bytes: int = Field(default=16 * 1024 * 1024, gt=0)
    limits: RequestLimits = Field(default_factory=RequestLimits)
    #: Seconds in-flight calls get to finish after SIGTERM.
    shutdown_grace: float = Field(default=10.0, ge=0)
    reflection: bool = True
    #: Seconds between provider health probes; 0 turns probing off.
    health_probe_interval: float = Field(default=30.0, ge=0)
    log_level: str = "INFO"

    @field_validator("address")
    @classmethod
    def _has_port(cls, value: str) -> str:
        if ":" not in value:
            raise ValueError("must be host:port, e.g. 127.0.0.1:50051")
        return value


class GatewayConfig(_Strict):
    server: ServerSettings = Field(default_factory=ServerSettings)
    providers: list[ProviderSettings] = Field(default_factory=list)
    #: alias -> "provider/model": a name callers may use in `model`.
    aliases: dict[str, str] = Field(default_factory=dict)
    #: model group name -> rate limits shared by all the group's deployments.
    group_limits: dict[str, LimitSettings] = Field(default_factory=dict)

    @field_validator("providers")
    @classmethod
    def _unique_names(cls, value: list[ProviderSettings]) -> list[ProviderSettings]:
        seen: set[str] = set()
        for p in value:
            if p.name in seen:
                raise ValueError(f"provider name {p.name!r} is used twice")
            seen.add(p.name)
        return value


def substitute_env(value: Any, environ: Mapping[str, str], path: str = "") -> Any:
    """Replace `${VAR}` / `${VAR:-default}` in every string of a parsed YAML tree."""
    if isinstance(value, str):

        def repl(match: re.Match[str]) -> str:
            var, default = match.group(1), match.group(2)
            if var in environ:
                return environ[var]
            if default is not None:
                return default
            raise ConfigError(f"{path or '<root>'}: environment variable {var} is not set")

        return _ENV_REF.sub(repl, value)
    if isinstance(value, dict):
        return {k: substitute_env(v, environ, f"{path}.{k}" if path else str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute_env(v, environ, f"{path}[{i}]") for i, v in enumerate(value)]
    return value


def _format_validation_error(source: str, exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        loc = ""
        for part in err["loc"]:
            loc += f"[{part}]" if isinstance(part, int) else (f".{part}" if loc else str(part))
        lines.append(f"{source}: {loc or '<root>'}: {err['msg']}")
    return "\n".join(lines)


def parse_config(data: Any, source: str = "config", environ: Mapping[str, str] | None = None) -> GatewayConfig:
    """Validate an already parsed YAML/dict tree."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping")
    data = substitute_env(data, os.environ if environ is None else environ)
    try:
        return GatewayConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(source, exc)) from None


def load_config(path: str | Path | None, environ: Mapping[str, str] | None = None) -> GatewayConfig:
    """Load the YAML file at `path`, or the embedded default when `path` is None."""
    env = os.environ if environ is None else environ
    if path is None:
        from .providers.registry import default_providers

        try:
            return GatewayConfig(providers=default_providers(env))
        except ValidationError as exc:
            raise ConfigError(_format_validation_error(
                "a provider configured from environment variables (check the *_API_KEY values)", exc)) from None
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: not valid YAML: {exc}") from None
    return parse_config(data, str(p), env)

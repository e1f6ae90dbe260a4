"""Gateway configuration: one YAML file, `${ENV}` substitution, validated with pydantic.

With no file the embedded default applies: the `fake` provider plus every real provider
whose API key variable is set (see `providers.registry.providers_from_environment`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_NOT_KEY_CHARACTER = re.compile(r"[^\x21-\x7e]")
_NOT_HEADER_CHARACTER = re.compile(r"[^\x20-\x7e\t]")
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


class ConfigError(Exception):
    """The configuration is wrong; the message names the file and the key."""


class StartupError(Exception):
    """The gateway cannot start for a reason outside its configuration file (e.g. the port)."""


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


class RetrySettings(_Strict):
    """How a failed upstream call to one target is tried again (see README, Resilience)."""

    enabled: bool = True
    #: Tries after the first one (3: at most four calls to the target).
    attempts: int = Field(default=3, ge=0, le=20)
    #: Seconds: the first backoff's upper bound; each later one doubles, up to `backoff_max`.
    #: The wait itself is drawn uniformly below that bound (full jitter).
    backoff_initial: float = Field(default=0.5, gt=0)
    backoff_max: float = Field(default=8.0, gt=0)
    #: Also retry 500, 502, 504 and timeouts or resets after the request was sent, which
    #: may follow a generation the provider bills; for providers that bill no failed call.
    unsafe: bool = False


class BreakerSettings(_Strict):
    """The circuit breaker in front of a provider (or each of its models)."""

    enabled: bool = True
    #: Consecutive upstream failures that open the breaker.
    failures: int = Field(default=5, gt=0)
    #: Seconds the breaker stays open before trial calls may pass.
    recovery: float = Field(default=30.0, gt=0)
    #: Calls let through at once while half-open.
    trial_calls: int = Field(default=1, gt=0)
    #: One breaker per model of the provider instead of one for the provider.
    per_model: bool = False

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
    #: Several keys of one account or of several: one deployment per key (named
    #: `<name>#1`, `<name>#2`, ...), grouped under `name`, so a throttled key is skipped.
    api_keys: list[SecretStr] = Field(default_factory=list)
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
    retry: RetrySettings = Field(default_factory=RetrySettings)
    breaker: BreakerSettings = Field(default_factory=BreakerSettings)
    #: Seconds a provider is skipped after it said its quota or billing is exhausted.
    quota_cooldown: float = Field(default=3600.0, ge=0)

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
        if value is not None:
            _check_key(value)
        return value

    @field_validator("api_keys")
    @classmethod
    def _keys_are_tokens(cls, value: list[SecretStr]) -> list[SecretStr]:
        for i, key in enumerate(value):
            try:
                _check_key(key)
            except ValueError as exc:
                raise ValueError(f"key {i + 1}: {exc}") from None
        return value

    @model_validator(mode="after")
    def _one_way_to_give_keys(self) -> ProviderSettings:
        if self.api_key is not None and self.api_keys:
            raise ValueError("set api_key or api_keys, not both")
        return self

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


def _check_key(key: SecretStr) -> None:
    if _NOT_KEY_CHARACTER.search(key.get_secret_value()):
        raise ValueError("contains whitespace, a control character or a non-ASCII character (a trailing newline?)")


def expand_api_keys(settings: ProviderSettings) -> list[ProviderSettings]:
    """One provider per key of `api_keys` (`<name>#1`, ...); the settings alone otherwise.
    The names number the keys; they never show a key."""
    if not settings.api_keys:
        return [settings]
    return [
        settings.model_copy(update={"name": f"{settings.name}#{i}", "api_key": key, "api_keys": []})
        for i, key in enumerate(settings.api_keys, start=1)
    ]


class HedgeSettings(_Strict):
    """Send a unary call to the next target too when the first has not answered in time."""

    #: A fixed delay in milliseconds ...
    after_ms: float | None = Field(default=None, gt=0)
    #: ... or the target's observed latency quantile.
    after: Literal["p95"] | None = None
    #: Most targets asked at once (the first included).
    copies: int = Field(default=2, ge=2)

    @model_validator(mode="after")
    def _one_delay(self) -> HedgeSettings:
        if (self.after_ms is None) == (self.after is None):
            raise ValueError("set exactly one of after_ms and after")
        return self


class Deployment(_Strict):
    """One place a group's model is served: a provider (or a provider of several keys)
    and that provider's model name (empty: its default model)."""

    provider: str = Field(min_length=1)
    model: str = ""
    weight: float = Field(default=1.0, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, value: Any) -> Any:
        # "provider/model" is shorthand for {provider, model}.
        if isinstance(value, str):
            provider, _, model = value.partition("/")
            return {"provider": provider, "model": model}
        return value


class RouteSettings(_Strict):
    """What an alias and a group share: where to go when the first choice fails."""

    #: Targets tried in turn after the first choice: group names, aliases,
    #: "provider/model", or provider names (their default model).
    fallbacks: list[str] = Field(default_factory=list)
    #: For a request too long for the model's context window.
    context_window_fallbacks: list[str] = Field(default_factory=list)
    #: For a content-policy refusal.
    content_policy_fallbacks: list[str] = Field(default_factory=list)
    hedge: HedgeSettings | None = None


class AliasSettings(RouteSettings):
    #: "provider/model" (or "provider" for its default model).
    target: str = Field(min_length=1)


class GroupSettings(RouteSettings):
    deployments: list[Deployment] = Field(min_length=1)
    strategy: Literal["weighted", "least_in_flight", "lowest_latency"] = "weighted"


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
    #: Gateway processes sharing the port (SO_REUSEPORT); None: one per core.
    workers: int | None = Field(default=None, ge=1, le=256)

    @field_validator("address")
    @classmethod
    def _has_port(cls, value: str) -> str:
        if ":" not in value:
            raise ValueError("must be host:port, e.g. 127.0.0.1:50051")
        return value


class MetricsSettings(_Strict):
    """The Prometheus endpoint (`/metrics`), on a port of its own."""

    host: str = "127.0.0.1"
    #: 0: a free port, printed at start-up. Without a `metrics` section: 127.0.0.1 and a
    #: free port; `metrics: null` turns the endpoint off.
    port: int = Field(default=9464, ge=0, le=65535)


class LoggingSettings(_Strict):
    #: auto: JSON lines unless stderr is a terminal, then plain text.
    format: Literal["auto", "json", "text"] = "auto"
    #: debug, info, warning or error; unset: `server.log_level`.
    level: Literal["debug", "info", "warning", "error", "critical"] | None = None
    #: One line per finished call (the `portico.call` logger, at info).
    calls: bool = True

    @field_validator("level", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value


class GatewayConfig(_Strict):
    server: ServerSettings = Field(default_factory=ServerSettings)
    metrics: MetricsSettings | None = Field(default_factory=lambda: MetricsSettings(port=0))
    logging: LoggingSettings = Field(default_factory=LoggingSettings)
    providers: list[ProviderSettings] = Field(default_factory=list)
    #: alias -> "provider/model" (or a mapping with `target` and fallbacks): a name
    #: callers may use in `model`.
    aliases: dict[str, str | AliasSettings] = Field(default_factory=dict)
    #: model group name -> its deployments, strategy and fallbacks: a name callers may
    #: use in `model`.
    groups: dict[str, GroupSettings] = Field(default_factory=dict)
    #: group, alias or several-key provider name -> rate limits shared by all its
    #: deployments.
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

    @model_validator(mode="after")
    def _group_limits_name_groups(self) -> GatewayConfig:
        known = {*self.groups, *self.aliases, *(p.name for p in self.providers if p.api_keys)}
        for name in self.group_limits:
            if name not in known:
                raise ValueError(f"group_limits.{name}: names no group, alias or provider with api_keys")
        return self


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

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
    """How a failed upstream call to one target is tried again (see docs/resilience.md)."""

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
    #: Records of a VectorService Upsert, and ids of a Get or Delete.
    vector_records: int = Field(default=10_000, gt=0)


class TlsSettings(_Strict):
    """TLS for the gRPC port: PEM files read at start-up and again whenever they change
    (see tls.py). Relative paths are relative to the working directory."""

    #: The server's certificate, followed by any intermediates (cert-manager's `tls.crt`).
    cert_file: str = Field(min_length=1)
    #: Its private key, unencrypted (`tls.key`).
    key_file: str = Field(min_length=1)
    #: The certificate authorities a client certificate must chain to (`ca.crt`).
    client_ca_file: str | None = Field(default=None, min_length=1)
    #: Refuse, at the handshake, a client without a certificate from `client_ca_file`.
    require_client_cert: bool = False

    @model_validator(mode="after")
    def _client_ca_and_requirement_go_together(self) -> TlsSettings:
        if self.require_client_cert and self.client_ca_file is None:
            raise ValueError("require_client_cert needs client_ca_file: the CA client certificates must chain to")
        if self.client_ca_file is not None and not self.require_client_cert:
            # grpcio's Python server either demands a verified client certificate or asks
            # for none; a CA file that would verify nothing is a mistake, not a setting.
            raise ValueError("client_ca_file is only used with require_client_cert: true "
                             "(the server either requires a client certificate or asks for none)")
        return self
class LoadSettings(_Strict):
    """Gateway-wide caps that shed new calls when the gateway is full (shedding.py).

    The caps are the whole gateway's: with several worker processes each worker takes an
    equal share (see docs/operations.md, "Protecting itself"). null turns a cap off.
    """

    #: Unary calls (Chat, Embed, CountTokens, GetCapabilities) in progress at once that
    #: normal- and low-priority calls may fill.
    max_in_flight: int | None = Field(default=1024, gt=0)
    #: StreamChat streams open at once that normal- and low-priority calls may fill.
    max_streams: int | None = Field(default=1024, gt=0)
    #: Room above each cap that only high-priority calls may use, as a fraction of the
    #: cap (at least one call), so urgent work still gets in when the gateway is full.
    high_priority_reserve: float = Field(default=0.1, ge=0, le=1)
    #: The fraction of each cap low-priority calls may fill (at least one call): they
    #: are shed first, while normal calls still get in.
    low_priority_share: float = Field(default=0.8, gt=0, le=1)


class ConnectionSettings(_Strict):
    """HTTP/2 connection policy of the gRPC server. Durations are in seconds."""

    #: Age after which the server asks a client to reconnect (GOAWAY; gRPC adds ±10 %
    #: jitter), so clients behind a Kubernetes Service spread over new replicas. null: never.
    max_connection_age: float | None = Field(default=300.0, gt=0)
    #: Time calls still running on an aged connection get to finish before it is closed.
    #: As long as a provider's default timeout, so no call that could succeed is cut.
    max_connection_age_grace: float = Field(default=600.0, ge=0)
    #: The server pings a connection after this long without activity ...
    keepalive_time: float = Field(default=60.0, gt=0)
    #: ... and closes it when the ping is not answered within this time.
    keepalive_timeout: float = Field(default=20.0, gt=0)
    #: Clients may ping at most this often; pings sooner count as strikes.
    min_ping_interval: float = Field(default=10.0, ge=0)
    #: Strikes after which the connection is closed (GOAWAY "too_many_pings"); 0: no limit.
    max_ping_strikes: int = Field(default=2, ge=0)
    #: Calls open at once on one connection; a client's further calls wait on its side
    #: until one ends (they are not refused).
    max_concurrent_streams: int = Field(default=1000, gt=0)


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
    #: TLS on the gRPC port; None: plaintext.
    tls: TlsSettings | None = None
    #: Refuse to start unless `auth.keys` names at least one caller.
    require_auth: bool = False
    load: LoadSettings = Field(default_factory=LoadSettings)
    connections: ConnectionSettings = Field(default_factory=ConnectionSettings)

    @field_validator("address")
    @classmethod
    def _has_port(cls, value: str) -> str:
        if ":" not in value:
            raise ValueError("must be host:port, e.g. 127.0.0.1:50051")
        return value


class KeyAllow(_Strict):
    """What a caller key may use. Each list left empty does not restrict; with several
    set, a target is allowed when any of them names it."""

    #: Provider names (a provider with several `api_keys` by its own name).
    providers: list[str] = Field(default_factory=list)
    #: Model names as the provider knows them, or "provider/model".
    models: list[str] = Field(default_factory=list)
    #: Model group and alias names.
    groups: list[str] = Field(default_factory=list)

    @property
    def everything(self) -> bool:
        return not (self.providers or self.models or self.groups)


class BudgetSettings(_Strict):
    """Tokens a caller may use per UTC calendar day or month, counted from the usage the
    providers report."""

    tokens: int = Field(gt=0)
    per: Literal["day", "month"]


_SHA256_HEX = re.compile(r"[0-9a-fA-F]{64}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class KeyIdentity(_Strict):
    """Who a key belongs to, and how the gateway recognises it: the SHA-256 of the key
    (hex), an environment variable holding the key, and/or a client-certificate subject."""

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.@-]+$")
    sha256: str | None = None
    env: str | None = None
    subject: str | None = Field(default=None, min_length=3)

    @field_validator("sha256")
    @classmethod
    def _is_hex_digest(cls, value: str | None) -> str | None:
        if value is not None and not _SHA256_HEX.fullmatch(value):
            # Never echo the value: it may be a key pasted where its digest belongs.
            raise ValueError("must be the key's SHA-256 as 64 hex digits (portico keys hash prints it)")
        return value.lower() if value is not None else None

    @field_validator("env")
    @classmethod
    def _is_variable_name(cls, value: str | None) -> str | None:
        if value is not None and not _ENV_NAME.fullmatch(value):
            raise ValueError("must be the name of an environment variable, e.g. PORTICO_KEY_BILLING")
        return value

    @model_validator(mode="after")
    def _one_way_to_recognise(self) -> KeyIdentity:
        if self.sha256 is not None and self.env is not None:
            raise ValueError("set sha256 or env, not both")
        if self.sha256 is None and self.env is None and self.subject is None:
            raise ValueError("set one of sha256, env or subject")
        return self


class CallerKeySettings(KeyIdentity):
    """A caller of LLMService: what it may use, how fast, and how much."""

    allow: KeyAllow = Field(default_factory=KeyAllow)
    #: Requests started per minute.
    rpm: int | None = Field(default=None, gt=0)
    #: Tokens per minute: the call's estimate at admission, corrected by the usage reported.
    tpm: int | None = Field(default=None, gt=0)
    budget: BudgetSettings | None = None


class AuthSettings(_Strict):
    """Caller keys (docs/security.md). With no `keys`, LLMService is open to anyone who
    can reach the port; with no `keys` and no `admin_keys`, AdminService is too."""

    keys: list[CallerKeySettings] = Field(default_factory=list)
    #: Keys for AdminService; they do not call LLMService unless listed in `keys` too.
    admin_keys: list[KeyIdentity] = Field(default_factory=list)
    #: grpc.health.v1 answers without a key (Kubernetes probes, load balancers).
    open_health: bool = True
    #: Server reflection answers without a key (grpcurl).
    open_reflection: bool = True

    @model_validator(mode="after")
    def _unique_names(self) -> AuthSettings:
        for section, entries in (("keys", self.keys), ("admin_keys", self.admin_keys)):
            seen: set[str] = set()
            for entry in entries:
                if entry.name in seen:
                    raise ValueError(f"{section}: the name {entry.name!r} is used twice")
                seen.add(entry.name)
        return self
class MetricsSettings(_Strict):
    """The Prometheus endpoint (`/metrics`), on a port of its own."""

    host: str = "127.0.0.1"
    #: 0: a free port, printed at start-up. Without a `metrics` section: 127.0.0.1 and a
    #: free port; `metrics: null` turns the endpoint off.
    port: int = Field(default=9464, ge=0, le=65535)


class RedisSettings(_Strict):
    """The Redis that workers and replicas share limits, leases and budgets through
    (docs/scale-out.md). Durations are in seconds."""

    #: redis://, rediss://, unix://, redis+cluster://host:port[,host:port] or
    #: redis+sentinel://host:26379[,host:26379]/master[/db]; may carry a password.
    url: SecretStr
    #: Redis unreachable: `open` falls back to each process's own limits and budgets,
    #: `closed` refuses calls that a limit or budget applies to (UNAVAILABLE).
    on_unavailable: Literal["open", "closed"] = "open"
    #: Longest wait for one command's answer; a call never waits longer on Redis.
    command_timeout: float = Field(default=0.25, gt=0, le=10)
    connect_timeout: float = Field(default=0.25, gt=0, le=10)
    #: After a failure, Redis is not asked again for this long (a probe then pings it).
    retry_interval: float = Field(default=1.0, gt=0, le=60)
    #: A concurrency lease not renewed for this long is given up: what a replica that
    #: died held comes free after it. Renewed every third of it while the call runs.
    lease_ttl: float = Field(default=15.0, ge=1, le=3600)
    #: Connections per process.
    max_connections: int = Field(default=64, gt=0)
    #: Prefix of every key, so several gateways may share one Redis.
    key_prefix: str = Field(default="portico:", max_length=64)

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, value: SecretStr) -> SecretStr:
        from .shared.redis import parse_url

        try:
            parse_url(value.get_secret_value())
        except ConfigError as exc:
            raise ValueError(str(exc).removeprefix("redis.url: ")) from None
        return value


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


class CacheRouteSettings(_Strict):
    """A model group, alias, model or provider whose eligible calls are cached without
    the caller asking (the caller's `x-portico-cache: off` still wins)."""

    #: Seconds an answer stays; unset: `response_cache.ttl`.
    ttl: float | None = Field(default=None, gt=0)


class SemanticCacheSettings(_Strict):
    """Answers to a similar last user message (off by default; docs/response-cache.md)."""

    enabled: bool = False
    #: Cosine similarity a stored question must reach to be answered from the cache.
    threshold: float = Field(default=0.95, gt=0, le=1)
    #: Where the last user message is embedded, through the gateway's own Embed path:
    #: a provider, alias or group name, and a model ("" for the provider's embedding model).
    embedding_provider: str = Field(default="", max_length=200)
    embedding_model: str = Field(default="", max_length=200)
    #: Seconds the lookup (embedding included) may take before the call goes on uncached.
    timeout: float = Field(default=2.0, gt=0, le=60)

    @model_validator(mode="after")
    def _embedding_named(self) -> SemanticCacheSettings:
        if self.enabled and not (self.embedding_provider or self.embedding_model):
            raise ValueError("enabled needs embedding_provider and/or embedding_model: where questions are embedded")
        return self


class ResponseCacheSettings(_Strict):
    """The exact response cache (cache/). Only deterministic calls are cached unless the
    caller allows sampled ones; a call is cached when its caller asks (`x-portico-cache`)
    or its route is listed under `models`."""

    #: memory: this process; redis: the `redis` section's server (shared by replicas);
    #: auto: redis when a `redis` section exists, else memory.
    backend: Literal["auto", "memory", "redis"] = "auto"
    #: Seconds an answer stays in the cache.
    ttl: float = Field(default=300.0, gt=0)
    #: The in-memory store's bounds: answers, and their bytes in all (least recently used go first).
    max_entries: int = Field(default=10_000, gt=0)
    max_bytes: int = Field(default=64 * 1024 * 1024, gt=0)
    #: Larger answers are not stored.
    max_entry_bytes: int = Field(default=1024 * 1024, gt=0)
    #: shared: one answer for every caller sending the same request; caller: one per caller key.
    scope: Literal["shared", "caller"] = "shared"
    #: Honour the per-request opt-in; false: only the routes under `models` are cached.
    per_request: bool = True
    #: Group, alias, model or "provider/model" names cached for every eligible call.
    models: dict[str, CacheRouteSettings] = Field(default_factory=dict)
    semantic: SemanticCacheSettings = Field(default_factory=SemanticCacheSettings)


#: The vector backend when the configuration names none: the one `make serve` offers.
DEFAULT_VECTOR_BACKEND = "embedded"


class VectorSettings(_Strict):
    """The vector store that VectorService serves (vectors/)."""

    #: Serve VectorService at all.
    enabled: bool = True
    #: Which backend keeps the collections: `embedded` (the default: SQLite and an HNSW
    #: graph under a data directory, no server), `memory` (exact search; nothing survives
    #: a restart), or another registered kind.
    backend: str = Field(default=DEFAULT_VECTOR_BACKEND, min_length=1)
    #: The backend's own options (a data directory, a database URL), checked by the backend.
    options: dict[str, Any] = Field(default_factory=dict)
    #: Texts per Embed call when records or queries come as text; the provider splits each
    #: call further to its own limit on inputs per request.
    embed_batch: int = Field(default=256, gt=0, le=2048)


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
    #: Caller keys, admin keys, and what health and reflection need.
    auth: AuthSettings = Field(default_factory=AuthSettings)
    #: Exact (and optionally semantic) response cache; nothing is cached unless asked.
    response_cache: ResponseCacheSettings = Field(default_factory=ResponseCacheSettings)
    #: Shared state of every worker and replica; None: each process counts on its own.
    redis: RedisSettings | None = None
    #: The vector store.
    vectors: VectorSettings = Field(default_factory=VectorSettings)

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

    @model_validator(mode="after")
    def _cache_backend_exists(self) -> GatewayConfig:
        if self.response_cache.backend == "redis" and self.redis is None:
            raise ValueError("response_cache.backend is redis, but there is no redis section naming a server")
        semantic = self.response_cache.semantic
        known = {*self.groups, *self.aliases, *(p.name for p in self.providers)}
        if semantic.enabled and semantic.embedding_provider and semantic.embedding_provider not in known:
            raise ValueError(f"response_cache.semantic.embedding_provider: {semantic.embedding_provider!r} names "
                             "no provider, alias or group")
        return self

    @model_validator(mode="after")
    def _keys_when_required(self) -> GatewayConfig:
        if self.server.require_auth and not self.auth.keys:
            raise ValueError("server.require_auth is true but auth.keys is empty: "
                             "configure at least one caller key, or set require_auth to false")
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

"""Prometheus metrics: the OpenTelemetry GenAI client metrics under their Prometheus
names, and Portico's own (calls, in-flight calls, open streams, gateway overhead,
upstream attempts and retries, breaker states, rate-limit queues).

Every label value is bounded: methods, status codes and token types are fixed sets;
providers are configured names; a model is a configured model, alias or group, else
"other" (`ModelNames`). Request ids, tags and free text never become labels.

One process serves `/metrics` on its own HTTP port (`serve_http`). With several worker
processes the supervisor points prometheus-client's multiprocess mode at a fresh
directory before it starts them (`multiprocess_dir`), each worker writes its figures
there, and the supervisor's endpoint merges them, so one scrape sees every worker.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar
from wsgiref.simple_server import WSGIServer

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client import multiprocess as prometheus_multiprocess

from .config import MetricsSettings, StartupError

log = logging.getLogger("portico.metrics")

#: prometheus-client's own variable: set, every metric of the process lives in files there.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: The label value of a model that configuration does not name.
OTHER = "other"

# Bucket boundaries the GenAI semantic conventions recommend for each instrument.
_DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)
_TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864)
_FIRST_CHUNK_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
_PER_CHUNK_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5)
# The gateway's own time per call is sub-millisecond when all is well.
_OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
_WAIT_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

_GENAI = ("gen_ai_operation_name", "gen_ai_provider_name", "gen_ai_request_model")

OPERATION_DURATION = Histogram(
    "gen_ai_client_operation_duration_seconds", "GenAI operation duration, as the gateway saw it.",
    [*_GENAI, "error_type"], buckets=_DURATION_BUCKETS)
TOKEN_USAGE = Histogram(
    "gen_ai_client_token_usage", "Input and output tokens per operation, as the provider reported them.",
    [*_GENAI, "gen_ai_token_type"], buckets=_TOKEN_BUCKETS)
TIME_TO_FIRST_CHUNK = Histogram(
    "gen_ai_client_operation_time_to_first_chunk_seconds",
    "Streams: time from the call's start to its first chunk.", _GENAI, buckets=_FIRST_CHUNK_BUCKETS)
TIME_PER_OUTPUT_CHUNK = Histogram(
    "gen_ai_client_operation_time_per_output_chunk_seconds",
    "Streams: time between one chunk and the next, for each chunk after the first.",
    _GENAI, buckets=_PER_CHUNK_BUCKETS)
TOKENS = Counter(
    "portico_tokens", "Tokens the GenAI conventions have no metric type for: cache_read and "
    "cache_creation (of the input), reasoning (of the output).", ["provider", "model", "token_type"])

CALLS = Counter("portico_calls", "Finished calls by method and gRPC status code.", ["method", "code"])
IN_FLIGHT = Gauge("portico_calls_in_flight", "Calls in progress.", ["method"], multiprocess_mode="livesum")
OPEN_STREAMS = Gauge("portico_streams_open", "StreamChat calls in progress.", multiprocess_mode="livesum")
OVERHEAD = Histogram(
    "portico_gateway_overhead_seconds",
    "A call's time in the gateway: its total minus upstream attempts and the waits before them.",
    ["method"], buckets=_OVERHEAD_BUCKETS)
ATTEMPTS = Counter(
    "portico_upstream_attempts", "Upstream attempts by outcome (ok, error, skipped) and status code.",
    ["provider", "outcome", "code"])
RETRIES = Counter("portico_upstream_retries", "Attempts that repeated one to the same target.", ["provider"])
BREAKER_STATE = Gauge(
    "portico_breaker_state", "The provider's circuit breaker: 0 closed, 1 half-open, 2 open (the worst of its "
    "breakers; with several workers, the worst worker's).", ["provider"], multiprocess_mode="livemax")
QUEUE_DEPTH = Gauge(
    "portico_ratelimit_queue_depth", "Calls waiting for a rate-limit slot, by limit key.", ["key"],
    multiprocess_mode="livesum")
QUEUE_WAIT = Histogram(
    "portico_ratelimit_wait_seconds", "Time calls waited for their rate-limit slots.", ["provider"],
    buckets=_WAIT_BUCKETS)
CACHE_LOOKUPS = Counter(
    "portico_response_cache_lookups", "Response cache lookups by method and result (hit, semantic_hit, miss; "
    "not_deterministic: asked for but refused, the call samples).", ["method", "result"])
CACHE_STORES = Counter(
    "portico_response_cache_stores", "Answers offered to the response cache by result (stored, too_large, error).",
    ["method", "result"])
CACHE_ERRORS = Counter(
    "portico_response_cache_errors", "Response cache operations that failed or timed out (the call went on "
    "without the cache).", ["operation"])

_BREAKER_VALUES = {"closed": 0.0, "half_open": 1.0, "open": 2.0}

M = TypeVar("M", Counter, Gauge, Histogram)


class Children(Generic[M]):
    """A metric's labelled children by their label values: `labels()` checks and locks on
    every call, a dict lookup does not, and the label values are bounded anyway."""

    __slots__ = ("_children", "_metric")

    def __init__(self, metric: M) -> None:
        self._metric: M = metric
        self._children: dict[tuple[str, ...], M] = {}

    def __call__(self, *values: str) -> M:
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = self._metric.labels(*values)
        return child


class ModelNames:
    """The model label: a configured model, alias or group name as it is, anything else
    "other", so a caller cannot grow the number of series by inventing model names."""

    def __init__(self) -> None:
        self._known: frozenset[str] = frozenset()

    def configure(self, names: Iterable[str]) -> None:
        self._known = frozenset(name for name in names if name)

    def label(self, model: str) -> str:
        return model if model in self._known else OTHER


MODELS = ModelNames()


def configure(aliases: Iterable[str], groups: Iterable[str], providers: Iterable[ProviderModels]) -> None:
    """The configuration's names for the model label."""
    names: set[str] = {*aliases, *groups}
    for provider in providers:
        for model in provider.models:
            names.update((model, f"{provider.name}/{model}"))
    MODELS.configure(names)


@dataclass(frozen=True, slots=True)
class ProviderModels:
    name: str
    models: tuple[str, ...]


def breaker_changed(provider: str, state: str) -> None:
    """`state`: a `BreakerState` value ("closed", "half_open", "open")."""
    BREAKER_STATE.labels(provider).set(_BREAKER_VALUES.get(state, 0.0))


def cache_lookup(method: str, result: str) -> None:
    CACHE_LOOKUPS.labels(method, result).inc()


def cache_store(method: str, result: str) -> None:
    CACHE_STORES.labels(method, result).inc()


def cache_error(operation: str) -> None:
    CACHE_ERRORS.labels(operation).inc()


def queue_depth(key: str, depth: int) -> None:
    QUEUE_DEPTH.labels(key).set(depth)


def queue_wait(provider: str, seconds: float) -> None:
    QUEUE_WAIT.labels(provider).observe(seconds)


# -- the HTTP endpoint -------------------------------------------------------------------


@dataclass
class MetricsServer:
    """A running `/metrics` endpoint; `close()` stops it."""

    host: str
    port: int
    _server: WSGIServer
    _thread: threading.Thread

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


def start(settings: MetricsSettings | None, multiprocess_dir: str | None = None) -> MetricsServer | None:
    """The endpoint the `metrics` settings ask for (None: turned off)."""
    if settings is None:
        return None
    try:
        return serve_http(settings.host, settings.port, multiprocess_dir)
    except OSError as exc:
        raise StartupError(f"cannot serve metrics on {settings.host}:{settings.port}: {exc.strerror or exc}") from None


def serve_http(host: str, port: int, multiprocess_dir: str | None = None) -> MetricsServer:
    """Serve `/metrics` from a thread: this process's metrics, or with `multiprocess_dir`
    those every worker process wrote there. Raises OSError when the port cannot be bound."""
    registry: CollectorRegistry = REGISTRY
    if multiprocess_dir is not None:
        registry = CollectorRegistry()
        prometheus_multiprocess.MultiProcessCollector(registry, path=multiprocess_dir)  # type: ignore[no-untyped-call]
    server, thread = start_http_server(port, addr=host, registry=registry)
    return MetricsServer(host, server.server_address[1], server, thread)


@contextlib.contextmanager
def multiprocess_dir() -> Iterator[str]:
    """A fresh directory for the worker processes' figures, named in the environment the
    workers inherit, removed (with the variable) when the block ends. Each run of a
    gateway starts from zero: stale files of an earlier run would add to its counters."""
    path = tempfile.mkdtemp(prefix="portico-metrics-")
    previous = os.environ.get(MULTIPROC_ENV)
    os.environ[MULTIPROC_ENV] = path
    try:
        yield path
    finally:
        if previous is None:
            os.environ.pop(MULTIPROC_ENV, None)
        else:
            os.environ[MULTIPROC_ENV] = previous
        shutil.rmtree(path, ignore_errors=True)


def worker_exited(pid: int) -> None:
    """Drop the live gauges of a worker process that has exited (its counters stay)."""
    path = os.environ.get(MULTIPROC_ENV)
    if path:
        with contextlib.suppress(OSError):
            prometheus_multiprocess.mark_process_dead(pid, path)  # type: ignore[no-untyped-call]

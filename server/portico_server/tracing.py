"""OpenTelemetry traces: a server span per RPC and a client span per upstream attempt.

Configured only by the standard `OTEL_*` environment variables. Tracing is on when
`OTEL_TRACES_EXPORTER` names an exporter (`otlp`, `console`) or an OTLP endpoint is set
(`OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`), and off when
`OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none`. Off, nothing of OpenTelemetry is
imported, no interceptor is installed, and the hooks below cost one flag test.

Spans (each process exports its own: a worker of `portico serve --workers N` too):
- SERVER `portico.v1.LLMService/Chat` (and every LLMService / AdminService method), the
  child of the caller's W3C `traceparent` metadata; `rpc.*` attributes of the gRPC
  conventions; error status for the codes those conventions count as server errors.
- CLIENT `{gen_ai.operation.name} {gen_ai.request.model}` for each upstream attempt: the
  first try, each retry and each fallback target are siblings under the server span, with
  the `gen_ai.*` attributes and `portico.attempt` / `portico.retry`. The attempt's own
  `traceparent` (and `tracestate`) goes on the provider's HTTP request (providers/http.py).
- Prompts and answers go on the client span (`gen_ai.input.messages`,
  `gen_ai.output.messages`) only with `OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true`.
  Metadata values (caller keys among them) and provider headers are never recorded.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import json
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import grpc

from .errors import PorticoError
from .redaction import redact

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Span, Tracer
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    from .domain import ChatRequest, Message, StreamChunk
    from .providers.base import Provider

log = logging.getLogger("portico.tracing")

CONTENT_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
#: The trailer that carries a call's request id (servicer.py sets it).
REQUEST_ID_KEY = "x-request-id"
#: Services whose calls get a server span; health checks and reflection are left out,
#: since probes every few seconds would drown the traces that matter.
TRACED_SERVICES = ("portico.v1.LLMService", "portico.v1.AdminService")

#: Read by the hot paths: False until `setup()` turned tracing on.
enabled = False
_capture_content = False
_provider: TracerProvider | None = None
_tracer: Tracer | None = None
#: W3C trace context only (`traceparent`, `tracestate`): baggage is not passed to providers.
_propagator: TraceContextTextMapPropagator | None = None

#: The upstream attempt whose span context goes on outgoing HTTP requests.
_attempt_span: ContextVar[Span | None] = ContextVar("portico_attempt_span", default=None)
#: Per-RPC bookkeeping (attempt numbers) shared by the attempts of one call.
_rpc: ContextVar[_RpcState | None] = ContextVar("portico_rpc_state", default=None)

#: gen_ai.provider.name for the kinds the GenAI conventions name; other kinds pass as they are.
_PROVIDER_NAMES = {
    "openai": "openai", "azure": "azure.ai.openai", "anthropic": "anthropic", "gemini": "gcp.gemini",
    "deepseek": "deepseek", "groq": "groq", "mistral": "mistral_ai", "perplexity": "perplexity",
    "xai": "x_ai",
}
#: gRPC codes a server reports as errors (the conventions' list); others leave the status unset.
_SERVER_ERRORS = frozenset({
    grpc.StatusCode.UNKNOWN, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNIMPLEMENTED,
    grpc.StatusCode.INTERNAL, grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DATA_LOSS,
})


#: A call cancelled with less than this left (seconds) ended by its deadline.
_DEADLINE_SLACK = 0.05


def _flag(environ: Mapping[str, str], name: str) -> bool:
    return environ.get(name, "").strip().lower() == "true"


def exporters_wanted(environ: Mapping[str, str]) -> list[str]:
    """The exporters the environment asks for; [] when tracing stays off."""
    if _flag(environ, "OTEL_SDK_DISABLED"):
        return []
    named = [e.strip().lower() for e in environ.get("OTEL_TRACES_EXPORTER", "").split(",") if e.strip()]
    if named:
        return [] if "none" in named else named
    if environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        return ["otlp"]
    return []


class TracingConfigError(ValueError):
    """The OTEL_* variables ask for something this gateway cannot do."""


def setup(worker: int | None = None, environ: Mapping[str, str] = os.environ) -> bool:
    """Turn tracing on when the environment asks for it; returns whether it is on."""
    global enabled, _capture_content, _provider, _tracer, _propagator
    exporters = exporters_wanted(environ)
    if not exporters:
        return False
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    extra: dict[str, str | int] = {"process.pid": os.getpid()}
    if worker is not None:
        extra["portico.worker"] = worker
    resource = Resource.create(extra)
    if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
        resource = resource.merge(Resource({"service.name": "portico"}))
    # The sampler comes from OTEL_TRACES_SAMPLER / _ARG, the batch settings from OTEL_BSP_*,
    # attribute limits from OTEL_*_LIMIT: the SDK reads them itself.
    provider = TracerProvider(resource=resource)
    for name in exporters:
        provider.add_span_processor(BatchSpanProcessor(_exporter(name, environ)))
    _provider, _tracer, _propagator = provider, provider.get_tracer("portico"), TraceContextTextMapPropagator()
    _capture_content = _flag(environ, CONTENT_ENV)
    enabled = True
    log.info("tracing on: exporting spans with %s%s", ", ".join(exporters),
             "; message content is recorded" if _capture_content else "")
    return True


def _exporter(name: str, environ: Mapping[str, str]) -> Any:
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    if name != "otlp":
        raise TracingConfigError(f"OTEL_TRACES_EXPORTER: unknown exporter {name!r}; use otlp, console or none")
    protocol = (environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
                or "grpc").strip().lower()
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        # Endpoint, headers, TLS, compression and timeout: from OTEL_EXPORTER_OTLP_*.
        return OTLPSpanExporter()
    if protocol == "http/protobuf":
        try:  # an optional package: not a dependency of ours
            module = importlib.import_module("opentelemetry.exporter.otlp.proto.http.trace_exporter")
        except ImportError:
            raise TracingConfigError(
                "OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf needs the opentelemetry-exporter-otlp-proto-http "
                "package; install it, or use grpc") from None
        return module.OTLPSpanExporter()
    raise TracingConfigError(f"OTEL_EXPORTER_OTLP_PROTOCOL: {protocol!r} is not supported; use grpc")


def shutdown() -> None:
    """Export the spans still buffered and stop the exporters (the gateway is stopping)."""
    global enabled, _provider, _tracer, _propagator
    provider, _provider, _tracer, _propagator, enabled = _provider, None, None, None, False
    if provider is not None:
        provider.shutdown()


# -- server spans ---------------------------------------------------------------------------


@dataclass(slots=True)
class _RpcState:
    attempts: int = 0
    tries: dict[str, int] = field(default_factory=dict)


def server_interceptors(address: str) -> list[grpc.aio.ServerInterceptor]:
    """The interceptors a server needs for tracing: none while tracing is off."""
    return [_ServerSpans(address)] if enabled else []


class _ServerSpans(grpc.aio.ServerInterceptor):  # type: ignore[misc]  # grpc has no type hints
    """Wraps the handlers of the traced services (once per handler) so each call runs
    inside its server span."""

    def __init__(self, address: str) -> None:
        host, _, port = address.rpartition(":")
        self._server_attributes: dict[str, str | int] = {"server.address": host.strip("[]") or address}
        if port.isdigit() and int(port):
            self._server_attributes["server.port"] = int(port)
        self._wrapped: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        method: str = handler_call_details.method  # "/portico.v1.LLMService/Chat"
        cached = self._wrapped.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        wrapped = self._wrap(method.lstrip("/"), handler)
        self._wrapped[method] = (handler, wrapped)
        return wrapped

    def _wrap(self, name: str, handler: grpc.RpcMethodHandler | None) -> grpc.RpcMethodHandler:
        if handler is None or name.rpartition("/")[0] not in TRACED_SERVICES:
            return handler
        attributes = {"rpc.system.name": "grpc", "rpc.method": name, **self._server_attributes}
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                _traced_call(name, attributes, handler.unary_unary),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            inner = handler.unary_stream
            behaviour = (_traced_generator(name, attributes, inner) if inspect.isasyncgenfunction(inner)
                         else _traced_call(name, attributes, inner))
            return grpc.unary_stream_rpc_method_handler(
                behaviour,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler  # client-streaming methods: none in the traced services


def _traced_call(name: str, attributes: Mapping[str, str | int], inner: Any) -> Any:
    async def call(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        with _server_span(name, attributes, context) as done:
            result = await inner(request, context)
            done.append(True)
            return result

    return call


def _traced_generator(name: str, attributes: Mapping[str, str | int], inner: Any) -> Any:
    async def generate(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
        with _server_span(name, attributes, context) as done:
            async for item in inner(request, context):
                yield item
            done.append(True)

    return generate


@contextlib.contextmanager
def _server_span(
    name: str, attributes: Mapping[str, str | int], context: grpc.aio.ServicerContext[Any, Any]
) -> Any:
    """The server span of one call, current (OpenTelemetry's context) while it runs; the
    yielded list gets an item when the handler returned normally."""
    from opentelemetry import context as otel_context
    from opentelemetry import trace

    assert _tracer is not None and _propagator is not None
    carrier = {k: v for k, v in context.invocation_metadata() or () if k in ("traceparent", "tracestate")}
    parent = _propagator.extract(carrier) if carrier else None
    span = _tracer.start_span(name, context=parent, kind=trace.SpanKind.SERVER, attributes=attributes)
    if span.is_recording():
        _peer(span, context)
    token = otel_context.attach(trace.set_span_in_context(span))
    state = _rpc.set(_RpcState())
    done: list[bool] = []
    code = grpc.StatusCode.UNKNOWN
    try:
        yield done
    except BaseException as exc:
        code = _code_of_failure(exc, context)
        raise
    finally:
        if done:
            code = _set_code(context) or grpc.StatusCode.OK
        _rpc.reset(state)
        otel_context.detach(token)
        _end_server_span(span, code, context)


def _code_of_failure(exc: BaseException, context: grpc.aio.ServicerContext[Any, Any]) -> grpc.StatusCode:
    code = _set_code(context) if isinstance(exc, grpc.aio.AbortError) else None
    if code is not None:
        return code
    # Cancelled (or aborting a call that is already over): the caller's own deadline timer
    # often fires a moment before ours and cancels the call, so little time left means
    # the deadline, not a caller giving up.
    remaining = context.time_remaining()
    if remaining is not None and remaining < _DEADLINE_SLACK:
        return grpc.StatusCode.DEADLINE_EXCEEDED
    if not isinstance(exc, Exception) or context.cancelled():
        return grpc.StatusCode.CANCELLED
    return grpc.StatusCode.UNKNOWN


def _set_code(context: grpc.aio.ServicerContext[Any, Any]) -> grpc.StatusCode | None:
    code = context.code()
    if code is None or isinstance(code, grpc.StatusCode):
        return code
    return next((c for c in grpc.StatusCode if c.value[0] == code), None)


def _peer(span: Span, context: grpc.aio.ServicerContext[Any, Any]) -> None:
    peer = context.peer() or ""  # "ipv4:127.0.0.1:53124", "ipv6:[::1]:53124", "unix:/path"
    kind, _, rest = peer.partition(":")
    if kind in ("ipv4", "ipv6"):
        host, _, port = rest.rpartition(":")
        attributes: dict[str, str | int] = {"network.peer.address": host.strip("[]"), "network.transport": "tcp"}
        if port.isdigit():
            attributes["network.peer.port"] = int(port)
        span.set_attributes(attributes)


def _end_server_span(span: Span, code: grpc.StatusCode, context: grpc.aio.ServicerContext[Any, Any]) -> None:
    from opentelemetry.trace import Status, StatusCode

    attributes = {"rpc.response.status_code": code.name}
    # The call's request id (the caller's `x-request-id` or the one the gateway made), to
    # find the call's log line from its trace and back.
    request_id = next((v for k, v in context.trailing_metadata() or () if k == REQUEST_ID_KEY), None)
    if isinstance(request_id, str):
        attributes["portico.request_id"] = request_id
    if code in _SERVER_ERRORS:
        attributes["error.type"] = code.name
        span.set_status(Status(StatusCode.ERROR, code.name))
    span.set_attributes(attributes)
    span.end()


# -- client spans (one per upstream attempt) -------------------------------------------------


def start_attempt(operation: str, provider: Provider, model: str, request: object | None) -> Attempt:
    """The span of an upstream attempt now starting (tracing is on); current for outgoing
    HTTP requests until it ends."""
    from opentelemetry import trace

    assert _tracer is not None
    target = f"{provider.name}/{model}"
    state = _rpc.get()
    if state is None:
        state = _RpcState()
    state.attempts += 1
    retry = state.tries.get(target, 0)
    state.tries[target] = retry + 1
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": operation,
        "gen_ai.provider.name": _PROVIDER_NAMES.get(provider.configured_kind(), provider.configured_kind()),
        "gen_ai.request.model": model,
        "portico.provider": provider.name,
        "portico.attempt": state.attempts,
        "portico.retry": retry,
    }
    attributes.update(_server_of(getattr(provider, "base_url", "")))
    if request is not None and operation == "chat":
        attributes.update(_request_attributes(request))  # type: ignore[arg-type]
    span = _tracer.start_span(f"{operation} {model}", kind=trace.SpanKind.CLIENT, attributes=attributes)
    if _capture_content and request is not None and operation == "chat" and span.is_recording():
        span.set_attribute("gen_ai.input.messages", _messages_json(request.messages))  # type: ignore[attr-defined]
    _attempt_span.set(span)
    return Attempt(span, operation)


def _server_of(base_url: str) -> dict[str, str | int]:
    if not base_url:
        return {}
    parts = urlsplit(base_url)
    out: dict[str, str | int] = {}
    if parts.hostname:
        out["server.address"] = parts.hostname
        out["server.port"] = parts.port or (443 if parts.scheme == "https" else 80)
    return out


def _request_attributes(request: ChatRequest) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if request.temperature is not None:
        out["gen_ai.request.temperature"] = request.temperature
    if request.top_p is not None:
        out["gen_ai.request.top_p"] = request.top_p
    if request.max_tokens is not None:
        out["gen_ai.request.max_tokens"] = request.max_tokens
    if request.seed is not None:
        out["gen_ai.request.seed"] = request.seed
    if request.stop:
        out["gen_ai.request.stop_sequences"] = list(request.stop)
    return out


class Attempt:
    """The span of one upstream attempt; `succeeded` or `failed` ends it."""

    __slots__ = ("_finish", "_model", "_operation", "_span", "_text", "_tool_calls", "_usage")

    def __init__(self, span: Span, operation: str) -> None:
        self._span, self._operation = span, operation
        self._text: list[str] = []
        self._model = ""
        self._finish = ""
        self._usage: Any = None
        self._tool_calls: list[Any] = []

    def chunk(self, chunk: StreamChunk) -> None:
        """A chunk of a streamed answer went to the caller."""
        if _capture_content and chunk.content:
            self._text.append(chunk.content)
        if chunk.is_final:
            self._model = chunk.model
            self._finish = chunk.raw_stop_reason or chunk.stop_reason.value
            self._usage = chunk.usage
            self._tool_calls = chunk.tool_calls

    def succeeded(self, result: object | None = None) -> None:
        span = self._span
        if _attempt_span.get() is span:
            _attempt_span.set(None)
        if not span.is_recording():
            span.end()
            return
        model, finish, usage, tools = self._model, self._finish, self._usage, self._tool_calls
        text = "".join(self._text)
        if result is not None:
            model = getattr(result, "model", "") or ""
            usage = getattr(result, "usage", None)
            stop = getattr(result, "stop_reason", None)
            if stop is not None:
                finish = getattr(result, "raw_stop_reason", "") or stop.value
                text = getattr(result, "content", "")
                tools = getattr(result, "tool_calls", [])
        attributes: dict[str, Any] = {}
        if model:
            attributes["gen_ai.response.model"] = model
        if finish:
            attributes["gen_ai.response.finish_reasons"] = [finish]
        if usage is not None:
            attributes["gen_ai.usage.input_tokens"] = usage.prompt_tokens
            if self._operation != "embeddings":
                attributes["gen_ai.usage.output_tokens"] = usage.completion_tokens
        if _capture_content and finish:
            attributes["gen_ai.output.messages"] = _output_json(text, tools, finish)
        span.set_attributes(attributes)
        span.end()

    def failed(self, exc: BaseException) -> None:
        from opentelemetry.trace import Status, StatusCode

        span = self._span
        if _attempt_span.get() is span:
            _attempt_span.set(None)
        if isinstance(exc, PorticoError):
            # Messages quoting the upstream are redacted where they are made; once more costs little.
            error_type, description = exc.reason, redact(exc.message)
            status = getattr(exc, "status", 0)
            if status:
                span.set_attribute("http.response.status_code", status)
        elif not isinstance(exc, Exception):
            error_type, description = "cancelled", "the call was cancelled"
        else:
            error_type, description = type(exc).__qualname__, type(exc).__qualname__
        span.set_attribute("error.type", error_type)
        span.set_status(Status(StatusCode.ERROR, description))
        span.end()


def inject(headers: dict[str, str]) -> None:
    """Add `traceparent` (and `tracestate`) for the current upstream attempt, or else the
    current server span, to an outgoing HTTP request's headers."""
    from opentelemetry import trace
    assert _propagator is not None
    span = _attempt_span.get()
    context = trace.set_span_in_context(span) if span is not None else None
    _propagator.inject(headers, context=context)


# -- message content (only with OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true) -------


def _messages_json(messages: list[Message]) -> str:
    """Chat history in the GenAI conventions' message shape; media as type and MIME only."""
    out = []
    for message in messages:
        parts: list[dict[str, Any]] = []
        if message.tool_call_id:
            parts.append({"type": "tool_call_response", "id": message.tool_call_id, "response": message.text()})
        elif message.parts:
            for part in message.parts:
                if part.text is not None:
                    parts.append({"type": "text", "content": part.text})
                elif part.reasoning is not None and part.reasoning.text:
                    parts.append({"type": "reasoning", "content": part.reasoning.text})
                elif part.media is not None:
                    parts.append({"type": "uri" if part.media.uri else "blob", "mime_type": part.media.mime_type})
        elif message.content:
            parts.append({"type": "text", "content": message.content})
        parts.extend({"type": "tool_call", "id": c.id, "name": c.name, "arguments": c.arguments}
                     for c in message.tool_calls)
        out.append({"role": message.role.value, "parts": parts})
    return json.dumps(out, ensure_ascii=False)


def _output_json(text: str, tool_calls: list[Any], finish: str) -> str:
    parts: list[dict[str, Any]] = [{"type": "text", "content": text}] if text else []
    parts.extend({"type": "tool_call", "id": c.id, "name": c.name, "arguments": c.arguments} for c in tool_calls)
    return json.dumps([{"role": "assistant", "parts": parts, "finish_reason": finish}], ensure_ascii=False)


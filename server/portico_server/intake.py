"""Decoding LLMService and VectorService requests without stalling the event loop.

gRPC normally decodes a request on the event loop before the handler runs. Here each
handler receives the raw bytes instead: their length is checked against
`server.max_message_bytes`, their items are counted against `server.limits`
(`wire_census`), and only then are they decoded. A request above `offload.HEAVY_BYTES`
is counted and decoded in a worker thread and the call is marked heavy, so its later
steps leave the loop too. Responses may be messages or bytes the servicer already
encoded (stream deltas).
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any, TypeAlias

import grpc
from google.protobuf.message import DecodeError, Message
from portico.v1 import llm_service_pb2_grpc

from . import offload, wire_census
from .config import RequestLimits
from .errors import InvalidRequest, RequestTooLarge

Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]
#: `fail(context, exc, method=<the method's name>)`.
Fail: TypeAlias = Callable[..., Any]
#: Counts a call for its whole life (app.py: which configuration's providers it may use).
Track: TypeAlias = Callable[[], AbstractContextManager[Any]]


class RequestDecoder:
    def __init__(self, limits: RequestLimits, max_bytes: int) -> None:
        self.census = wire_census.Census(limits)
        self.max_bytes = max_bytes

    async def decode(self, raw: bytes, message_type: type[Message]) -> Message:
        if len(raw) > self.max_bytes:
            fields = message_type.DESCRIPTOR.fields_by_name
            raise RequestTooLarge(
                f"request is {len(raw)} bytes; the gateway accepts at most {self.max_bytes}",
                limit=f"server.max_message_bytes={self.max_bytes}",
                field=next((name for name in ("messages", "inputs", "records") if name in fields), ""),
            )
        if len(raw) <= offload.HEAVY_BYTES:
            return self._decode(raw, message_type)
        offload.mark_heavy()
        return await asyncio.to_thread(self._decode, raw, message_type)

    def _decode(self, raw: bytes, message_type: type[Message]) -> Message:
        self.census.check(raw, message_type.DESCRIPTOR)  # type: ignore[arg-type]
        try:
            return message_type.FromString(raw)
        except DecodeError:
            name = message_type.DESCRIPTOR.full_name
            raise InvalidRequest([], f"the request is not a valid {name} protobuf message") from None


class _Capture:
    """Stands in for a server to collect the handlers the generated code registers."""

    def __init__(self) -> None:
        self.handlers: dict[str, grpc.RpcMethodHandler] = {}
        self.service = ""

    def add_generic_rpc_handlers(self, handlers: Any) -> None:
        pass

    def add_registered_method_handlers(self, service: str, handlers: dict[str, grpc.RpcMethodHandler]) -> None:
        self.service, self.handlers = service, handlers


def add_to_server(
    servicer: Any, server: grpc.aio.Server, decoder: RequestDecoder, fail: Fail, track: Track = nullcontext,
    register: Callable[[Any, Any], None] = llm_service_pb2_grpc.add_LLMServiceServicer_to_server,
) -> None:
    """Register `servicer` (as LLMService, or through another generated `register`
    function) with every request decoded by `decoder`; `fail(context, exc, method=name)`
    aborts a call whose request is refused; each call runs inside `track()`."""
    capture = _Capture()
    register(servicer, capture)
    if not capture.handlers:
        raise RuntimeError(f"the generated code of {register.__name__} registered no method handlers")
    handlers: dict[str, grpc.RpcMethodHandler] = {}
    for name, handler in capture.handlers.items():
        message_type = handler.request_deserializer.__self__  # the request class's FromString
        refuse = functools.partial(fail, method=name)
        if handler.unary_unary is not None:
            handlers[name] = grpc.unary_unary_rpc_method_handler(
                _unary(handler.unary_unary, message_type, decoder, refuse, track),
                response_serializer=_serialize,
            )
        elif handler.unary_stream is not None:
            handlers[name] = grpc.unary_stream_rpc_method_handler(
                _streaming(handler.unary_stream, message_type, decoder, refuse, track),
                response_serializer=_serialize,
            )
        else:  # client streaming is not decoded per message here
            handlers[name] = handler
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(capture.service, handlers),))
    server.add_registered_method_handlers(capture.service, handlers)


def _serialize(response: Message | bytes) -> bytes:
    """Responses the servicer encoded itself (stream deltas) pass through as they are."""
    return response if type(response) is bytes else response.SerializeToString()  # type: ignore[union-attr]


def _unary(inner: Any, message_type: type[Message], decoder: RequestDecoder, fail: Fail, track: Track) -> Any:
    async def handle(raw: bytes, context: Context) -> Any:
        with track():
            try:
                request = await decoder.decode(raw, message_type)
            except Exception as exc:
                await fail(context, exc)
                raise
            return await inner(request, context)

    return handle


def _streaming(inner: Any, message_type: type[Message], decoder: RequestDecoder, fail: Fail, track: Track) -> Any:
    if inspect.isasyncgenfunction(inner):

        async def generate(raw: bytes, context: Context) -> AsyncIterator[Any]:
            with track():
                try:
                    request = await decoder.decode(raw, message_type)
                except Exception as exc:
                    await fail(context, exc)
                    raise
                async for item in inner(request, context):
                    yield item

        return generate
    return _unary(inner, message_type, decoder, fail, track)

"""Registers a service's handlers so that bytes which are not its request message get
INVALID_ARGUMENT with details, instead of grpc's UNKNOWN naming a Python exception.

grpc calls the request deserializer before any handler code runs and turns whatever it
raises into UNKNOWN. Here the deserializer never raises: it hands the handler a marker,
and the handler answers the marker with the error table's status.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
from google.protobuf import descriptor, message, message_factory

from .errors import InvalidRequest
from .status import to_rpc_status


class Undecodable:
    """What the handler receives in place of a request that did not decode."""

    def __init__(self, type_name: str, problem: str) -> None:
        self.type_name = type_name
        self.problem = problem

    def error(self) -> InvalidRequest:
        return InvalidRequest([], message=(
            f"the request body is not a valid {self.type_name} protobuf message ({self.problem}); "
            "check that client and server use the same .proto files"
        ))


def _deserializer(cls: type[message.Message]) -> Callable[[bytes], Any]:
    name = cls.DESCRIPTOR.full_name

    def decode(data: bytes) -> Any:
        try:
            return cls.FromString(data)
        except Exception as exc:  # DecodeError, or whatever else a hostile payload trips
            return Undecodable(name, str(exc) or type(exc).__name__)

    return decode


def _guard(behavior: Callable[..., Any]) -> Callable[..., Any]:
    if inspect.isasyncgenfunction(behavior):

        async def guarded_stream(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
            if isinstance(request, Undecodable):
                await context.abort_with_status(to_rpc_status(request.error()))
            async for item in behavior(request, context):
                yield item

        return guarded_stream

    async def guarded(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        if isinstance(request, Undecodable):
            await context.abort_with_status(to_rpc_status(request.error()))
        return await behavior(request, context)

    return guarded


def add_service(server: grpc.aio.Server, service: descriptor.ServiceDescriptor, servicer: object) -> None:
    """Register `servicer`'s methods for every method of `service` (unary requests only)."""
    handlers: dict[str, grpc.RpcMethodHandler] = {}
    for method in service.methods:
        if method.client_streaming:
            raise ValueError(f"{method.full_name}: client-streaming methods are not supported here")
        request = message_factory.GetMessageClass(method.input_type)
        response = message_factory.GetMessageClass(method.output_type)
        make = grpc.unary_stream_rpc_method_handler if method.server_streaming else grpc.unary_unary_rpc_method_handler
        handlers[method.name] = make(
            _guard(getattr(servicer, method.name)),
            request_deserializer=_deserializer(request),
            response_serializer=response.SerializeToString,
        )
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service.full_name, handlers),))
    server.add_registered_method_handlers(service.full_name, handlers)

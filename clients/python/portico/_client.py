"""`Client`: the blocking client."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Unpack, overload

import grpc

from ._channel import DEFAULT_MAX_MESSAGE_BYTES, TLS
from ._core import DEFAULT_KEEPALIVE_TIME, DEFAULT_TIMEOUT, ClientCore, ModelT, parse_structured
from ._messages import MessagesLike
from ._request import (
    CallOptions,
    CapabilitiesOptions,
    ChatOptions,
    CountTokensOptions,
    EmbedOptions,
    MetadataLike,
    capabilities_request,
    chat_request,
    check_options,
    count_tokens_request,
    embed_request,
)
from ._retry import DEFAULT_RETRY, RetryPolicy
from ._status import error_from_rpc
from ._stream import ChatStream, FailoverCallback
from ._trace import ChatResponse, EmbedResult, Provider, TokenCount, trace_from_metadata
from ._vectors import Vectors
from .v1 import llm_service_pb2, llm_service_pb2_grpc


class Client:
    """A blocking Portico client over one gRPC channel. Close it, or use `with`.

    `address` defaults to $PORTICO_ADDRESS, else 127.0.0.1:50051. `timeout` is the
    default deadline of every call in seconds (None: none); `metadata` goes with every call.

    `api_key` (default: $PORTICO_API_KEY) is the caller key, sent on every call as
    `authorization: Bearer <key>`, over TLS or not. `ca_file` (the CA that signed the
    gateway's certificate) and `cert_file` + `key_file` (a client certificate, for mutual
    TLS) are PEM file paths, and any of them turns TLS on; `tls=True` alone verifies the
    gateway against the system's roots, and `TLS(...)` gives every setting (PEM bytes, a
    server name override) instead of the files.

    A call is sent again, after a wait, only when the gateway says that is safe (`retry_safe`
    in its details) and waiting can help: UNAVAILABLE, or RESOURCE_EXHAUSTED with a
    RetryInfo delay, which is then waited exactly. `retry` says how often and how
    patiently; None: never.
    """

    def __init__(
        self,
        address: str | None = None,
        *,
        api_key: str | None = None,
        tls: bool | TLS = False,
        ca_file: str | Path | None = None,
        cert_file: str | Path | None = None,
        key_file: str | Path | None = None,
        metadata: MetadataLike | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = DEFAULT_RETRY,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        keepalive_time: float | None = DEFAULT_KEEPALIVE_TIME,
    ) -> None:
        self._core = ClientCore(
            address,
            tls=tls,
            api_key=api_key,
            ca_file=ca_file,
            cert_file=cert_file,
            key_file=key_file,
            metadata=metadata,
            timeout=timeout,
            retry=retry,
            max_message_bytes=max_message_bytes,
            keepalive_time=keepalive_time,
        )
        self._channel = self._core.channel.sync_channel()
        #: The generated stub, for anything the helpers below do not cover.
        self.stub = llm_service_pb2_grpc.LLMServiceStub(self._channel)
        #: The vector store (VectorService): collections, upsert, similarity search.
        self.vectors = Vectors(self._channel, self._call)

    @property
    def address(self) -> str:
        return self._core.address

    @property
    def channel(self) -> grpc.Channel:
        """The gRPC channel, with this client's TLS settings, for the gateway's other
        services (health, admin); pass `metadata=client.metadata` on those calls."""
        return self._channel

    @property
    def metadata(self) -> list[tuple[str, str | bytes]]:
        """What every call of this client sends: the caller key's `authorization`, then
        the client's `metadata`."""
        return list(self._core.metadata)

    @overload
    def chat(
        self, messages: MessagesLike, *, response_model: None = None, **options: Unpack[ChatOptions]
    ) -> ChatResponse: ...

    @overload
    def chat(
        self, messages: MessagesLike, *, response_model: type[ModelT], **options: Unpack[ChatOptions]
    ) -> ModelT: ...

    def chat(
        self,
        messages: MessagesLike,
        *,
        response_model: type[ModelT] | None = None,
        **options: Unpack[ChatOptions],
    ) -> ChatResponse | ModelT:
        """The complete answer, with the gateway's attempt trace (`attempts`,
        `overhead_ms`). With `response_model` (a pydantic class) the model is asked for
        JSON matching its schema, and the parsed instance is returned."""
        check_options(options, ChatOptions, "chat")
        request = chat_request(messages, options, response_model=response_model)
        response, call = self._call(self.stub.Chat.with_call, request, options)
        if response_model is not None:
            return parse_structured(response, response_model)
        return ChatResponse(response, trace_from_metadata(call.trailing_metadata()))

    def stream(
        self,
        messages: MessagesLike,
        *,
        on_failover: FailoverCallback | None = None,
        **options: Unpack[ChatOptions],
    ) -> ChatStream:
        """The answer as a stream of chunks; use as `with client.stream(...) as stream:`.
        `on_failover` is called with each failover marker (see `stream_failover`)."""
        check_options(options, ChatOptions, "stream")
        request = chat_request(messages, options)
        attempts = self._core.attempts(options)
        return ChatStream(lambda: self.stub.StreamChat(request, **self._core.call_kwargs(options, attempts)),
                          attempts, on_failover)

    def embed(
        self, inputs: str | Sequence[str], **options: Unpack[EmbedOptions]
    ) -> EmbedResult:
        """One vector per input, in input order, with the gateway's attempt trace."""
        check_options(options, EmbedOptions, "embed")
        response, call = self._call(self.stub.Embed.with_call, embed_request(inputs, options), options)
        return EmbedResult(response, trace_from_metadata(call.trailing_metadata()))

    def count_tokens(
        self, messages: MessagesLike, **options: Unpack[CountTokensOptions]
    ) -> TokenCount:
        """The tokens a chat request with these messages (and tools) would use, with the
        gateway's attempt trace."""
        check_options(options, CountTokensOptions, "count_tokens")
        response, call = self._call(self.stub.CountTokens.with_call, count_tokens_request(messages, options), options)
        return TokenCount(response, trace_from_metadata(call.trailing_metadata()))

    def capabilities(self, **options: Unpack[CapabilitiesOptions]) -> llm_service_pb2.Capabilities:
        """What a provider and model can do (default: the provider's default model)."""
        check_options(options, CapabilitiesOptions, "capabilities")
        response: llm_service_pb2.GetCapabilitiesResponse = self._call(
            self.stub.GetCapabilities, capabilities_request(options), options
        )
        return response.capabilities

    def providers(self, **options: Unpack[CallOptions]) -> list[Provider]:
        """The configured providers, in configuration order, with their health."""
        check_options(options, CallOptions, "providers")
        found: list[Provider] = []
        token = ""
        while True:  # every page, so callers never see pagination
            page: llm_service_pb2.ListProvidersResponse = self._call(
                self.stub.ListProviders, llm_service_pb2.ListProvidersRequest(page_token=token), options
            )
            found.extend(Provider(p) for p in page.providers)
            token = page.next_page_token
            if not token:
                return found

    def _call(self, method: Any, request: Any, options: CallOptions) -> Any:
        attempts = self._core.attempts(options)
        while True:
            try:
                return method(request, **self._core.call_kwargs(options, attempts))
            except grpc.RpcError as exc:
                error = error_from_rpc(exc)
                delay = attempts.delay_before_next(error)
                if delay is None:
                    raise error from exc
            time.sleep(delay)

    def close(self) -> None:
        """Closes the channel; calls still open are cancelled."""
        self._channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

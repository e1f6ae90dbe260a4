"""Streamed answers: iterate chunks or text, then take the assembled final response.

A stream may move to another target mid-way (the request's `stream_failover`): a chunk
with `failover` set says so. On RESTART what came before it is discarded, on CONTINUE it
is kept; the assembled response, and `text`, hold only the final answer either way.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Generator, Iterator
from types import TracebackType
from typing import Any

import grpc

from ._errors import IncompleteStreamError
from ._retry import Attempts
from ._status import error_from_rpc
from ._trace import NO_TRACE, Attempt, ChatResponse, Trace, trace_from_metadata
from .v1 import llm_service_pb2, types_pb2

#: Called with each failover marker as it arrives, before any text of the new target.
FailoverCallback = Callable[[llm_service_pb2.Failover], None]


class StreamAssembler:
    """Builds the complete answer from a stream's chunks, as `chat` would have returned it."""

    def __init__(self) -> None:
        self._content: list[str] = []
        self._reasoning: list[str] = []
        self._model = ""
        self._provider = ""
        self._metadata: dict[str, str] = {}
        self.final: llm_service_pb2.StreamChunk | None = None
        #: The failover markers received, in order.
        self.failovers: list[llm_service_pb2.Failover] = []

    def add(self, chunk: llm_service_pb2.StreamChunk) -> None:
        if chunk.HasField("failover"):
            self._fail_over(chunk.failover)
            return
        self._content.append(chunk.content)
        self._reasoning.append(chunk.reasoning_content)
        self._model = chunk.model or self._model
        self._provider = chunk.provider or self._provider
        self._metadata.update(chunk.metadata)
        if chunk.final:
            self.final = chunk

    def _fail_over(self, marker: llm_service_pb2.Failover) -> None:
        self.failovers.append(marker)
        if marker.mode == llm_service_pb2.STREAM_FAILOVER_RESTART:
            # Everything so far belonged to an answer the gateway abandoned.
            self._content.clear()
            self._reasoning.clear()
            self._metadata.clear()
        self._provider = marker.provider or self._provider
        self._model = marker.model or self._model

    @property
    def text(self) -> str:
        return "".join(self._content)

    def response(self) -> llm_service_pb2.CompletionResponse:
        final = self.final
        if final is None:
            raise IncompleteStreamError("the stream ended without its final chunk")
        return llm_service_pb2.CompletionResponse(
            content="".join(self._content),
            role=types_pb2.ROLE_ASSISTANT,
            tool_calls=final.tool_calls,
            stop_reason=final.stop_reason,
            raw_stop_reason=final.raw_stop_reason,
            usage=final.usage,
            model=self._model,
            provider=self._provider,
            reasoning_content="".join(self._reasoning),
            metadata=self._metadata,
            parts=final.parts,
        )


class _StreamState:
    """What ChatStream and AsyncChatStream share: the assembler and what the end brought."""

    def __init__(self, attempts: Attempts, on_failover: FailoverCallback | None) -> None:
        self._attempts = attempts
        self._on_failover = on_failover
        self._assembler = StreamAssembler()
        self._trace: Trace = NO_TRACE
        self._closed = False

    def _take(self, chunk: llm_service_pb2.StreamChunk) -> None:
        self._assembler.add(chunk)
        if self._on_failover is not None and chunk.HasField("failover"):
            self._on_failover(chunk.failover)

    @property
    def failovers(self) -> list[llm_service_pb2.Failover]:
        """The failover markers received so far: each says another target took over."""
        return self._assembler.failovers

    @property
    def text(self) -> str:
        """The answer's text so far, as the final response will hold it: after a RESTART
        marker, only the new target's text."""
        return self._assembler.text

    @property
    def attempts(self) -> list[Attempt]:
        """The gateway's attempt trace; filled when the stream has ended."""
        return self._trace.attempts

    @property
    def overhead_ms(self) -> float | None:
        """The gateway's own milliseconds; set when the stream has ended."""
        return self._trace.overhead_ms

    def _final(self) -> ChatResponse:
        return ChatResponse(self._assembler.response(), self._trace)


class ChatStream(_StreamState):
    """A streamed answer. Iterate it for `StreamChunk`s, or `text_stream` for the text.

    Use it as a context manager: leaving the block cancels a stream not read to its end,
    which closes the provider's response at once. A retry-safe failure before the first
    chunk starts the call again, as for `chat`; a failure after it is raised.

    With `stream_failover="restart"` a failed provider's text is discarded and another
    target's whole answer follows: `text_stream` goes on with the new text (text already
    handed out cannot be taken back), `failovers` (and the `on_failover` callback) tell
    that it happened, and `text` and the final response hold only the new answer.
    """

    def __init__(self, start: Callable[[], Any], attempts: Attempts,
                 on_failover: FailoverCallback | None = None) -> None:
        super().__init__(attempts, on_failover)
        self._start = start
        self._call = start()
        self._chunks = self._read()

    def _read(self) -> Generator[llm_service_pb2.StreamChunk, None, None]:
        # A failure before the first chunk may be retried like a unary call; after it,
        # a retry would repeat text the caller already has, so the failure is final.
        received = False
        while True:
            try:
                for chunk in self._call:
                    received = True
                    self._take(chunk)
                    yield chunk
                self._trace = trace_from_metadata(self._call.trailing_metadata())
                return
            except grpc.RpcError as exc:
                error = error_from_rpc(exc)
                delay = None if received or self._closed else self._attempts.delay_before_next(error)
                if delay is None:
                    raise error from exc
            time.sleep(delay)
            if self._closed:
                return
            self._call = self._start()

    def __iter__(self) -> Iterator[llm_service_pb2.StreamChunk]:
        return self._chunks

    def __next__(self) -> llm_service_pb2.StreamChunk:
        return next(self._chunks)

    @property
    def text_stream(self) -> Iterator[str]:
        """The answer's text as it arrives (chunks without text are skipped)."""
        return (chunk.content for chunk in self._chunks if chunk.content)

    def get_final_response(self) -> ChatResponse:
        """Reads the rest of the stream and returns the assembled answer with its trace."""
        for _ in self._chunks:
            pass
        return self._final()

    def close(self) -> None:
        """Cancels the call if it is still open."""
        self._closed = True
        self._call.cancel()
        self._chunks.close()

    def __enter__(self) -> ChatStream:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AsyncChatStream(_StreamState):
    """The asyncio twin of `ChatStream`: `async for`, `async with`, awaitable final response."""

    def __init__(self, start: Callable[[], Any], attempts: Attempts,
                 on_failover: FailoverCallback | None = None) -> None:
        super().__init__(attempts, on_failover)
        self._start = start
        self._call = start()
        self._chunks = self._read()

    async def _read(self) -> AsyncGenerator[llm_service_pb2.StreamChunk, None]:
        received = False  # as in ChatStream: only a failure before the first chunk is retried
        while True:
            try:
                async for chunk in self._call:
                    received = True
                    self._take(chunk)
                    yield chunk
                self._trace = trace_from_metadata(await self._call.trailing_metadata())
                return
            except grpc.RpcError as exc:
                error = error_from_rpc(exc)
                delay = None if received or self._closed else self._attempts.delay_before_next(error)
                if delay is None:
                    raise error from exc
            await asyncio.sleep(delay)
            if self._closed:
                return
            self._call = self._start()

    def __aiter__(self) -> AsyncIterator[llm_service_pb2.StreamChunk]:
        return self._chunks

    async def __anext__(self) -> llm_service_pb2.StreamChunk:
        return await anext(self._chunks)

    @property
    def text_stream(self) -> AsyncIterator[str]:
        """The answer's text as it arrives (chunks without text are skipped)."""
        return (chunk.content async for chunk in self._chunks if chunk.content)

    async def get_final_response(self) -> ChatResponse:
        """Reads the rest of the stream and returns the assembled answer with its trace."""
        async for _ in self._chunks:
            pass
        return self._final()

    async def close(self) -> None:
        """Cancels the call if it is still open."""
        self._closed = True
        self._call.cancel()
        await self._chunks.aclose()

    async def __aenter__(self) -> AsyncChatStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

"""The `replicate` provider: language models hosted on Replicate, through its predictions
API. A call creates a prediction; a unary call asks the API to wait for it
(`Prefer: wait`) and polls `urls.get` when it is not finished by then; a stream reads
the prediction's `urls.stream` (Server-Sent Events: `output`, `error`, `done`). A caller
that goes away, or a deadline that passes, cancels the prediction (`urls.cancel`), so
nobody pays for an answer no one reads."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncGenerator, Mapping
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field

from ... import jsonwire, offload
from ...call import NO_CALL, CallContext
from ...config import ProviderSettings
from ...domain import Capabilities, ChatRequest, CompletionResponse, ContentPart, Source, StopReason, StreamChunk
from ...errors import PorticoError, UpstreamDeadlineExceeded, UpstreamError, UpstreamProtocol, UpstreamTimeout
from ..http import HttpProvider
from . import errors, prediction
from .prompt import RESERVED, build_input, target

log = logging.getLogger("portico.providers.replicate")

DEFAULT_BASE_URL = "https://api.replicate.com/v1"
#: The longest `Prefer: wait` Replicate honours.
MAX_WAIT_SECONDS = 60
_PROBE_TIMEOUT = 15.0


class ReplicateOptions(BaseModel):
    """`options:` of a `replicate` provider."""

    model_config = ConfigDict(extra="forbid")

    #: Seconds a unary call asks the API to hold the create request open (`Prefer:
    #: wait=N`); shortened to fit the caller's deadline.
    wait_seconds: int = Field(default=MAX_WAIT_SECONDS, ge=1, le=MAX_WAIT_SECONDS)
    #: Seconds between looks at a prediction that was not finished within the wait.
    poll_interval: float = Field(default=1.0, gt=0, le=60)
    #: Models (owner/name, as configured) that take `messages` instead of `prompt`.
    messages_models: list[str] = Field(default_factory=list)
    #: The input that carries the request's max_tokens (`max_new_tokens` on older models).
    max_tokens_field: str = "max_tokens"
    #: After a stream's `done`, read the prediction once for its token counts; without
    #: them (or with this off) usage is Portico's estimate, marked as one.
    usage_lookup: bool = True
    #: Bound on a cancel request, which no caller waits for.
    cancel_timeout: float = Field(default=5.0, gt=0)


class ReplicateProvider(HttpProvider):
    kind: ClassVar[str] = "replicate"
    reserved_passthrough = RESERVED
    Options = ReplicateOptions
    options: ReplicateOptions
    default_base_url = DEFAULT_BASE_URL

    def __init__(self, settings: ProviderSettings) -> None:
        super().__init__(settings)
        self._cancels: set[asyncio.Task[None]] = set()

    async def close(self) -> None:
        if self._cancels:
            await asyncio.wait(self._cancels, timeout=self.options.cancel_timeout)
        await super().close()

    # -- requests -------------------------------------------------------------------------

    def prediction_body(self, request: ChatRequest, *, stream: bool) -> tuple[str, dict[str, Any]]:
        """(path, body) of the request that creates the prediction."""
        where = target(request.model)
        name = request.model.partition(":")[0]
        input_format: Literal["prompt", "messages"] = (
            "messages" if name in self.options.messages_models else "prompt")
        body: dict[str, Any] = {}
        if where.version:
            body["version"] = where.version
        body["input"] = build_input(request, input_format, self.options.max_tokens_field, self.name)
        if stream:
            body["stream"] = True
        return where.path, body

    async def chat(self, request: ChatRequest, call: CallContext = NO_CALL) -> CompletionResponse:
        path, body = await offload.run(self.prediction_body, request, stream=False)
        total, _ = self.total_timeout(None, call)
        # A wait longer than the call may last would leave no time to learn the
        # prediction's id, and so no way to cancel it.
        wait = max(1, min(self.options.wait_seconds, int(total) - 1))
        created = await self._create(path, body, call, {"prefer": f"wait={wait}"})
        finished = await self._until_finished(created, call)
        text = prediction.output_text(finished)
        return CompletionResponse(
            content=text,
            stop_reason=StopReason.END_TURN,
            raw_stop_reason=prediction.status(finished),
            usage=prediction.usage(finished, request, text),
            model=request.model,
            provider=self.name,
            parts=[ContentPart(text=text)] if text else [],
            metadata=self._metadata(finished),
        )

    async def stream(self, request: ChatRequest, call: CallContext = NO_CALL) -> AsyncGenerator[StreamChunk, None]:
        path, body = await offload.run(self.prediction_body, request, stream=True)
        created = await self._create(path, body, call)
        stream_url = prediction.url(created, "stream")
        if not stream_url:
            # The model cannot stream: the whole answer comes as one chunk.
            finished = await self._until_finished(created, call)
            text = prediction.output_text(finished)
            if text:
                yield StreamChunk(content=text, model=request.model, provider=self.name,
                                  metadata=self._metadata(finished))
            yield self._final(request, finished, text)
            return
        pieces: list[str] = []
        settled = False  # the prediction ended (or failed) on its own: nothing to cancel
        try:
            done: dict[str, Any] | None = None
            async with self.send("GET", self._follow(stream_url), call=call,
                                 headers={"accept": "text/event-stream", "cache-control": "no-store"}) as response:
                if not response.is_event_stream:
                    raise UpstreamProtocol(f"provider {self.name!r} answered a stream without text/event-stream",
                                           provider=self.name)
                async for event in response.events():
                    if event.event == "output" and event.data:
                        chunk = StreamChunk(content=event.data)
                        if not pieces:
                            chunk.model, chunk.provider = request.model, self.name
                            chunk.metadata = self._metadata(created)
                        pieces.append(event.data)
                        yield chunk
                    elif event.event == "error":
                        settled = True
                        raise errors.error_from_event(event.data, provider=self.name, scrub=self.scrub)
                    elif event.event == "done":
                        done = _object(event.data)
                        break
                    # `logs` events and keep-alive comments carry nothing for the caller.
            if done is None:
                raise UpstreamProtocol(f"provider {self.name!r} ended the stream before its done event; "
                                       "the answer is incomplete", provider=self.name)
            settled = True
            reason = str(done.get("reason") or "")
            if reason in ("canceled", "error"):
                ended = {**created, "status": "canceled" if reason == "canceled" else "failed"}
                raise errors.error_from_prediction(ended, provider=self.name, scrub=self.scrub)
            text = "".join(pieces)
            final_state = await self._final_state(created, call) if self.options.usage_lookup else None
            yield self._final(request, final_state or created, text, final_state)
        finally:
            if not settled:
                self.cancel_soon(created)

    def _final(self, request: ChatRequest, state: Mapping[str, Any], text: str,
               metrics_from: Mapping[str, Any] | None = None) -> StreamChunk:
        source = state if metrics_from is None else metrics_from
        return StreamChunk(
            stop_reason=StopReason.END_TURN,
            raw_stop_reason=prediction.status(state) or "succeeded",
            is_final=True,
            usage=prediction.usage(source, request, text),
            model=request.model,
            provider=self.name,
            parts=[ContentPart(text=text)] if text else [],
            metadata=self._metadata(state),
        )

    # -- predictions ----------------------------------------------------------------------

    async def _create(self, path: str, body: dict[str, Any], call: CallContext,
                      headers: dict[str, str] | None = None) -> dict[str, Any]:
        async with self.send("POST", path, body=body, call=call, headers=headers) as response:
            raw = await response.read()
        return self._prediction(raw)

    async def _until_finished(self, created: dict[str, Any], call: CallContext) -> dict[str, Any]:
        """The prediction once it has finished (polling `urls.get`); raises for one that
        failed. Cancels it when the caller goes away or the time runs out first."""
        current = created
        total, caller_bound = self.total_timeout(None, call)
        try:
            async with asyncio.timeout(total):
                while prediction.status(current) not in prediction.FINISHED:
                    await asyncio.sleep(self.options.poll_interval)
                    current = await self._get(current, call)
        except TimeoutError:
            self.cancel_soon(current)
            expired = UpstreamDeadlineExceeded if caller_bound else UpstreamTimeout
            raise expired(f"provider {self.name!r}: the prediction did not finish within {total:.3g}s",
                          provider=self.name) from None
        except BaseException:
            self.cancel_soon(current)
            raise
        if prediction.status(current) != "succeeded":
            raise errors.error_from_prediction(current, provider=self.name, scrub=self.scrub)
        return current

    async def _get(self, current: Mapping[str, Any], call: CallContext) -> dict[str, Any]:
        get_url = prediction.url(current, "get") or f"/predictions/{current.get('id', '')}"
        async with self.send("GET", self._follow(get_url), call=call) as response:
            raw = await response.read()
        return self._prediction(raw)

    async def _final_state(self, created: Mapping[str, Any], call: CallContext) -> dict[str, Any] | None:
        """The prediction after its stream ended, for its metrics; None when it cannot be
        read (the answer is complete without it)."""
        try:
            return await self._get(created, call)
        except PorticoError as exc:
            log.info("provider %s: no token counts for prediction %s (%s)", self.name,
                     created.get("id"), exc.reason)
            return None

    def cancel_soon(self, current: Mapping[str, Any]) -> None:
        """Cancel a prediction in the background: the caller is gone and waits for nothing."""
        cancel_url = prediction.url(current, "cancel") or f"/predictions/{current.get('id', '')}/cancel"
        with contextlib.suppress(RuntimeError):  # no running loop: the process is going away
            task = asyncio.get_running_loop().create_task(self._cancel(cancel_url))
            self._cancels.add(task)
            task.add_done_callback(self._cancels.discard)

    async def _cancel(self, cancel_url: str) -> None:
        try:
            async with self.send("POST", self._follow(cancel_url), timeout=self.options.cancel_timeout):
                pass
        except PorticoError as exc:
            log.info("provider %s: cancelling a prediction failed (%s)", self.name, exc.reason)

    def _follow(self, link: str) -> str:
        """A URL from a prediction, checked before the token goes there: it must use the
        scheme of the configured base URL (https in production)."""
        if "://" not in link:
            return link
        if urlsplit(link).scheme != urlsplit(self.base_url).scheme:
            raise UpstreamProtocol(f"provider {self.name!r} sent a prediction URL with another scheme",
                                   provider=self.name)
        return link

    def _prediction(self, raw: bytes) -> dict[str, Any]:
        try:
            data = jsonwire.loads(raw)
        except ValueError:
            data = None
        if not isinstance(data, dict) or "status" not in data:
            raise UpstreamProtocol(f"provider {self.name!r} answered with a body that is not a prediction",
                                   provider=self.name)
        return data

    def _metadata(self, current: Mapping[str, Any]) -> dict[str, str]:
        return {"prediction_id": str(current.get("id") or "")}

    # -- capabilities and health ----------------------------------------------------------

    def supports_tools(self, model: str) -> bool:
        return False

    def known_capabilities(self, model: str) -> Capabilities | None:
        return Capabilities(model=model, supports_tools=False, supports_streaming=True, supports_vision=False,
                            supports_response_format=False, source=Source.BUILT_IN)

    async def health_check(self) -> bool:
        try:
            async with self.send("GET", "/account", timeout=_PROBE_TIMEOUT):
                return True
        except UpstreamError as exc:
            log.info("health probe of %s failed: %s", self.name, exc.reason)
            return False

    # -- errors ---------------------------------------------------------------------------

    def error_from_response(self, status: int, headers: Mapping[str, str], body: bytes) -> UpstreamError:
        return errors.error_from_response(status, headers, body, provider=self.name, scrub=self.scrub)


def _object(data: str) -> dict[str, Any]:
    """A `done` event's data: `{}`, `{"reason": ...}`, or nothing at all."""
    try:
        value = json.loads(data) if data.strip() else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}

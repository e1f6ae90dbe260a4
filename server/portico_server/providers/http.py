"""What every HTTP provider shares: one pooled aiohttp session, a bounded wait for a free
connection, one deadline for the whole upstream call, bodies read through caps, and
transport failures and error bodies turned into domain exceptions with secrets removed.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import math
import urllib.request
from collections import deque
from collections.abc import AsyncIterator, Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

import aiohttp
import yarl

from .. import jsonwire, offload, tracing
from ..call import NO_CALL, CallContext
from ..config import ProviderSettings
from ..errors import (
    PorticoError,
    RequestTooLarge,
    UpstreamConnection,
    UpstreamDeadlineExceeded,
    UpstreamError,
    UpstreamPoolExhausted,
    UpstreamProtocol,
    UpstreamTimeout,
    parse_retry_after,
    upstream_error,
)
from ..redaction import redact
from .base import Provider
from .wire import LimitExceeded, NDJSONParser, SSEEvent, SSEParser

_MAX_ERROR_MESSAGE = 500
#: How much of an error response's body is read to find its message.
_MAX_ERROR_BODY = 1024 * 1024
#: After a stream's terminator, how long the rest of the body may take to arrive so the
#: connection can go back to the pool; a well-behaved server ends it at once.
_DRAIN_SECONDS = 1.0
#: Bytes read without giving the event loop a turn, at most.
_YIELD_EVERY = 64 * 1024


class HttpProvider(Provider):
    """Base of providers that speak HTTP. Subclasses set `default_base_url` and
    `auth_headers()`, and may override `error_from_response()` for their error shape."""

    default_base_url = ""
    #: Paths are sent exactly as given, percent-escapes and all (yarl would otherwise
    #: decode `%3A` to `:`), for upstreams that sign the path as it goes on the wire.
    keep_path_encoding: bool = False

    def __init__(self, settings: ProviderSettings) -> None:
        super().__init__(settings)
        self.base_url = (settings.base_url or self.default_base_url).rstrip("/")
        self.headers = {**self.auth_headers(), **settings.headers}
        self._slots = asyncio.Semaphore(self._pool_limit()[1])
        self._session: aiohttp.ClientSession | None = None
        self._proxy_headers: dict[str, str] | None = None

    def api_key(self) -> str:
        return self.settings.api_key.get_secret_value() if self.settings.api_key else ""

    def auth_headers(self) -> dict[str, str]:
        """Headers that carry the credentials; `Authorization: Bearer` unless overridden."""
        key = self.api_key()
        return {"Authorization": f"Bearer {key}"} if key else {}

    async def sign_request(self, method: str, url: str, headers: dict[str, str], content: bytes | None) -> None:
        """Add headers computed over the finished request (a signature) to `headers`, in
        place, just before it is sent. Nothing by default."""

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def session(self) -> aiohttp.ClientSession:
        """The provider's pooled session, made on first use inside the running loop."""
        if self._session is None or self._session.closed:
            settings = self.settings
            connector = aiohttp.TCPConnector(
                limit=settings.max_connections,
                limit_per_host=settings.max_connections_per_host or 0,
                keepalive_timeout=settings.keepalive_timeout,
            )
            # The environment's proxy is looked up once here: aiohttp's `trust_env` would
            # read the environment (and ~/.netrc) again on every request.
            proxy, proxy_auth = _environment_proxy(self.base_url)
            if self.base_url.startswith("https:"):
                self._proxy_headers = proxy_auth  # sent with the CONNECT to the proxy
            elif proxy_auth:
                # A plain-HTTP request goes to the proxy itself, which reads it there.
                self.headers.update(proxy_auth)
            # The credentials go with each request, not as session defaults: aiohttp
            # adds session defaults to what it sends a proxy, and would hand the proxy
            # our `Authorization` as its `Proxy-Authorization`.
            self._session = aiohttp.ClientSession(
                connector=connector,
                proxy=proxy,
                raise_for_status=False,
                timeout=aiohttp.ClientTimeout(total=settings.timeout),
            )
        return self._session

    # -- sending ------------------------------------------------------------------------

    def total_timeout(self, seconds: float | None, call: CallContext) -> tuple[float, bool]:
        """Seconds the whole upstream call may take: the provider's `timeout`, `seconds`
        (a probe's own bound) or the caller's remaining deadline, whichever is sooner; and
        whether the caller's deadline is the one that binds."""
        total = self.settings.timeout if seconds is None else min(self.settings.timeout, seconds)
        remaining = call.remaining()
        if remaining is not None and remaining < total:
            return max(0.001, remaining), True
        return max(0.001, total), False

    def encode(self, body: dict[str, Any]) -> bytes:
        """JSON-encode a body, refusing it unsent when it exceeds `max_request_bytes`."""
        data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
        limit = self.settings.max_request_bytes
        if limit is not None and len(data) > limit:
            raise RequestTooLarge(
                f"request is {len(data)} bytes; provider {self.name!r} accepts at most {limit}",
                limit=f"max_request_bytes={limit}",
                provider=self.name,
            )
        return data

    @contextlib.asynccontextmanager
    async def send(
        self,
        method: str,
        path: str,
        *,
        body: dict[str, Any] | None = None,
        call: CallContext = NO_CALL,
        timeout: float | None = None,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> AsyncIterator[UpstreamResponse]:
        """Send a request and yield the response once its status is a success. The whole
        exchange must end within the provider's `timeout`, `timeout` when given, and the
        caller's deadline (`call`), whichever comes first.

        The body is not read yet. Leaving the block normally reads what is left of it
        (briefly) so the connection goes back to the pool; leaving it with an exception,
        a cancellation or a closed generator closes the connection at once, which is how
        a cancelled call stops the provider.
        """
        content = await offload.run(self.encode, body) if body is not None else None
        session = self.session()
        hdrs = dict(self.headers)
        if content is not None:
            hdrs["content-type"] = "application/json"
        if headers:
            hdrs.update(headers)
        if tracing.enabled:
            tracing.inject(hdrs)  # the attempt's traceparent, so the provider's own traces join ours
        total, caller_bound = self.total_timeout(timeout, call)
        # Out of time because of the caller's own deadline: their DEADLINE_EXCEEDED.
        expired = UpstreamDeadlineExceeded if caller_bound else UpstreamTimeout
        loop = asyncio.get_running_loop()
        started = loop.time()
        target = path if "://" in path else self.base_url + path
        if type(self).sign_request is not HttpProvider.sign_request:
            try:
                async with asyncio.timeout(total):
                    await self.sign_request(method, target, hdrs, content)
            except TimeoutError:
                raise expired(f"provider {self.name!r}: signing the request took longer than {total:.3g}s",
                              provider=self.name, retry_safe=True) from None
        await self._acquire_slot(total)
        # Time spent waiting for a connection counts against the same deadline.
        total = max(0.001, total - (loop.time() - started))
        try:
            try:
                raw = await session.request(
                    method,
                    yarl.URL(target, encoded=True) if self.keep_path_encoding else target,
                    data=content,
                    params=params,
                    headers=hdrs,
                    proxy_headers=self._proxy_headers,
                    timeout=aiohttp.ClientTimeout(
                        total=total,
                        sock_connect=min(total, self.settings.connect_timeout),
                        # aiohttp rounds longer timeouts up to whole seconds unless told not to.
                        ceil_threshold=math.inf,
                    ),
                )
            except TimeoutError:
                raise expired(f"provider {self.name!r} did not answer within {total:.3g}s",
                              provider=self.name) from None
            except aiohttp.ClientConnectorError as exc:
                # No connection, so the request was never written: sending it again is safe.
                raise UpstreamConnection(
                    f"cannot reach provider {self.name!r}: {type(exc).__name__}", provider=self.name,
                    retry_safe=True,
                ) from None
            except aiohttp.ClientError as exc:
                raise UpstreamConnection(
                    f"cannot reach provider {self.name!r}: {type(exc).__name__}", provider=self.name
                ) from None
            response = UpstreamResponse(raw, self)
            try:
                if raw.status >= 400:
                    raise self.error_from_response(raw.status, raw.headers, await response.read_prefix())
                try:
                    yield response
                except PorticoError as exc:
                    # The provider accepted the request, so a generation may be under way.
                    exc.retry_safe = False
                    raise
                await response.finish()
            except BaseException:
                response.abandon()
                raise
        except LimitExceeded as exc:
            raise UpstreamProtocol(
                f"provider {self.name!r} sent more than {exc.setting}={exc.limit} bytes allow",
                provider=self.name,
                metadata={"limit": f"{exc.setting}={exc.limit}"},
            ) from None
        except TimeoutError:
            raise expired(f"provider {self.name!r} did not finish answering within {total:.3g}s",
                          provider=self.name) from None
        except aiohttp.ClientError as exc:
            raise UpstreamConnection(
                f"connection to provider {self.name!r} failed mid-response: {type(exc).__name__}",
                provider=self.name,
            ) from None
        except PorticoError as exc:
            # The one place errors built from upstream data pass on their way out.
            redact_error(exc)
            raise
        finally:
            self._slots.release()

    async def _acquire_slot(self, total: float) -> None:
        """Wait for a free connection slot, at most `pool_timeout` (or the whole call's
        time, when that is shorter)."""
        if not self._slots.locked():
            await self._slots.acquire()
            return
        wait = min(self.settings.pool_timeout, total)
        try:
            async with asyncio.timeout(wait):
                await self._slots.acquire()
        except TimeoutError:
            setting, limit = self._pool_limit()
            raise UpstreamPoolExhausted(
                f"provider {self.name!r}: all {limit} connections stayed busy for {wait:.3g}s; "
                "the request was not sent",
                provider=self.name,
                metadata={"limit": f"{setting}={limit}", "pool_timeout": f"{wait:.3g}"},
            ) from None

    def _pool_limit(self) -> tuple[str, int]:
        """The setting that bounds the connections a call can get, and its value. A
        provider talks to one host, so the smaller of the two bounds is the one."""
        per_host = self.settings.max_connections_per_host
        if per_host is not None and per_host < self.settings.max_connections:
            return "max_connections_per_host", per_host
        return "max_connections", self.settings.max_connections

    async def request_json(
        self,
        method: str,
        path: str,
        *,
        body: dict[str, Any] | None = None,
        call: CallContext = NO_CALL,
        timeout: float | None = None,
        params: dict[str, str] | None = None,
    ) -> Any:
        """Send a request and return its decoded JSON body."""
        async with self.send(method, path, body=body, call=call, timeout=timeout, params=params) as response:
            raw = await response.read()
        try:
            return jsonwire.loads(raw)
        except ValueError:
            raise UpstreamProtocol(
                f"provider {self.name!r} answered with a body that is not JSON", provider=self.name
            ) from None

    # -- errors -------------------------------------------------------------------------

    def scrub(self, text: str) -> str:
        """Remove every configured secret from text that came from upstream, and bound
        its length."""
        return redact(text)[:_MAX_ERROR_MESSAGE]

    def error_from_response(self, status: int, headers: Mapping[str, str], body: bytes) -> UpstreamError:
        """Map an error response. The default reads the common `{"error": {...}}` shapes."""
        message, code = extract_error(body)
        text = self.scrub(message) or f"HTTP {status}"
        return upstream_error(
            status,
            f"provider {self.name!r}: {text}",
            provider=self.name,
            code=self.scrub(code),
            retry_after=parse_retry_after(headers),
        )


class UpstreamResponse:
    """A successful upstream response whose body is read through the provider's caps
    (after decompression): whole, as SSE events, or as NDJSON lines."""

    __slots__ = ("_eof", "_max_body", "_raw", "_received", "_settings", "_unyielded", "headers", "status")

    def __init__(self, raw: aiohttp.ClientResponse, provider: HttpProvider) -> None:
        self._raw = raw
        self._settings = provider.settings
        self._max_body = provider.settings.max_response_bytes
        self._received = 0
        self._unyielded = 0
        self._eof = False
        self.status = raw.status
        self.headers: Mapping[str, str] = raw.headers

    async def next_piece(self) -> bytes:
        """The next piece of the body as it arrived (decompressed); b"" at its end."""
        if self._eof:
            return b""
        piece = await self._raw.content.readany()
        if not piece:
            self._eof = True
            return b""
        self._received += len(piece)
        if self._received > self._max_body:
            raise LimitExceeded("max_response_bytes", self._max_body)
        self._unyielded += len(piece)
        if self._unyielded >= _YIELD_EVERY:
            # Buffered (or freshly decompressed) data is returned without suspending, so a
            # fast or inflating upstream would otherwise hold the event loop until it ends.
            self._unyielded = 0
            await asyncio.sleep(0)
        return piece

    async def read(self) -> bytes:
        """The whole body, refused once it passes `max_response_bytes`."""
        length = self._raw.content_length
        if length is not None and length > self._max_body and not self._raw.headers.get("content-encoding"):
            raise LimitExceeded("max_response_bytes", self._max_body)
        pieces = []
        while piece := await self.next_piece():
            pieces.append(piece)
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)

    async def read_prefix(self, limit: int = _MAX_ERROR_BODY) -> bytes:
        """Up to `limit` bytes of the body (for error bodies, which are only looked at);
        b"" when the connection fails on the way."""
        pieces: list[bytes] = []
        size = 0
        with contextlib.suppress(aiohttp.ClientError, LimitExceeded):
            while size < limit and (piece := await self.next_piece()):
                pieces.append(piece)
                size += len(piece)
        return b"".join(pieces)[:limit]

    @property
    def is_event_stream(self) -> bool:
        """Whether the body is Server-Sent Events (`text/event-stream`)."""
        return "text/event-stream" in self.headers.get("content-type", "")

    def abandon(self) -> None:
        """Give the connection back when the body was read to its end, else close it now."""
        if self._eof:
            self._raw.release()
        else:
            self._raw.close()

    def events(self) -> SSEStream:
        """The body's Server-Sent Events."""
        return SSEStream(self)

    def lines(self) -> NDJSONStream:
        """The body's non-blank NDJSON lines."""
        return NDJSONStream(self)

    async def finish(self) -> None:
        """Read what is left of the body so the connection can be reused, then release it;
        close it instead when the rest does not come quickly."""
        if not self._eof:
            try:
                async with asyncio.timeout(_DRAIN_SECONDS):
                    while await self.next_piece():
                        pass
            except (TimeoutError, aiohttp.ClientError, LimitExceeded):
                self._raw.close()
                return
        self._raw.release()


class SSEStream:
    """Async iterator of the events of an `UpstreamResponse`."""

    __slots__ = ("_parser", "_pending", "_response")

    def __init__(self, response: UpstreamResponse) -> None:
        settings = response._settings
        self._response = response
        self._parser = SSEParser(line_limit=settings.max_line_bytes, event_limit=settings.max_event_bytes)
        self._pending: deque[SSEEvent] = deque()

    def __aiter__(self) -> SSEStream:
        return self

    async def __anext__(self) -> SSEEvent:
        while not self._pending:
            piece = await self._response.next_piece()
            if not piece:
                raise StopAsyncIteration  # an event without its closing blank line is dropped
            self._pending.extend(self._parser.feed(piece))
        return self._pending.popleft()


class NDJSONStream:
    """Async iterator of the non-blank lines of an `UpstreamResponse`, as bytes."""

    __slots__ = ("_done", "_parser", "_pending", "_response")

    def __init__(self, response: UpstreamResponse) -> None:
        self._response = response
        self._parser = NDJSONParser(line_limit=response._settings.max_line_bytes)
        self._pending: deque[bytes] = deque()
        self._done = False

    def __aiter__(self) -> NDJSONStream:
        return self

    async def __anext__(self) -> bytes:
        while not self._pending:
            if self._done:
                raise StopAsyncIteration
            piece = await self._response.next_piece()
            if piece:
                self._pending.extend(self._parser.feed(piece))
            else:
                self._done = True
                self._pending.extend(self._parser.finish())
        return self._pending.popleft()


def redact_error(exc: PorticoError) -> None:
    """Remove configured secrets from an error's message and metadata, in place."""
    exc.message = redact(exc.message)
    exc.args = (exc.message,)
    for key, value in exc.metadata.items():
        exc.metadata[key] = redact(value)


def _environment_proxy(base_url: str) -> tuple[str | None, dict[str, str] | None]:
    """The proxy HTTP(S)_PROXY / NO_PROXY choose for the provider's host, and the
    Proxy-Authorization header for the credentials its URL carries; (None, None) for a
    direct connection."""
    target = urlsplit(base_url)
    proxy = urllib.request.getproxies().get(target.scheme)
    if not proxy or not target.hostname or urllib.request.proxy_bypass(target.hostname):
        return None, None
    parts = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
    if parts.username is None:
        return parts.geturl(), None
    credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port:
        netloc += f":{parts.port}"
    header = {"Proxy-Authorization": "Basic " + base64.b64encode(credentials).decode("ascii")}
    return parts._replace(netloc=netloc).geturl(), header


def extract_error(body: bytes) -> tuple[str, str]:
    """(message, code or type) from the error bodies providers send; empty when unknown."""
    try:
        data = json.loads(body)
    except ValueError:
        return "", ""
    if isinstance(data, list) and data and isinstance(data[0], dict):
        data = data[0]  # Gemini sometimes wraps the error in a list
    if not isinstance(data, dict):
        return "", ""
    err = data.get("error", data)
    if isinstance(err, str):
        return err, str(data.get("type", "") or data.get("code", ""))
    if not isinstance(err, dict):
        return "", ""
    message = str(err.get("message", "") or "")
    code = err.get("code") or err.get("type") or err.get("status") or ""
    return message, str(code)

"""What Bedrock needs of AWS, all from botocore: credentials from the standard chain,
SigV4 signatures, and the frames of the `application/vnd.amazon.eventstream` body.

botocore is imported on first use, not when the gateway starts: it takes a quarter of a
second to import, which a gateway without a Bedrock provider should not pay.
"""

from __future__ import annotations

import asyncio
import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ...errors import UpstreamAuth, UpstreamProtocol
from ...redaction import register_secrets
from ..wire import LimitExceeded

if TYPE_CHECKING:
    from botocore.credentials import Credentials, ReadOnlyCredentials

#: The name Bedrock's runtime endpoints are signed under (the host says bedrock-runtime).
SIGNING_NAME = "bedrock"
#: An event-stream frame: total length (4), headers length (4), prelude CRC (4), headers,
#: payload, message CRC (4).
_PRELUDE_BYTES = 12
_SMALLEST_FRAME = _PRELUDE_BYTES + 4


def _botocore(module: str) -> Any:
    return importlib.import_module(f"botocore.{module}")


class CredentialSource:
    """AWS credentials from the standard chain (environment, shared profile, web identity,
    container and instance metadata), as botocore resolves them. Resolving and refreshing
    read files and may call STS or a metadata endpoint, so both run in a worker thread;
    concurrent calls that find the credentials stale wait for one refresh."""

    def __init__(self, provider: str, profile: str | None = None) -> None:
        self._provider = provider
        self._profile = profile
        self._credentials: Credentials | None = None
        self._lock: asyncio.Lock | None = None

    async def current(self) -> ReadOnlyCredentials:
        credentials = self._credentials
        if credentials is not None and not _needs_refresh(credentials):
            return credentials.get_frozen_credentials()
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._credentials is None:
                self._credentials = await asyncio.to_thread(self._resolve)
            if self._credentials is None:
                raise UpstreamAuth(
                    f"provider {self._provider!r}: no AWS credentials found (environment, shared credentials "
                    "or config profile, web identity, container or instance metadata)",
                    provider=self._provider, retry_safe=True,
                )
            credentials = self._credentials
            if _needs_refresh(credentials):
                frozen = await asyncio.to_thread(credentials.get_frozen_credentials)
            else:
                frozen = credentials.get_frozen_credentials()
        # From here on these are redacted from every log line and error, botocore's too.
        register_secrets([value for value in (frozen.secret_key, frozen.token) if value])
        return frozen

    def _resolve(self) -> Credentials | None:
        session = _botocore("session").Session(profile=self._profile)
        try:
            credentials: Credentials | None = session.get_credentials()
        except Exception as exc:  # botocore's own errors: bad profile, STS refused the token
            raise UpstreamAuth(
                f"provider {self._provider!r}: AWS credentials could not be resolved: {type(exc).__name__}",
                provider=self._provider, retry_safe=True,
            ) from None
        return credentials


def _needs_refresh(credentials: Credentials) -> bool:
    refreshable = _botocore("credentials").RefreshableCredentials
    return isinstance(credentials, refreshable) and bool(credentials.refresh_needed())


def sign(
    credentials: ReadOnlyCredentials, region: str, method: str, url: str, headers: dict[str, str], body: bytes | None
) -> dict[str, str]:
    """The SigV4 headers (`Authorization`, `X-Amz-Date`, and `X-Amz-Security-Token` for
    temporary credentials) for a request, signed by botocore over `headers` and the body."""
    request = _botocore("awsrequest").AWSRequest(method=method, url=url, data=body or b"", headers=dict(headers))
    _botocore("auth").SigV4Auth(credentials, SIGNING_NAME, region).add_auth(request)
    signed = {}
    for name in ("Authorization", "X-Amz-Date", "X-Amz-Security-Token"):
        value = request.headers.get(name)
        if value:
            signed[name] = value
    return signed


@dataclass(slots=True)
class Frame:
    """One frame of an event stream: `:message-type` (event, exception or error), the
    event or exception name, and the payload."""

    message_type: str
    name: str
    payload: bytes
    headers: dict[str, Any]


class EventStreamReader:
    """Frames out of pieces of an event-stream body, parsed and checked (both CRCs) by
    botocore's `EventStreamBuffer`.

    Pieces are held here until a whole frame has arrived and only then handed to the
    buffer, which copies its data on every `add_data`: fed piece by piece, one large frame
    would be copied once per piece. The frame's length (its first four bytes) also bounds
    it by `max_event_bytes` before it is buffered.
    """

    __slots__ = ("_buffer", "_frame_length", "_held", "_limit", "_size")

    def __init__(self, *, frame_limit: int) -> None:
        self._buffer = _botocore("eventstream").EventStreamBuffer()
        self._limit = frame_limit
        self._held: list[bytes] = []
        self._size = 0
        self._frame_length: int | None = None

    def feed(self, piece: bytes) -> list[Frame]:
        self._held.append(piece)
        self._size += len(piece)
        frames: list[Frame] = []
        while self._size >= (self._frame_length or 4):
            data = b"".join(self._held) if len(self._held) > 1 else self._held[0]
            if self._frame_length is None:
                self._frame_length = int.from_bytes(data[:4], "big")
                if self._frame_length > self._limit:
                    raise LimitExceeded("max_event_bytes", self._limit)
                if self._frame_length < _SMALLEST_FRAME:
                    raise FrameError(f"a frame of {self._frame_length} bytes is shorter than its own framing")
                self._held = [data]
                continue
            frame, rest = data[: self._frame_length], data[self._frame_length :]
            self._held = [rest] if rest else []
            self._size = len(rest)
            self._frame_length = None
            frames.append(self._parse(frame))
        return frames

    @property
    def idle(self) -> bool:
        """Whether no part of a frame is waiting for the rest of it."""
        return self._size == 0

    def _parse(self, frame: bytes) -> Frame:
        self._buffer.add_data(frame)
        try:
            message = self._buffer.next()
        except StopIteration:
            raise FrameError("a frame did not parse as one whole message") from None
        except _botocore("eventstream").ParserError as exc:
            raise FrameError(type(exc).__name__) from None
        headers = dict(message.headers)
        kind = str(headers.get(":message-type") or "event")
        if kind == "event":
            name = str(headers.get(":event-type") or "")
        elif kind == "exception":
            name = str(headers.get(":exception-type") or "")
        else:
            name = str(headers.get(":error-code") or "")
        return Frame(kind, name, bytes(message.payload), headers)


class FrameError(Exception):
    """An event-stream frame that botocore (or its length) refused."""


def frame_error(provider: str, exc: FrameError) -> UpstreamProtocol:
    return UpstreamProtocol(f"provider {provider!r} sent a broken event-stream frame: {exc}", provider=provider)


"""Bounded parsers of what upstreams stream back: Server-Sent Events and NDJSON.

They take the body's bytes as they arrive, in pieces of any size, and hand out whole
lines or events. Buffering is linear: a partial line is kept as a list of pieces and
joined once, when its end arrives, so a 16 MiB line costs 16 MiB of copying, not 16 MiB
per piece. A line or an event over its cap raises `LimitExceeded` as soon as the cap is
passed, before more of it is buffered.
"""

from __future__ import annotations

from dataclasses import dataclass


class LimitExceeded(Exception):
    """The upstream sent more than a cap allows. `setting` names the configuration key."""

    def __init__(self, setting: str, limit: int) -> None:
        super().__init__(f"{setting}={limit}")
        self.setting = setting
        self.limit = limit


class LineSplitter:
    """Whole lines (without their end) out of pieces of a byte stream.

    Lines end at b"\\n" (a b"\\r" before it is dropped). With `cr_ends_line`, a lone
    b"\\r" ends a line too, as the SSE format allows.
    """

    __slots__ = ("_cr_ends_line", "_limit", "_parts", "_pending_cr", "_setting", "_size")

    def __init__(self, limit: int, *, cr_ends_line: bool = False, setting: str = "max_line_bytes") -> None:
        self._limit = limit
        self._setting = setting
        self._cr_ends_line = cr_ends_line
        self._parts: list[bytes] = []
        self._size = 0
        self._pending_cr = False

    def feed(self, piece: bytes) -> list[bytes]:
        if self._cr_ends_line:
            piece = self._normalize_cr(piece)
        lines: list[bytes] = []
        start = 0
        find = piece.find
        while (end := find(b"\n", start)) >= 0:
            if self._parts:
                self._parts.append(piece[start:end])
                line = b"".join(self._parts)
                self._parts.clear()
                self._size = 0
            else:
                line = piece[start:end]
            if not self._cr_ends_line and line.endswith(b"\r"):
                line = line[:-1]  # (with `cr_ends_line`, CRs are already line ends)
            if len(line) > self._limit:
                raise LimitExceeded(self._setting, self._limit)
            lines.append(line)
            start = end + 1
        if start < len(piece):
            rest = piece[start:] if start else piece
            self._size += len(rest)
            if self._size > self._limit:
                raise LimitExceeded(self._setting, self._limit)
            self._parts.append(rest)
        return lines

    def rest(self) -> bytes:
        """What followed the last line end (the body ended without one)."""
        line = b"".join(self._parts)
        self._parts.clear()
        self._size = 0
        return line

    def _normalize_cr(self, piece: bytes) -> bytes:
        if self._pending_cr:
            self._pending_cr = False
            if piece.startswith(b"\n"):
                piece = piece[1:]  # the b"\n" of a b"\r\n" split between two pieces
        if b"\r" in piece:
            self._pending_cr = piece.endswith(b"\r")
            piece = piece.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        return piece


@dataclass(slots=True)
class SSEEvent:
    #: The `event:` field; "message" when the event has none.
    event: str
    #: The `data:` lines, joined with "\n".
    data: str
    id: str = ""


class SSEParser:
    """Events out of pieces of a `text/event-stream` body (the WHATWG parsing rules)."""

    __slots__ = ("_data", "_event", "_event_limit", "_id", "_lines", "_size")

    def __init__(self, *, line_limit: int, event_limit: int) -> None:
        self._lines = LineSplitter(line_limit, cr_ends_line=True)
        self._event_limit = event_limit
        self._data: list[bytes] = []
        self._size = 0
        self._event = b""
        self._id = b""

    def feed(self, piece: bytes) -> list[SSEEvent]:
        events: list[SSEEvent] = []
        for line in self._lines.feed(piece):
            if not line:
                if self._data or self._event:
                    events.append(self._dispatch())
                continue
            if line[0] == 0x3A:  # ":" starts a comment (a keep-alive, usually)
                continue
            if line.startswith(b"data: "):  # by far the most common line: no partition
                name, value = b"data", line[6:]
            else:
                name, colon, value = line.partition(b":")
                if colon and value[:1] == b" ":
                    value = value[1:]
            if name == b"data":
                self._size += len(value) + 1
                if self._size > self._event_limit:
                    raise LimitExceeded("max_event_bytes", self._event_limit)
                self._data.append(value)
            elif name == b"event":
                self._event = value
            elif name == b"id" and b"\0" not in value:
                self._id = value
            # `retry:` and unknown fields are ignored: a gateway does not reconnect.
        return events

    def _dispatch(self) -> SSEEvent:
        data = self._data[0] if len(self._data) == 1 else b"\n".join(self._data)
        event = SSEEvent(
            self._event.decode("utf-8", "replace") if self._event else "message",
            data.decode("utf-8", "replace"),
            self._id.decode("utf-8", "replace") if self._id else "",
        )
        self._data = []
        self._size = 0
        self._event = b""
        return event


class NDJSONParser:
    """Non-blank lines out of pieces of a newline-delimited JSON body.

    Lines end at b"\\n" only, so characters such as U+0085 inside a JSON string (which
    `str.splitlines` would break at) stay in their line.
    """

    __slots__ = ("_lines",)

    def __init__(self, *, line_limit: int) -> None:
        self._lines = LineSplitter(line_limit)

    def feed(self, piece: bytes) -> list[bytes]:
        return [line for line in self._lines.feed(piece) if line.strip()]

    def finish(self) -> list[bytes]:
        """The last line when the body did not end with a line end."""
        rest = self._lines.rest()
        return [rest] if rest.strip() else []

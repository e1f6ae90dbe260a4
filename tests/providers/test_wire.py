"""The SSE and NDJSON parsers every dialect reads streams with: the same events however
the bytes are cut, linear in the size of a line, and refusing lines and events over
their caps."""

from __future__ import annotations

import time

import pytest
from portico_server.providers.wire import LimitExceeded, LineSplitter, NDJSONParser, SSEEvent, SSEParser
from upstream import fixture

BIG = 1 << 30


def sse(pieces: list[bytes], line_limit: int = BIG, event_limit: int = BIG) -> list[SSEEvent]:
    parser = SSEParser(line_limit=line_limit, event_limit=event_limit)
    return [event for piece in pieces for event in parser.feed(piece)]


def cut_at_every_byte(data: bytes) -> list[list[bytes]]:
    return [[data[:i], data[i:]] for i in range(len(data) + 1)]


SAMPLE = (
    b": keep-alive comment\r\n"
    b"event: message_start\r\n"
    b"data: {\"a\": 1}\r\n\r\n"
    b"id: 7\n"
    b"data: first line\n"
    b"data:second line\n"
    b"retry: 1000\n"
    b"\n"
    b"data: caf\xc3\xa9 \xe2\x82\xac\r"
    b"\r"
    b"event: ping\n\n"
    b"data\n\n"
    b"data: incomplete at the end"
)
EXPECTED = [
    SSEEvent("message_start", '{"a": 1}'),
    SSEEvent("message", "first line\nsecond line", "7"),
    # The last event id carries over to later events, as in a browser's EventSource.
    SSEEvent("message", "café €", "7"),
    SSEEvent("ping", "", "7"),
    SSEEvent("message", "", "7"),
]


def test_sse_events_follow_the_format() -> None:
    assert sse([SAMPLE]) == EXPECTED


@pytest.mark.parametrize("pieces", cut_at_every_byte(SAMPLE))
def test_sse_events_are_the_same_however_the_body_is_cut(pieces: list[bytes]) -> None:
    assert sse(pieces) == EXPECTED


def test_sse_events_are_the_same_byte_by_byte() -> None:
    assert sse([SAMPLE[i : i + 1] for i in range(len(SAMPLE))]) == EXPECTED


@pytest.mark.parametrize("name", ["openai/stream_tool_call_fragmented.sse", "anthropic/stream_text.sse",
                                  "gemini/stream_text_multi_chunk.sse"])
def test_recorded_streams_parse_the_same_in_pieces_of_any_size(name: str) -> None:
    body = fixture(name)
    whole = sse([body])
    assert whole
    for size in (1, 2, 3, 7, 64, 1000):
        assert sse([body[i : i + size] for i in range(0, len(body), size)]) == whole


def test_a_line_over_its_cap_is_refused_before_it_is_buffered_whole() -> None:
    parser = SSEParser(line_limit=1000, event_limit=BIG)
    parser.feed(b"data: " + b"x" * 900)
    with pytest.raises(LimitExceeded) as info:
        parser.feed(b"x" * 200)
    assert (info.value.setting, info.value.limit) == ("max_line_bytes", 1000)


def test_an_event_over_its_cap_is_refused() -> None:
    with pytest.raises(LimitExceeded) as info:
        sse([b"data: " + b"y" * 600 + b"\n"] * 2, event_limit=1000)
    assert info.value.setting == "max_event_bytes"
    # Two events under the cap each are fine.
    assert len(sse([b"data: " + b"y" * 600 + b"\n\n"] * 2, event_limit=1000)) == 2


def test_a_long_line_in_many_pieces_costs_linear_time() -> None:
    piece = b"x" * 16384
    started = time.perf_counter()
    lines = LineSplitter(BIG)
    for _ in range(1024):  # 16 MiB, in 16 KiB pieces
        assert lines.feed(piece) == []
    assert lines.feed(b"\n") == [piece * 1024]
    # Quadratic buffering copies ~8 GiB here (over a minute); linear, well under a second.
    assert time.perf_counter() - started < 5


def test_ndjson_lines_split_only_at_newlines() -> None:
    body = '{"a": "x\u0085y\u2028z"}\n\n  \n{"b": 2}\r\n{"c": 3}'.encode()
    for pieces in cut_at_every_byte(body):
        parser = NDJSONParser(line_limit=BIG)
        lines = [line for piece in pieces for line in parser.feed(piece)] + parser.finish()
        assert lines == ['{"a": "x\u0085y\u2028z"}'.encode(), b'{"b": 2}', b'{"c": 3}']


def test_ndjson_line_over_its_cap_is_refused() -> None:
    parser = NDJSONParser(line_limit=10)
    with pytest.raises(LimitExceeded):
        parser.feed(b'{"a": "0123456789"}\n')

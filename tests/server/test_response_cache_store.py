"""The in-memory store's bounds and time to live, and the canonical request key."""

from __future__ import annotations

import pytest
from portico_server.cache.key import request_key
from portico_server.cache.response_cache import decode_chunks, encode_chunks
from portico_server.cache.store import MemoryStore
from portico_server.config import ConfigError, parse_config
from portico_server.domain import ChatRequest, ContentPart, Message, ResponseFormat, ResponseFormatType, Role


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_an_entry_expires_after_its_ttl() -> None:
    clock = Clock()
    store = MemoryStore(10, 1 << 20, clock)
    await store.put("k", b"answer", ttl=30)
    clock.now += 29.9
    assert await store.get("k") == b"answer"
    clock.now += 0.2
    assert await store.get("k") is None
    assert len(store) == 0 and store.bytes == 0


async def test_the_least_recently_used_entry_goes_first_when_full() -> None:
    store = MemoryStore(2, 1 << 20)
    await store.put("a", b"1", 60)
    await store.put("b", b"2", 60)
    assert await store.get("a") == b"1"  # a is now the most recently used
    await store.put("c", b"3", 60)
    assert (await store.get("a"), await store.get("b"), await store.get("c")) == (b"1", None, b"3")


async def test_the_byte_bound_holds() -> None:
    store = MemoryStore(100, 10)
    await store.put("a", b"12345", 60)
    await store.put("b", b"12345", 60)
    await store.put("c", b"123", 60)
    assert store.bytes <= 10 and await store.get("a") is None and await store.get("c") == b"123"
    await store.put("huge", b"x" * 11, 60)
    assert await store.get("huge") is None and await store.get("c") == b"123"


def test_stream_frames_round_trip_empty_chunks_included() -> None:
    chunks = [b"", b"\x0a\x03abc", b"x" * 70000, b""]
    assert decode_chunks(encode_chunks(chunks)) == chunks


def _chat(**fields: object) -> ChatRequest:
    base: dict[str, object] = {"model": "", "messages": [Message(Role.USER, "hello")], "temperature": 0.0}
    return ChatRequest(**{**base, **fields})  # type: ignore[arg-type]


def test_the_key_ignores_key_order_and_text_encoding_but_not_meaning() -> None:
    schema_a = ResponseFormat(ResponseFormatType.JSON_SCHEMA, "s", {"a": 1, "b": {"x": 1, "y": 2}})
    schema_b = ResponseFormat(ResponseFormatType.JSON_SCHEMA, "s", {"b": {"y": 2, "x": 1}, "a": 1})
    key = request_key("chat", "p", "m", _chat(response_format=schema_a))
    assert key == request_key("chat", "p", "m", _chat(response_format=schema_b))
    parts = [Message(Role.USER, parts=[ContentPart(text="hel"), ContentPart(text="lo")])]
    assert request_key("chat", "p", "m", _chat()) == request_key("chat", "p", "m", _chat(messages=parts, temperature=0))
    assert request_key("chat", "p", "m", _chat(stop=[])) == request_key("chat", "p", "m", _chat())

    distinct = {
        request_key("chat", "p", "m", _chat()),
        request_key("stream", "p", "m", _chat()),
        request_key("chat", "q", "m", _chat()),
        request_key("chat", "p", "n", _chat()),
        request_key("chat", "p", "m", _chat(), scope="caller-a"),
        request_key("chat", "p", "m", _chat(temperature=0.5)),
        request_key("chat", "p", "m", _chat(seed=1)),
        request_key("chat", "p", "m", _chat(messages=[Message(Role.SYSTEM, "hello")])),
        request_key("chat", "p", "m", _chat(passthrough={"logprobs": True})),
    }
    assert len(distinct) == 9


def test_configuration_mistakes_are_named() -> None:
    fake = [{"name": "fake", "kind": "fake"}]
    with pytest.raises(ConfigError, match=r"response_cache\.backend is redis, but there is no redis section"):
        parse_config({"providers": fake, "response_cache": {"backend": "redis"}})
    with pytest.raises(ConfigError, match="embedding_provider: 'nowhere' names no provider"):
        parse_config({"providers": fake, "response_cache": {"semantic": {
            "enabled": True, "embedding_provider": "nowhere"}}})
    with pytest.raises(ConfigError, match="enabled needs embedding_provider"):
        parse_config({"providers": fake, "response_cache": {"semantic": {"enabled": True}}})
    with pytest.raises(ConfigError, match=r"response_cache\.ttl"):
        parse_config({"providers": fake, "response_cache": {"ttl": 0}})

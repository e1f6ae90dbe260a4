"""The shared-state connection: URLs it accepts, and a store that is never waited on
longer than its timeouts, with its circuit, gauge and recovery."""

from __future__ import annotations

import asyncio
import time

import pytest
from portico_server.config import ConfigError, RedisSettings, parse_config
from portico_server.shared.redis import SharedStateUnavailable, SharedStore, parse_url
from redis_server import RedisServer, free_port


def test_urls_of_every_kind_are_understood() -> None:
    assert parse_url("redis://:pw@10.0.0.1:6380/2").kind == "single"
    assert parse_url("rediss://cache.example:6380").tls
    cluster = parse_url("redis+cluster://a:7000,b:7001")
    assert (cluster.kind, cluster.nodes) == ("cluster", (("a", 7000), ("b", 7001)))
    sentinel = parse_url("rediss+sentinel://user:secret@s1:26379,s2/mymaster/3")
    assert (sentinel.kind, sentinel.nodes, sentinel.service, sentinel.db, sentinel.tls) == (
        "sentinel", (("s1", 26379), ("s2", 26379)), "mymaster", 3, True)
    assert "secret" not in sentinel.describe()
    assert "pw" not in parse_url("redis://:pw@10.0.0.1:6380/2").describe()


@pytest.mark.parametrize(("url", "says"), [
    ("http://host:6379", "unsupported scheme"),
    ("redis+sentinel://s1:26379", "names the master"),
    ("redis+cluster://a:notaport", "not host:port"),
])
def test_a_wrong_url_names_the_key_and_never_the_password(url: str, says: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"redis": {"url": url.replace("://", "://:hunter2@", 1)}})
    assert "redis.url" in str(caught.value) and says in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_policy_defaults_to_open_and_only_open_or_closed_is_accepted() -> None:
    assert parse_config({"redis": {"url": "redis://127.0.0.1:6379"}}).redis.on_unavailable == "open"  # type: ignore[union-attr]
    with pytest.raises(ConfigError, match=r"redis\.on_unavailable"):
        parse_config({"redis": {"url": "redis://127.0.0.1:6379", "on_unavailable": "maybe"}})


async def test_store_answers_then_fails_fast_while_down_and_recovers(redis_server: RedisServer) -> None:
    store = SharedStore(RedisSettings(url=redis_server.url, retry_interval=0.2))  # type: ignore[arg-type]
    seen: list[bool] = []
    store.on_change(seen.append)
    try:
        assert await store.run(lambda client: client.ping())
        redis_server.stop()
        started = time.monotonic()
        for _ in range(20):
            with pytest.raises(SharedStateUnavailable):
                await store.run(lambda client: client.ping())
        assert time.monotonic() - started < 5, "bounded, not hung"
        assert not store.up and seen == [True, False]
        redis_server.start()
        store.start()  # the probe finds it again without any call
        for _ in range(500):
            if store.up:
                break
            await asyncio.sleep(0.01)
        assert store.up and seen == [True, False, True]
    finally:
        await store.close()


async def test_an_address_nobody_answers_is_not_waited_on() -> None:
    store = SharedStore(RedisSettings(url=f"redis://127.0.0.1:{free_port()}"))  # type: ignore[arg-type]
    started = time.monotonic()
    with pytest.raises(SharedStateUnavailable):
        await store.run(lambda client: client.ping())
    assert time.monotonic() - started < 3
    await store.close()

"""The shared-state connection: URLs it accepts, and a store that is never waited on
longer than its timeouts, with its circuit, gauge and recovery."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from portico_server.config import ConfigError, LimitSettings, RedisSettings, parse_config
from portico_server.errors import RateLimited
from portico_server.shared.limits import SharedLimits
from portico_server.shared.redis import SharedStateUnavailable, SharedStore, parse_url
from prometheus_client import REGISTRY
from redis_server import REDIS_BIN, RedisServer, free_port


def store_up() -> float | None:
    return REGISTRY.get_sample_value("portico_shared_state_up", {"store": "redis"})


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
        assert store_up() == 0
        redis_server.start()
        store.start()  # the probe finds it again without any call
        for _ in range(500):
            if store.up:
                break
            await asyncio.sleep(0.01)
        assert store.up and seen == [True, False, True]
        assert store_up() == 1
    finally:
        await store.close()


async def test_an_address_nobody_answers_is_not_waited_on() -> None:
    store = SharedStore(RedisSettings(url=f"redis://127.0.0.1:{free_port()}"))  # type: ignore[arg-type]
    started = time.monotonic()
    with pytest.raises(SharedStateUnavailable):
        await store.run(lambda client: client.ping())
    assert time.monotonic() - started < 3
    await store.close()


@pytest.fixture
def sentinel_port(redis_server: RedisServer, tmp_path: Path) -> Iterator[int]:
    """A real Sentinel (redis-server --sentinel) watching `redis_server` as `portico-master`."""
    port = free_port()
    conf = tmp_path / "sentinel.conf"
    conf.write_text(f"port {port}\nbind 127.0.0.1\ndir {tmp_path}\n"
                    f"sentinel monitor portico-master 127.0.0.1 {redis_server.port} 1\n")
    sentinel = subprocess.Popen([str(REDIS_BIN), str(conf), "--sentinel"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield port
    finally:
        sentinel.kill()
        sentinel.wait(10)


async def test_a_sentinel_url_finds_the_master_and_limits_work_through_it(
        redis_server: RedisServer, sentinel_port: int) -> None:
    store = SharedStore(RedisSettings(  # type: ignore[arg-type]
        url=f"redis+sentinel://127.0.0.1:{sentinel_port}/portico-master/0", connect_timeout=2, command_timeout=2))
    limits = SharedLimits(store)
    try:
        for _ in range(200):  # the sentinel takes a moment to listen
            with contextlib.suppress(SharedStateUnavailable):
                await store.run(lambda client: client.ping())
                break
            await asyncio.sleep(0.05)
        rpm = LimitSettings(rpm=1, queue=0)
        assert await limits.acquire("caller:s", rpm, 0, lambda: None) is not None
        with pytest.raises(RateLimited):
            await limits.acquire("caller:s", rpm, 0, lambda: None)
        # The counter is on the master the sentinel named.
        assert b"portico:{limit:caller:s}:rpm" in redis_server.command("KEYS", "*")
    finally:
        await store.close()

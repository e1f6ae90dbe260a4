"""The response cache a configuration asks for."""

from __future__ import annotations

from typing import Any

from ..config import ResponseCacheSettings
from .response_cache import ResponseCache
from .store import CacheStore, MemoryStore, RedisStore


def build_response_cache(settings: ResponseCacheSettings, redis: Any = None) -> ResponseCache:
    """`redis`: the gateway's shared Redis client, when a `redis` section configures one."""
    store: CacheStore
    if settings.backend == "redis" or (settings.backend == "auto" and redis is not None):
        if redis is None:
            from ..config import ConfigError

            raise ConfigError("response_cache.backend is redis, but no redis section configures a server")
        store = RedisStore(redis)
    else:
        store = MemoryStore(settings.max_entries, settings.max_bytes)
    return ResponseCache(settings, store)

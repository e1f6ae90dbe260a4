"""The response cache a configuration asks for."""

from __future__ import annotations

from ..config import ConfigError, ResponseCacheSettings
from ..shared.redis import SharedStore
from ..vectors.memory import MemoryBackend
from .response_cache import ResponseCache
from .semantic import Embedder, SemanticCache
from .store import CacheStore, MemoryStore, RedisStore


def build_response_cache(settings: ResponseCacheSettings, shared: SharedStore | None = None,
                         embedder: Embedder | None = None) -> ResponseCache:
    """`shared`: the gateway's shared-state Redis, when a `redis` section configures one;
    `embedder`: how the semantic cache embeds a question, when it is on."""
    store: CacheStore
    if settings.backend == "redis" or (settings.backend == "auto" and shared is not None):
        if shared is None:
            raise ConfigError("response_cache.backend is redis, but no redis section configures a server")
        store = RedisStore(shared)
    else:
        store = MemoryStore(settings.max_entries, settings.max_bytes)
    semantic = None
    if settings.semantic.enabled and embedder is not None:
        semantic = SemanticCache(MemoryBackend(), embedder, settings.semantic.threshold, settings.max_entries)
    return ResponseCache(settings, store, semantic)

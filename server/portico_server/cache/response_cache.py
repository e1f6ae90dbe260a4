"""The exact response cache: which calls it serves, under which key, and what it keeps.

A call is cached when its caller asks (`x-portico-cache: use`) or its route (group,
alias, model or "provider/model") is listed in `response_cache.models`, and only when
its answer is meant to be repeatable: temperature 0, unless the caller also sends
`x-portico-cache-sampled: true`. The opt-in travels as metadata, like the deadline,
because it is a policy of the call, not part of the question: it stays out of the key,
and every client (grpcurl included) can send it without new generated code.

Nothing about the cache ever fails a call: a store that errs or is slow counts as a miss
(bounded by `STORE_TIMEOUT`), with the error counted in the metrics.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .. import metrics
from ..config import ResponseCacheSettings
from ..domain import ChatRequest
from ..errors import InvalidRequest
from ..shared.redis import SharedStateUnavailable
from .key import request_key

if TYPE_CHECKING:
    from .semantic import SemanticCache, SemanticProbe
from .store import CacheStore

log = logging.getLogger("portico.cache")

#: Request metadata: `use` (read and store), `refresh` (store a fresh answer, do not
#: read), `off` (neither, even where configuration caches the route).
CACHE_HEADER = "x-portico-cache"
#: Request metadata: `true` lets a sampled call (temperature unset or above 0) be cached.
SAMPLED_HEADER = "x-portico-cache-sampled"
#: Response metadata: `hit`, `semantic-hit` or `miss` (absent: the cache was not used).
CACHE_TRAILER = "portico-cache"
#: Seconds a store operation may take before the call goes on without the cache.
STORE_TIMEOUT = 0.5

_MODES = ("use", "refresh", "off")
_FRAME = struct.Struct(">I")


@dataclass(slots=True)
class CacheUse:
    """One call's use of the cache, decided before it runs."""

    method: str
    key: str
    ttl: float
    read: bool
    semantic: SemanticProbe | None = None


class ResponseCache:
    def __init__(self, settings: ResponseCacheSettings, store: CacheStore,
                 semantic: SemanticCache | None = None) -> None:
        self.settings = settings
        self.store = store
        self.semantic = semantic

    def use(self, method: str, provider: str, model: str, chat: ChatRequest,
            metadata: Iterable[tuple[str, Any]] | None, caller: str) -> CacheUse | None:
        """How the call uses the cache (None: not at all). Raises InvalidRequest for a
        cache header the gateway does not understand."""
        headers = {k: v for k, v in metadata or () if k in (CACHE_HEADER, SAMPLED_HEADER) and isinstance(v, str)}
        mode = headers.get(CACHE_HEADER, "").strip().lower()
        if mode and mode not in _MODES:
            raise InvalidRequest([(CACHE_HEADER, f"must be one of {', '.join(_MODES)}")],
                                 f"{CACHE_HEADER} metadata: unknown value; use one of {', '.join(_MODES)}")
        sampled_text = headers.get(SAMPLED_HEADER, "").strip().lower()
        if sampled_text not in ("", "true", "false"):
            raise InvalidRequest([(SAMPLED_HEADER, "must be true or false")],
                                 f"{SAMPLED_HEADER} metadata: must be true or false")
        route = self._route(provider, model)
        asked = mode in ("use", "refresh") and self.settings.per_request
        if mode == "off" or not (asked or route is not None):
            return None
        sampled = chat.temperature is None or chat.temperature > 0
        if sampled and sampled_text != "true":
            metrics.cache_lookup(method, "not_deterministic")
            return None
        scope = caller if self.settings.scope == "caller" else ""
        ttl = route.ttl if route is not None and route.ttl is not None else self.settings.ttl
        key = request_key(method, provider, model, chat, scope)
        probe = self.semantic.probe(method, provider, model, chat, scope) if self.semantic is not None else None
        return CacheUse(method, key, ttl, mode != "refresh", probe)

    def _route(self, provider: str, model: str) -> Any:
        routes = self.settings.models
        for name in (f"{provider}/{model}" if provider and model else "", model, provider):
            if name and name in routes:
                return routes[name]
        return None

    async def get(self, use: CacheUse) -> tuple[bytes, str] | None:
        """The stored answer and how it was found ("hit", "semantic-hit"), or None."""
        if not use.read:
            return None
        value = await self._bounded(self.store.get(use.key), "get")
        if value is not None:
            metrics.cache_lookup(use.method, "hit")
            return value, "hit"
        if use.semantic is not None and self.semantic is not None:
            entry = await self._bounded(self.semantic.find(use.semantic), "semantic_get",
                                        timeout=self.settings.semantic.timeout)
            if entry is not None:
                value = await self._bounded(self.store.get(entry), "get")
                if value is not None:
                    metrics.cache_lookup(use.method, "semantic_hit")
                    return value, "semantic-hit"
                await self._bounded(self.semantic.forget(entry), "semantic_forget")  # expired since
        metrics.cache_lookup(use.method, "miss")
        return None

    async def put(self, use: CacheUse, value: bytes) -> None:
        if len(value) > self.settings.max_entry_bytes:
            metrics.cache_store(use.method, "too_large")
            return
        stored = await self._bounded(self.store.put(use.key, value, use.ttl), "put", True)
        if stored and use.semantic is not None and self.semantic is not None:
            await self._bounded(self.semantic.remember(use.semantic, use.key), "semantic_put",
                                timeout=self.settings.semantic.timeout)
        metrics.cache_store(use.method, "stored" if stored else "error")

    async def _bounded(self, operation: Any, what: str, done: Any = None, timeout: float = STORE_TIMEOUT) -> Any:
        try:
            result = await asyncio.wait_for(operation, timeout)
        except Exception as exc:  # a cache that fails is a miss, never a failed call
            metrics.cache_error(what)
            # The shared store logs Redis going away and coming back, once each.
            level = logging.DEBUG if isinstance(exc, SharedStateUnavailable) else logging.WARNING
            log.log(level, "response cache %s failed: %s", what, type(exc).__name__)
            return None
        return done if done is not None else result

    async def close(self) -> None:
        await self.store.close()


def encode_chunks(chunks: Sequence[bytes]) -> bytes:
    """A stream's encoded chunks as one value: each prefixed by its length."""
    return b"".join(_FRAME.pack(len(c)) + c for c in chunks)


def decode_chunks(value: bytes) -> list[bytes]:
    chunks, at = [], 0
    while at < len(value):
        (size,) = _FRAME.unpack_from(value, at)
        at += _FRAME.size
        chunks.append(value[at : at + size])
        at += size
    return chunks

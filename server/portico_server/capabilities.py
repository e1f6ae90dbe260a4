"""Answers GetCapabilities: discovery over HTTP, else the built-in table, else configuration.

Discoveries are cached per (provider, model) for `ttl` seconds, so a dashboard polling
capabilities does not turn into upstream traffic.
"""

from __future__ import annotations

import logging
import time

from .domain import Capabilities, Source
from .errors import PorticoError
from .providers.base import Provider

log = logging.getLogger("portico.capabilities")


class CapabilityResolver:
    def __init__(self, ttl: float = 300.0) -> None:
        self.ttl = ttl
        self._cache: dict[tuple[str, str], tuple[float, Capabilities]] = {}

    async def resolve(self, provider: Provider, model: str) -> Capabilities:
        key = (provider.name, model)
        hit = self._cache.get(key)
        now = time.monotonic()
        if hit is not None and hit[0] > now:
            return hit[1]
        caps = await self._lookup(provider, model)
        self._cache[key] = (now + self.ttl, caps)
        return caps

    async def _lookup(self, provider: Provider, model: str) -> Capabilities:
        try:
            found = await provider.discover_capabilities(model)
        except PorticoError as exc:
            # The upstream cannot tell right now; the table or configuration still can.
            log.info("capability discovery failed for %s/%s: %s", provider.name, model, exc.reason)
            found = None
        if found is None:
            found = provider.known_capabilities(model)
        if found is None:
            found = configured(provider, model)
        found.model = found.model or model
        return found


def configured(provider: Provider, model: str) -> Capabilities:
    """Capabilities from the provider's configuration (and its general abilities)."""
    caps = Capabilities(
        model=model,
        supports_tools=provider.supports_tools(model),
        supports_streaming=provider.supports_streaming(model),
        supports_embeddings=provider.supports_embeddings(),
        source=Source.CONFIGURED,
    )
    for name, value in provider.capability_overrides(model).items():
        setattr(caps, name, value)
    return caps

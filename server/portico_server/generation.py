"""Which calls still use the providers of a configuration that a reload replaced.

Every LLMService call counts itself in the generation current when it starts. A reload
retires that generation: its providers take no new calls, and they are closed once the
last call counted in it has finished (a call may have started on the old providers just
before the swap, so no provider is closed under a call that uses it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator

from .providers.base import Provider

log = logging.getLogger("portico.reload")


class Generation:
    """The providers of one loaded configuration and the calls counted against them."""

    def __init__(self, providers: dict[str, Provider]) -> None:
        self.providers = providers
        self.calls = 0
        self._retired = False
        self._closed: asyncio.Future[None] | None = None

    @contextlib.contextmanager
    def call(self) -> Iterator[None]:
        self.calls += 1
        try:
            yield
        finally:
            self.calls -= 1
            if self._retired and self.calls == 0:
                self._close_soon()

    def retire(self) -> None:
        """No new calls come; close the providers once the calls in flight are done."""
        self._retired = True
        if self.calls == 0:
            self._close_soon()

    async def drained(self) -> None:
        """Wait until a retired generation's providers are closed."""
        if self._closed is not None:
            await asyncio.shield(self._closed)

    def _close_soon(self) -> None:
        if self._closed is None:
            self._closed = asyncio.ensure_future(self._close())

    async def _close(self) -> None:
        for provider in self.providers.values():
            try:
                await provider.close()
            except Exception as exc:  # a provider failing to close must not stop the others
                log.warning("closing provider %s after a reload failed: %s", provider.name, type(exc).__name__)
        log.info("closed the providers of the previous configuration: %s", ", ".join(self.providers) or "none")


class Generations:
    """The current generation and the retired ones still draining."""

    def __init__(self, providers: dict[str, Provider]) -> None:
        self.current = Generation(providers)
        self.draining: list[Generation] = []

    @contextlib.contextmanager
    def call(self) -> Iterator[None]:
        with self.current.call():
            yield

    def replace(self, providers: dict[str, Provider]) -> Generation:
        """Make `providers` current; returns the retired generation."""
        old, self.current = self.current, Generation(providers)
        self.draining = [g for g in self.draining if g.calls] + [old]
        old.retire()
        return old

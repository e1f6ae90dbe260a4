"""Prompt-cache breakpoints as Anthropic `cache_control` markers.

Anthropic caches the prompt prefix up to a block that carries
`cache_control: {"type": "ephemeral"}` (tools first, then the system prompt, then the
messages). It takes at most four such blocks per request, lifetimes of five minutes (the
default) or one hour, and a longer-lived breakpoint may not follow a shorter-lived one.
Each rule is checked here, naming the caller's field, instead of becoming an upstream 400.
"""

from __future__ import annotations

from typing import Any

from ...domain import CacheBreakpoint
from ...errors import InvalidRequest

#: Anthropic's limit of cache_control blocks per request.
MAX_BREAKPOINTS = 4
#: The lifetimes Anthropic accepts, in seconds, as it spells them.
TTLS = {300: "5m", 3600: "1h"}
_DEFAULT_TTL = 300


class Breakpoints:
    """Collects the breakpoints of one request body, in prompt order (tools, system,
    messages), and checks them once the body is built."""

    def __init__(self) -> None:
        self._tools: list[tuple[str, int]] = []
        self._system: list[tuple[str, int]] = []
        self._messages: list[tuple[str, int]] = []

    def mark(self, block: dict[str, Any], cache: CacheBreakpoint, where: str, *, section: str = "messages") -> None:
        """Put `cache_control` on `block`; `where` names the caller's field for errors."""
        ttl = cache.ttl_seconds
        control: dict[str, Any] = {"type": "ephemeral"}
        if ttl is not None:
            if ttl not in TTLS:
                raise InvalidRequest([(f"{where}.ttl_seconds", f"must be 300 or 3600 for Anthropic, got {ttl}")])
            control["ttl"] = TTLS[ttl]
        block["cache_control"] = control
        {"tools": self._tools, "system": self._system}.get(section, self._messages).append(
            (where, ttl or _DEFAULT_TTL))

    def check(self) -> None:
        ordered = self._tools + self._system + self._messages
        if len(ordered) > MAX_BREAKPOINTS:
            where = ordered[MAX_BREAKPOINTS][0]
            raise InvalidRequest([(where, f"is cache breakpoint number {len(ordered)}: Anthropic takes at most "
                                          f"{MAX_BREAKPOINTS} per request")])
        shortest = None
        for where, ttl in ordered:
            if shortest is not None and ttl > shortest:
                raise InvalidRequest([(f"{where}.ttl_seconds", "a 1-hour breakpoint must not follow a 5-minute one "
                                                               "(tools, then system, then messages)")])
            shortest = ttl if shortest is None else min(shortest, ttl)

"""Tool-call ids that every provider accepts.

Ids travel between providers: a conversation started on Gemini may continue on OpenAI
(ids of at most 40 characters) or Anthropic (`^[a-zA-Z0-9_-]+$`). Ids Portico makes are
`call_` and 24 hex digits; an id from elsewhere that fits `^[a-zA-Z0-9_-]{1,40}$` goes out
unchanged, any other is replaced by a digest of itself, the same one in the assistant's
tool calls and in the tool message that answers them, so the pair still matches.
"""

from __future__ import annotations

import hashlib
import re

_PORTABLE = re.compile(r"^[a-zA-Z0-9_-]{1,40}$")


def synthesized_call_id(*facts: str | int) -> str:
    """A stable id for a call the provider gave none: the same facts give the same id."""
    digest = hashlib.sha256("\0".join(str(f) for f in facts).encode()).hexdigest()[:24]
    return f"call_{digest}"


def portable_call_id(call_id: str) -> str:
    """`call_id` if every provider accepts it, else a deterministic replacement that does.
    An empty id stays empty (the caller's mistake, reported where it matters)."""
    if not call_id or _PORTABLE.match(call_id):
        return call_id
    return synthesized_call_id("portable", call_id)

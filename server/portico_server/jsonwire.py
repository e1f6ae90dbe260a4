"""Decoding upstream JSON bodies.

orjson decodes about ten times faster than the standard library, which matters most for
embeddings sent as JSON numbers (16 vectors of 1,536 floats are half a megabyte of text;
the standard decoder spent more than half of the gateway's CPU on them). What orjson
refuses but the standard library accepts (NaN, Infinity, numbers beyond double range)
falls back to it, so nothing that decoded before fails now. One difference remains:
orjson reads an integer beyond 64 bits as a float, where `json` keeps it exact.
"""

from __future__ import annotations

import json
from typing import Any

import orjson


def loads(data: bytes | str) -> Any:
    """Decode JSON; raises ValueError when it is not JSON, or nests deeper than orjson's
    limit of 1,024 levels (which the standard decoder would meet as a RecursionError)."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        try:
            return json.loads(data)
        except RecursionError:
            raise ValueError("JSON nested too deeply") from None

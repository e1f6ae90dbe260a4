"""JSON parsing with a nesting limit, for every JSON text a caller sends.

`json.loads` recurses once per nesting level, so a text nested a few thousand levels
deep raises RecursionError (and later serializers and schema walkers would hit the same
wall). The depth is measured first without recursion: strings are blanked out by one
regular expression and the running balance of the remaining brackets is summed in C.
"""

from __future__ import annotations

import json
import re
from itertools import accumulate
from typing import Any

#: Deeper than any real tool schema or arguments object, far below Python's recursion limit.
MAX_DEPTH = 64

_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


class JsonTooDeep(ValueError):
    """A JSON text nests deeper than the limit."""

    def __init__(self, depth: int, limit: int) -> None:
        super().__init__(f"nests {depth} levels deep; the limit is {limit}")
        self.depth = depth
        self.limit = limit


def nesting_depth(text: str) -> int:
    """The deepest bracket nesting of `text` outside JSON strings. An unterminated
    string counts its brackets too, which can only overstate the depth."""
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    if not brackets:
        return 0
    return max(0, *accumulate(map(_STEP.__getitem__, brackets)))


def check_depth(text: str, limit: int = MAX_DEPTH) -> None:
    """Raise JsonTooDeep when `text` nests deeper than `limit`."""
    if text.count("[") + text.count("{") <= limit:
        return  # cannot nest deeper than it has brackets: the common case, at C speed
    depth = nesting_depth(text)
    if depth > limit:
        raise JsonTooDeep(depth, limit)


def loads(text: str | bytes, limit: int = MAX_DEPTH) -> Any:
    """`json.loads`, refusing a text nested deeper than `limit` before parsing it.
    Raises ValueError: JsonTooDeep, json.JSONDecodeError, or UnicodeDecodeError for bytes
    that are not UTF-8."""
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    check_depth(text, limit)
    return json.loads(text)

"""Embedding vectors as packed little-endian float32: the bytes of the protobuf `repeated
float` field and of OpenAI's base64 encoding, with no Python object per value.

A 1,536-dimension vector as a list is 1,536 float objects (about 37 KB) made and read one
by one; packed it is one 6 KB `bytes` that moves by copying.
"""

from __future__ import annotations

import binascii
import sys
from array import array
from base64 import b64decode
from collections.abc import Iterable

_BIG_ENDIAN = sys.byteorder == "big"


def pack(values: Iterable[float]) -> bytes:
    """Pack numbers as float32. Raises TypeError for anything that is not a number."""
    packed = array("f", values)
    if _BIG_ENDIAN:
        packed.byteswap()
    return packed.tobytes()


def from_base64(text: str) -> bytes | None:
    """The packed vector of OpenAI's `encoding_format: base64`; None when `text` is not
    base64 of whole float32 values."""
    try:
        raw = b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if len(raw) % 4 == 0 else None


def unpack(packed: bytes) -> list[float]:
    """The values of a packed vector, for code that needs Python floats."""
    values = array("f")
    values.frombytes(packed)
    if _BIG_ENDIAN:
        values.byteswap()
    return values.tolist()


def dimensions(packed: bytes) -> int:
    return len(packed) // 4

"""Protobuf enum values as the words people write: STOP_REASON_END_TURN reads "end_turn".

The short names are the ones the gateway's configuration and the CLI use; protobuf's own
`StopReason.Name(value)` still gives the full constant name.
"""

from __future__ import annotations

from typing import Any


def enum_name(enum_type: Any, value: int) -> str:
    """The value's name without its type prefix, lower-cased ("end_turn", "serving");
    "unspecified" for 0, and the number as text for a value newer than this client."""
    try:
        full: str = enum_type.Name(value)
    except ValueError:
        return str(value)
    prefix = _prefix(enum_type)
    return full.removeprefix(prefix).lower()


def _prefix(enum_type: Any) -> str:
    # Every Portico enum's values start with the type's name in upper snake case and "_":
    # the name of its 0 value minus "UNSPECIFIED".
    zero: str = enum_type.Name(0)
    return zero.removesuffix("UNSPECIFIED")

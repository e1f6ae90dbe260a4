"""Counting a request's items on the wire, before it is decoded.

Decoding a protobuf message is one C call that holds the GIL: a legal 16 MiB request of
eight million empty messages takes seconds to decode, and no thread can hide that from the
event loop. So the gateway first walks the encoded bytes, counts the repeated fields that
`server.limits` bounds, and stops at the first limit crossed. The walk is Python (a thread
running it lets the loop in every few milliseconds) and reads at most as many fields as the
limits allow, however large the request.
"""

from __future__ import annotations

from dataclasses import dataclass

from google.protobuf.descriptor import Descriptor

from .config import RequestLimits
from .errors import RequestTooLarge

#: Repeated request fields bounded by `server.limits`, by field name -> the limit's name.
_COUNTED = {
    "messages": "messages",
    "parts": "parts",
    "tool_calls": "parts",
    "tools": "tools",
    "stop_sequences": "stop_sequences",
    "tags": "tags",
    "inputs": "embed_inputs",
    "records": "vector_records",
    "ids": "vector_records",
}
#: Fields of any kind, at any depth, per item the limits allow. Generous for real requests
#: (a message, a part or a tool is a handful of fields); what it stops is a singular field
#: repeated millions of times, which protobuf accepts (the last one wins).
_FIELDS_PER_ITEM = 8


class Malformed(Exception):
    """The bytes are not a protobuf message; decoding them will say so."""


@dataclass(slots=True)
class _Walk:
    limits: dict[str, int]
    counts: dict[str, int]
    fields_left: int


class Census:
    """Checks encoded requests against one set of limits."""

    def __init__(self, limits: RequestLimits) -> None:
        self.caps: dict[str, int] = limits.model_dump()
        self.fields = _FIELDS_PER_ITEM * sum(self.caps.values()) + 1024
        # Every field takes at least two bytes, so a request shorter than this cannot
        # cross any limit: most requests skip the walk.
        self.short = 2 * (min(self.caps.values()) + 1)

    def check(self, data: bytes, descriptor: Descriptor) -> None:
        """Raise `RequestTooLarge` naming the field and the limit when `data` (an encoded
        `descriptor` message) holds more items than the limits allow. Malformed input
        passes: decoding reports it."""
        if len(data) < self.short:
            return
        walk = _Walk(self.caps, dict.fromkeys(self.caps, 0), self.fields)
        try:
            _walk(data, 0, len(data), descriptor, "", walk)
        except Malformed:
            return


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise Malformed
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7


#: Per field number of a message type: (name, the limit counting it, the message type to
#: walk into, repeated).
_Layout = dict[int, tuple[str, str | None, Descriptor | None, bool]]
_layouts: dict[str, _Layout] = {}


def _layout(descriptor: Descriptor) -> _Layout:
    layout = _layouts.get(descriptor.full_name)
    if layout is None:
        layout = {}
        for f in descriptor.fields:
            repeated = f.is_repeated
            sub = f.message_type
            if sub is not None and sub.GetOptions().map_entry:
                sub = None  # a map entry is a key and a value: nothing to count inside
            layout[f.number] = (f.name, _COUNTED.get(f.name) if repeated else None, sub, repeated)
        _layouts[descriptor.full_name] = layout
    return layout


def _walk(data: bytes, pos: int, end: int, descriptor: Descriptor, path: str, walk: _Walk) -> None:
    fields = _layout(descriptor)
    index: dict[str, int] = {}
    while pos < end:
        byte = data[pos]
        if byte < 0x80:  # one-byte tag: every field number below 16
            tag, pos = byte, pos + 1
        else:
            tag, pos = _varint(data, pos)
        walk.fields_left -= 1
        if walk.fields_left < 0:
            where = path.rstrip(".") or "request"
            raise RequestTooLarge(
                f"{where}: holds more protobuf fields than its items account for (a field "
                "repeated over and over); the limits in server.limits bound them",
                limit="server.limits", field=path.rstrip("."),
            )
        kind = tag & 7
        if kind == 0:
            _, pos = _varint(data, pos)
            continue
        if kind == 1:
            pos += 8
            continue
        if kind == 5:
            pos += 4
            continue
        if kind in (3, 4):  # the start or end of a group (legal for unknown fields): no payload
            continue
        if kind != 2:
            raise Malformed
        length, pos = _varint(data, pos)
        stop = pos + length
        if stop > end:
            raise Malformed
        field = fields.get(tag >> 3)
        if field is not None:
            name, limit, message, repeated = field
            if limit is not None:
                count = walk.counts[limit] + 1
                walk.counts[limit] = count
                if count > walk.limits[limit]:
                    raise _over(f"{path}{name}", limit, walk.limits[limit])
            if message is not None:
                if repeated:
                    at = index.get(name, 0)
                    index[name] = at + 1
                    inner = f"{path}{name}[{at}]."
                else:
                    inner = f"{path}{name}."
                _walk(data, pos, stop, message, inner, walk)
        pos = stop
    if pos != end:
        raise Malformed


def _over(field: str, limit: str, value: int) -> RequestTooLarge:
    what = "content parts and tool calls across all messages" if limit == "parts" else "items"
    return RequestTooLarge(
        f"{field}: holds more than {value} {what}; the gateway accepts at most {value} "
        f"(server.limits.{limit})",
        limit=f"server.limits.{limit}={value}",
        field=field,
    )

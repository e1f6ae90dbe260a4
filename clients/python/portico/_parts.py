"""Content parts made pleasant: media from bytes, a path or a URL, prompt-cache
breakpoints, and the assistant message that carries an answer's parts back on the next
turn."""

from __future__ import annotations

import mimetypes
import os
from collections.abc import Iterable
from typing import TypeVar, overload

from ._trace import ChatResponse
from .v1 import llm_service_pb2, types_pb2

#: What a provider fetches itself; anything else given as a str is a local file path.
_URI_SCHEMES = ("http://", "https://", "gs://", "data:")

MediaSource = bytes | str | os.PathLike[str]


def media(source: MediaSource, *, mime_type: str = "", detail: str = "") -> types_pb2.ContentPart:
    """A media part: inline `bytes`, an http(s)/gs:// URL or data: URI, or a file path
    (read now, its type guessed from the extension). For inline bytes of PNG, JPEG, GIF,
    WebP or PDF the gateway recognises the type; for anything else pass `mime_type`."""
    part = types_pb2.Media(mime_type=mime_type, detail=detail)
    if isinstance(source, bytes):
        part.data = source
    elif isinstance(source, str) and source.lower().startswith(_URI_SCHEMES):
        part.uri = source
        part.mime_type = mime_type or _guess(source.split("?", 1)[0])
    elif isinstance(source, str | os.PathLike):
        path = os.fspath(source)
        with open(path, "rb") as file:
            part.data = file.read()
        part.mime_type = mime_type or _guess(path)
    else:
        raise TypeError(f"media: expected bytes, a URL or a path, got {type(source).__name__}")
    return types_pb2.ContentPart(media=part)


def image(source: MediaSource, *, mime_type: str = "", detail: str = "") -> types_pb2.ContentPart:
    """An image part (see `media`); `detail` is the provider's hint: "low", "high", "auto"."""
    return media(source, mime_type=mime_type, detail=detail)


def document(source: MediaSource, *, mime_type: str = "") -> types_pb2.ContentPart:
    """A document part, such as a PDF (see `media`)."""
    return media(source, mime_type=mime_type)


Cacheable = TypeVar("Cacheable", types_pb2.Message, types_pb2.ContentPart, types_pb2.ToolDefinition)


def cache_breakpoint(ttl: int | None = None) -> types_pb2.CacheBreakpoint:
    """A prompt-cache breakpoint; `ttl` in seconds (Anthropic: 300 or 3600), None for the
    provider's default."""
    breakpoint_ = types_pb2.CacheBreakpoint()
    if ttl is not None:
        breakpoint_.ttl_seconds = ttl
    return breakpoint_


@overload
def cache(item: str, ttl: int | None = None) -> types_pb2.ContentPart: ...
@overload
def cache(item: Cacheable, ttl: int | None = None) -> Cacheable: ...
def cache(item: object, ttl: int | None = None) -> object:
    """Mark a message, a part or a tool as a prompt-cache breakpoint: the provider may cache
    the prompt up to and including it (Anthropic `cache_control`; providers that cache
    on their own ignore it). A str becomes a text part. Returns the item, marked.

        client.chat([cache({"role": "system", ...}) ...])  # dicts: pass "cache": True instead
        tools=[cache(tool("lookup", Args), ttl=3600)]
    """
    if isinstance(item, str):
        return cache(types_pb2.ContentPart(text=item), ttl)
    if not isinstance(item, types_pb2.Message | types_pb2.ContentPart | types_pb2.ToolDefinition):
        raise TypeError(f"cache: expected a Message, a ContentPart, a ToolDefinition or a str, "
                        f"got {type(item).__name__} (in a dict, pass \"cache\": True or a TTL instead)")
    item.cache.CopyFrom(cache_breakpoint(ttl))
    return item


def cache_from_value(value: object, where: str) -> types_pb2.CacheBreakpoint | None:
    """The breakpoint a dict's "cache" key asks for: True (the provider's default TTL),
    a TTL in seconds, or False/None (none)."""
    if value is None or value is False:
        return None
    if value is True:
        return cache_breakpoint()
    if isinstance(value, int):
        return cache_breakpoint(value)
    raise TypeError(f"{where}.cache: expected True, False or a TTL in seconds")


def _guess(name: str) -> str:
    if name.lower().startswith("data:"):
        return ""  # the data: URI names its own type
    return mimetypes.guess_type(name)[0] or ""


def assistant_message(response: llm_service_pb2.CompletionResponse | ChatResponse) -> types_pb2.Message:
    """The answer as the assistant message to put in the next turn's conversation: its
    parts (text and reasoning, signatures included, unchanged) and its tool calls. A
    provider that signs its reasoning refuses a next turn that lost or changed them."""
    if isinstance(response, ChatResponse):
        response = response.message
    message = types_pb2.Message(role=types_pb2.ROLE_ASSISTANT, tool_calls=response.tool_calls)
    if response.parts:
        message.parts.extend(response.parts)
    else:
        message.content = response.content
    return message


def reasoning_parts(parts: Iterable[types_pb2.ContentPart]) -> list[types_pb2.Reasoning]:
    """The reasoning parts among `parts` (of a response or a message), in order."""
    return [p.reasoning for p in parts if p.WhichOneof("part") == "reasoning"]

"""Content parts made pleasant: media from bytes, a path or a URL, and the assistant
message that carries an answer's parts back on the next turn."""

from __future__ import annotations

import mimetypes
import os
from collections.abc import Iterable

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

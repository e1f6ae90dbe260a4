"""The canonical hash of a chat request: equal for requests that ask the same thing.

The request is hashed after decoding (domain types), so what the wire allows to differ
without changing the question does not change the key: the order of JSON object keys in
tool schemas and response formats, a message's text sent as `content` or as text parts,
a field left unset or set to its empty value. Per-call facts (request id, tags, priority,
deadline) are not part of the question and stay out.
"""

from __future__ import annotations

import base64
import dataclasses
import enum
import hashlib
from typing import Any

import orjson

from ..domain import ChatRequest, Message, Role

#: Bumped when the canonical form changes, so old entries are never misread.
VERSION = 1

#: Fields that repeat another field's content in another encoding.
_ENCODINGS = frozenset({"parameters_json"})


def request_key(kind: str, provider: str, model: str, chat: ChatRequest, scope: str = "") -> str:
    """The hex SHA-256 of the call: `kind` ("chat" or "stream"), the route as the caller
    named it, the request, and `scope` (a caller name when answers are kept per caller)."""
    return _digest({"v": VERSION, "kind": kind, "provider": provider, "model": model, "scope": scope,
                    "request": canonical(chat)})


def context_key(provider: str, model: str, chat: ChatRequest, scope: str = "") -> str:
    """The hash of everything but the last user message's text: the semantic cache answers
    a similar question only within the same conversation, route and options."""
    messages = list(chat.messages)
    last = last_user_index(messages)
    if last is not None:
        messages[last] = Message(role=Role.USER)
    stripped = dataclasses.replace(chat, messages=messages)
    return _digest({"v": VERSION, "kind": "context", "provider": provider, "model": model, "scope": scope,
                    "request": canonical(stripped)})


def last_user_index(messages: list[Message]) -> int | None:
    for i in range(len(messages) - 1, -1, -1):
        if messages[i].role is Role.USER:
            return i
    return None


def canonical(value: Any) -> Any:
    """A JSON-ready form in which empty and unset are one thing and text-only parts are
    plain content."""
    if isinstance(value, Message):
        return _message(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _fields(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, dict):
        return {str(k): canonical(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [canonical(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)  # 0.0 and 0 ask the same
    return value


def _message(message: Message) -> Any:
    parts = message.parts
    if parts and all(p.text is not None and p.media is None and p.reasoning is None and p.cache is None
                     for p in parts):
        message = dataclasses.replace(message, content=message.text(), parts=[])
    return _fields(message)


def _fields(value: Any) -> dict[str, Any]:
    out = {}
    for f in dataclasses.fields(value):
        if f.name in _ENCODINGS:
            continue
        item = canonical(getattr(value, f.name))
        if item not in (None, "", [], {}):
            out[f.name] = item
    return out


def _digest(document: dict[str, Any]) -> str:
    return hashlib.sha256(orjson.dumps(document, option=orjson.OPT_SORT_KEYS)).hexdigest()

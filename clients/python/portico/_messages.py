"""Conversation messages from protobuf objects or plain dicts."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar, cast

from ._parts import assistant_message, cache_from_value
from ._trace import ChatResponse
from .v1 import llm_service_pb2, types_pb2

#: A message, a dict like {"role": "user", "content": "hi"}, or an earlier answer (which
#: stands for the assistant message `assistant_message` makes of it).
MessageLike = types_pb2.Message | llm_service_pb2.CompletionResponse | ChatResponse | Mapping[str, Any]
#: A conversation, or a single string meaning one user message.
MessagesLike = str | Sequence[MessageLike]

_MESSAGE_KEYS = {"role", "content", "parts", "name", "tool_calls", "tool_call_id", "cache"}
_ROLES = {
    "system": types_pb2.ROLE_SYSTEM,
    "user": types_pb2.ROLE_USER,
    "assistant": types_pb2.ROLE_ASSISTANT,
    "tool": types_pb2.ROLE_TOOL,
}


def to_messages(messages: MessagesLike) -> list[types_pb2.Message]:
    """The conversation as protobuf. A str is one user message."""
    if isinstance(messages, str):
        return [types_pb2.Message(role=types_pb2.ROLE_USER, content=messages)]
    if isinstance(messages, Mapping | types_pb2.Message | llm_service_pb2.CompletionResponse | ChatResponse):
        raise TypeError("messages: expected a list of messages (or a str), got a single message")
    return [_message(m, f"messages[{i}]") for i, m in enumerate(messages)]


def _message(value: MessageLike, where: str) -> types_pb2.Message:
    if isinstance(value, types_pb2.Message):
        return value
    if isinstance(value, llm_service_pb2.CompletionResponse | ChatResponse):
        return assistant_message(value)
    if not isinstance(value, Mapping):
        raise TypeError(f"{where}: expected a Message or a dict, got {type(value).__name__}")
    unknown = set(value) - _MESSAGE_KEYS
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {sorted(unknown)}")
    message = types_pb2.Message(
        role=_role(value.get("role"), f"{where}.role"),
        name=str(value.get("name", "")),
        tool_call_id=str(value.get("tool_call_id", "")),
    )
    content = value.get("content")
    if isinstance(content, list):
        # An OpenAI-style list of parts under `content`.
        message.parts.extend(_parts(content, f"{where}.content"))
    elif content is not None:
        message.content = str(content)
    message.parts.extend(_parts(value.get("parts") or [], f"{where}.parts"))
    message.tool_calls.extend(
        _tool_call(c, f"{where}.tool_calls[{i}]") for i, c in enumerate(value.get("tool_calls") or [])
    )
    breakpoint_ = cache_from_value(value.get("cache"), where)
    if breakpoint_ is not None:
        message.cache.CopyFrom(breakpoint_)
    return message


def _role(value: Any, where: str) -> types_pb2.Role:
    if isinstance(value, int) and not isinstance(value, bool) and value in _ROLES.values():
        return cast(types_pb2.Role, value)
    if isinstance(value, str):
        key = value.lower().removeprefix("role_")
        if key in _ROLES:
            return _ROLES[key]
    raise ValueError(f"{where}: expected one of {sorted(_ROLES)}, got {value!r}")


def _parts(values: Sequence[Any], where: str) -> list[types_pb2.ContentPart]:
    parts = []
    for i, item in enumerate(values):
        at = f"{where}[{i}]"
        if isinstance(item, types_pb2.ContentPart):
            parts.append(item)
        elif isinstance(item, str):
            parts.append(types_pb2.ContentPart(text=item))
        elif isinstance(item, Mapping) and "text" in item:
            parts.append(types_pb2.ContentPart(text=str(item["text"]), cache=cache_from_value(item.get("cache"), at)))
        elif isinstance(item, Mapping) and "media" in item:
            parts.append(types_pb2.ContentPart(media=_media(item["media"], f"{at}.media"),
                                               cache=cache_from_value(item.get("cache"), at)))
        elif isinstance(item, Mapping) and "reasoning" in item:
            parts.append(types_pb2.ContentPart(reasoning=_reasoning(item["reasoning"], f"{at}.reasoning")))
        else:
            raise ValueError(
                f"{at}: expected a str, a ContentPart, {{'text': ...}}, {{'media': ...}} or {{'reasoning': ...}}"
            )
    return parts


def _media(value: Any, where: str) -> types_pb2.Media:
    if isinstance(value, str):
        return types_pb2.Media(uri=value)
    return _from_dict(value, types_pb2.Media, where)


def _reasoning(value: Any, where: str) -> types_pb2.Reasoning:
    return _from_dict(value, types_pb2.Reasoning, where)


PartT = TypeVar("PartT", types_pb2.Media, types_pb2.Reasoning)


def _from_dict(value: Any, cls: type[PartT], where: str) -> PartT:
    """`value` itself when it is a `cls`, else `cls` made from a dict of its fields."""
    if isinstance(value, cls):
        return value
    if not isinstance(value, Mapping):
        raise TypeError(f"{where}: expected a dict or a {cls.__name__}")
    unknown = set(value) - set(cls.DESCRIPTOR.fields_by_name)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {sorted(unknown)}")
    return cls(**value)


def _tool_call(value: Any, where: str) -> types_pb2.ToolCall:
    if isinstance(value, types_pb2.ToolCall):
        return value
    if not isinstance(value, Mapping):
        raise TypeError(f"{where}: expected a ToolCall or a dict")
    arguments = value.get("arguments", "")
    if not isinstance(arguments, str):
        arguments = json.dumps(arguments, ensure_ascii=False)
    return types_pb2.ToolCall(id=str(value.get("id", "")), name=str(value.get("name", "")), arguments=arguments)

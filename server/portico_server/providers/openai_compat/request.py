"""Domain requests as OpenAI JSON: Chat Completions bodies, and the shape of OpenAI's
token counter (POST /responses/input_tokens)."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from ...domain import ChatRequest, MediaPart, Message, ResponseFormatType, Role, ToolChoiceMode
from ..base import merge_passthrough
from .presets import Preset

JSON = dict[str, Any]


def _image_url(image: MediaPart) -> str:
    """The image's URL, or its bytes as a data URL."""
    if image.uri:
        return image.uri
    return f"data:{image.mime_type or 'image/png'};base64,{base64.b64encode(image.data).decode()}"


def message_json(message: Message, *, strict: bool = False) -> JSON:
    """One domain message as a Chat Completions message."""
    out: JSON = {"role": message.role.value}
    if message.role is Role.TOOL:
        out["tool_call_id"] = message.tool_call_id
        out["content"] = message.text()
        return out
    if any(part.media is not None for part in message.parts):
        content: list[JSON] = []
        for part in message.parts:
            if part.text is not None:
                content.append({"type": "text", "text": part.text})
            elif part.media is not None:
                image: JSON = {"url": _image_url(part.media)}
                if part.media.detail:
                    image["detail"] = part.media.detail
                content.append({"type": "image_url", "image_url": image})
        out["content"] = content
    else:
        text = message.text()
        # An assistant turn made only of tool calls has no text; OpenAI wants null there.
        out["content"] = text if text or not message.tool_calls or strict else None
    if message.name and not strict:
        out["name"] = message.name
    if message.tool_calls:
        out["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in message.tool_calls
        ]
    return out


def _tool_choice(request: ChatRequest, preset: Preset) -> Any:
    choice = request.tool_choice
    if choice is None or choice.mode is ToolChoiceMode.UNSPECIFIED:
        return None
    if choice.mode is ToolChoiceMode.TOOL:
        return {"type": "function", "function": {"name": choice.tool_name}}
    if choice.mode is ToolChoiceMode.REQUIRED:
        return preset.tool_choice_required
    return choice.mode.value  # "auto" or "none"


def _response_format(request: ChatRequest) -> JSON | None:
    fmt = request.response_format
    if fmt is None or fmt.type is ResponseFormatType.TEXT:
        return None
    if fmt.type is ResponseFormatType.JSON_OBJECT:
        return {"type": "json_object"}
    schema: JSON = {"name": fmt.name or "response", "schema": fmt.schema or {}}
    if fmt.strict:
        schema["strict"] = True
    return {"type": "json_schema", "json_schema": schema}


def uses_max_completion_tokens(model: str, preset: Preset, setting: str = "auto") -> bool:
    if setting != "auto":
        return setting == "max_completion_tokens"
    bare = model.rsplit("/", 1)[-1]
    return any(bare.startswith(prefix) for prefix in preset.max_completion_tokens_models)


def chat_body(
    request: ChatRequest,
    preset: Preset,
    *,
    stream: bool,
    stream_usage: bool | None = None,
    max_tokens_field: str = "auto",
    extra_body: Mapping[str, Any] | None = None,
) -> JSON:
    """The JSON body of POST /chat/completions for `request` (passthrough merged last)."""
    body: JSON = {
        "model": request.model,
        "messages": [message_json(m, strict=preset.strict_fields) for m in request.messages],
    }
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.top_p is not None:
        body["top_p"] = request.top_p
    if request.max_tokens is not None:
        field = "max_completion_tokens" if uses_max_completion_tokens(
            request.model, preset, max_tokens_field) else "max_tokens"
        body[field] = request.max_tokens
    if request.stop:
        body["stop"] = list(request.stop)
    if request.seed is not None:
        body[preset.seed_field] = request.seed
    if request.tools:
        tools = []
        for tool in request.tools:
            function: JSON = {"name": tool.name}
            if tool.description:
                function["description"] = tool.description
            function["parameters"] = tool.parameters or {"type": "object", "properties": {}}
            tools.append({"type": "function", "function": function})
        body["tools"] = tools
    choice = _tool_choice(request, preset)
    if choice is not None:
        body["tool_choice"] = choice
    response_format = _response_format(request)
    if response_format is not None:
        body["response_format"] = response_format
    if stream:
        body["stream"] = True
        if preset.stream_usage if stream_usage is None else stream_usage:
            body["stream_options"] = {"include_usage": True}
    if extra_body:
        body.update(extra_body)
    return merge_passthrough(body, request.passthrough)


def responses_input(request: ChatRequest) -> JSON:
    """A chat request in the shape of POST /responses/input_tokens (OpenAI's counter)."""
    items: list[JSON] = []
    for m in request.messages:
        if m.role is Role.TOOL:
            items.append({"type": "function_call_output", "call_id": m.tool_call_id, "output": m.text()})
            continue
        if any(part.media is not None for part in m.parts):
            kind = "output_text" if m.role is Role.ASSISTANT else "input_text"
            content: list[JSON] = []
            for part in m.parts:
                if part.text is not None:
                    content.append({"type": kind, "text": part.text})
                elif part.media is not None:
                    content.append({"type": "input_image", "image_url": _image_url(part.media),
                                    "detail": part.media.detail or "auto"})
            items.append({"role": m.role.value, "content": content})
        elif m.text() or not m.tool_calls:
            items.append({"role": m.role.value, "content": m.text()})
        for call in m.tool_calls:
            items.append({"type": "function_call", "call_id": call.id, "name": call.name,
                          "arguments": call.arguments})
    body: JSON = {"model": request.model, "input": items}
    if request.tools:
        body["tools"] = [
            {"type": "function", "name": t.name, "description": t.description,
             "parameters": t.parameters or {"type": "object", "properties": {}}}
            for t in request.tools
        ]
    return body

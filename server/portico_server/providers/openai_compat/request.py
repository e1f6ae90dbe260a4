"""Domain requests as OpenAI JSON: Chat Completions bodies, and the shape of OpenAI's
token counter (POST /responses/input_tokens).

Images go as `image_url` parts and other media (PDFs) as `file` parts; an assistant
message's reasoning goes back only in the field the preset says its server takes
(`Preset.reasoning_back`), since plain Chat Completions has none.
"""

from __future__ import annotations

import base64
import json
import mimetypes
from collections.abc import Mapping
from typing import Any, Literal

from ...domain import ChatRequest, MediaPart, Message, ReasoningEffort, ResponseFormatType, Role, ToolChoiceMode
from ...errors import InvalidRequest
from ..base import merge_passthrough
from ..call_ids import portable_call_id
from ..reasoning_controls import budget_for, effort_for, reasoning_unsupported
from .presets import Preset

JSON = dict[str, Any]
#: The `source` of the reasoning parts this dialect returns and takes back.
REASONING_SOURCE = "openai"
ReasoningBack = Literal["", "reasoning_content", "reasoning_details"]


def _is_image(media: MediaPart) -> bool:
    mime = media.mime_type or _uri_type(media.uri)
    return not mime or mime.startswith("image/")


def _uri_type(uri: str) -> str:
    if uri.startswith("data:"):
        return uri[len("data:"):].partition(",")[0].partition(";")[0]
    return mimetypes.guess_type(uri)[0] or ""


def _data_url(media: MediaPart, default_type: str) -> str:
    """The media's bytes as a data URL; a URI (data: or not) goes as it is."""
    if media.uri.startswith("data:") or not media.data:
        return media.uri
    return f"data:{media.mime_type or default_type};base64,{base64.b64encode(media.data).decode()}"


def _image_url(image: MediaPart) -> str:
    """The image's URL, or its bytes as a data URL."""
    return _data_url(image, "image/png")


#: The document types Chat Completions `file` parts take.
DOCUMENT_TYPES = frozenset({"application/pdf"})


def _document(media: MediaPart, where: str) -> tuple[str, str]:
    """(data URL, file name) of a document: Chat Completions takes files as bytes only."""
    mime = media.mime_type or _uri_type(media.uri)
    if mime not in DOCUMENT_TYPES:
        raise InvalidRequest([(f"{where}.mime_type", f"{mime or 'an unknown type'!r} is not a type OpenAI-compatible "
                                                     "servers read (images, and PDF documents)")])
    if not media.data and not media.uri.startswith("data:"):
        raise InvalidRequest([(f"{where}.uri", "OpenAI-compatible servers take documents as bytes "
                                               "(data, or a base64 data: URL), not a link")])
    return _data_url(media, mime), "document" + (mimetypes.guess_extension(mime) or "")


def _content_list(message: Message, where: str) -> list[JSON]:
    content: list[JSON] = []
    for j, part in enumerate(message.parts):
        if part.text is not None:
            content.append({"type": "text", "text": part.text})
        elif part.media is not None and _is_image(part.media):
            image: JSON = {"url": _image_url(part.media)}
            if part.media.detail:
                image["detail"] = part.media.detail
            content.append({"type": "image_url", "image_url": image})
        elif part.media is not None:
            data, filename = _document(part.media, f"{where}.parts[{j}].media")
            content.append({"type": "file", "file": {"filename": filename, "file_data": data}})
    return content


def _reasoning_back(message: Message, how: ReasoningBack) -> JSON:
    """The assistant message's reasoning in the field this server takes it back in."""
    mine = [p.reasoning for p in message.parts if p.reasoning is not None and p.reasoning.source == REASONING_SOURCE]
    if how == "reasoning_content" and message.tool_calls:
        text = "".join(r.text for r in mine)
        return {"reasoning_content": text} if text else {}
    if how == "reasoning_details":
        details = [d for d in (_detail(r.redacted) for r in mine) if d is not None]
        return {"reasoning_details": details} if details else {}
    return {}


def _detail(raw: str) -> JSON | None:
    """A `reasoning_details` entry kept whole in a part's `redacted` (see `response`)."""
    try:
        value = json.loads(raw) if raw.startswith("{") else None
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def message_json(message: Message, *, strict: bool = False, reasoning_back: ReasoningBack = "",
                 where: str = "message") -> JSON:
    """One domain message as a Chat Completions message. Tool-call ids other providers
    made are made portable (see `call_ids`), the same way on the call and on its answer."""
    out: JSON = {"role": message.role.value}
    if message.role is Role.TOOL:
        out["tool_call_id"] = portable_call_id(message.tool_call_id)
        out["content"] = message.text()
        return out
    if any(part.media is not None for part in message.parts):
        out["content"] = _content_list(message, where)
    else:
        text = message.text()
        # An assistant turn made only of tool calls has no text; OpenAI wants null there.
        out["content"] = text if text or not message.tool_calls or strict else None
    if message.name and not strict:
        out["name"] = message.name
    if message.role is Role.ASSISTANT:
        out.update(_reasoning_back(message, reasoning_back))
    if message.tool_calls:
        out["tool_calls"] = [
            {"id": portable_call_id(c.id), "type": "function",
             "function": {"name": c.name, "arguments": c.arguments}}
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


def _level(effort: ReasoningEffort, levels: tuple[str, ...]) -> str:
    """The server's `reasoning_effort` value for an effort: itself, else the next one up
    the server has (else its highest)."""
    order = [e.value for e in ReasoningEffort]
    for value in order[order.index(effort.value):]:
        if value in levels:
            return value
    return levels[-1]


def reasoning_fields(request: ChatRequest, preset: Preset, provider: str = "") -> JSON:
    """The body fields that carry the request's reasoning controls on this server; raises
    CapabilityUnsupported where the server or model has no knob for them."""
    reasoning = request.reasoning
    if reasoning is None:
        return {}
    knob = preset.reasoning_knob
    bare = request.model.rsplit("/", 1)[-1]
    if knob == "none" or (preset.reasoning_models and not bare.startswith(preset.reasoning_models)):
        why = "the server has no reasoning knob" if knob == "none" else (
            "only " + ", ".join(f"{m}*" for m in preset.reasoning_models) + " take reasoning_effort there")
        raise reasoning_unsupported(provider or preset.name, request.model, why)
    if knob == "openrouter":
        if reasoning.budget_tokens is not None:
            return {"reasoning": {"max_tokens": reasoning.budget_tokens}}
        return {"reasoning": {"effort": effort_for(reasoning).value}}
    if knob == "qwen":
        return {"enable_thinking": True, "thinking_budget": budget_for(reasoning)}
    if knob == "zai":
        return {"thinking": {"type": "enabled"}}  # Z.ai has no budget or level: on is all it takes
    return {"reasoning_effort": _level(effort_for(reasoning), preset.reasoning_levels)}


def chat_body(
    request: ChatRequest,
    preset: Preset,
    *,
    stream: bool,
    stream_usage: bool | None = None,
    max_tokens_field: str = "auto",
    extra_body: Mapping[str, Any] | None = None,
    provider: str = "",
) -> JSON:
    """The JSON body of POST /chat/completions for `request` (passthrough merged last)."""
    body: JSON = {
        "model": request.model,
        "messages": [message_json(m, strict=preset.strict_fields, reasoning_back=preset.reasoning_back,
                                  where=f"messages[{i}]")
                     for i, m in enumerate(request.messages)],
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
    body.update(reasoning_fields(request, preset, provider))
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
    for i, m in enumerate(request.messages):
        if m.role is Role.TOOL:
            items.append({"type": "function_call_output", "call_id": portable_call_id(m.tool_call_id),
                          "output": m.text()})
            continue
        if any(part.media is not None for part in m.parts):
            kind = "output_text" if m.role is Role.ASSISTANT else "input_text"
            content: list[JSON] = []
            for j, part in enumerate(m.parts):
                if part.text is not None:
                    content.append({"type": kind, "text": part.text})
                elif part.media is not None and _is_image(part.media):
                    content.append({"type": "input_image", "image_url": _image_url(part.media),
                                    "detail": part.media.detail or "auto"})
                elif part.media is not None:
                    data, filename = _document(part.media, f"messages[{i}].parts[{j}].media")
                    content.append({"type": "input_file", "filename": filename, "file_data": data})
            items.append({"role": m.role.value, "content": content})
        elif m.text() or not m.tool_calls:
            items.append({"role": m.role.value, "content": m.text()})
        for call in m.tool_calls:
            items.append({"type": "function_call", "call_id": portable_call_id(call.id), "name": call.name,
                          "arguments": call.arguments})
    body: JSON = {"model": request.model, "input": items}
    if request.tools:
        body["tools"] = [
            {"type": "function", "name": t.name, "description": t.description,
             "parameters": t.parameters or {"type": "object", "properties": {}}}
            for t in request.tools
        ]
    return body

"""Domain requests as Responses API bodies (`POST /v1/responses`).

The conversation becomes `input` items: messages, `function_call` items for the
assistant's tool calls, `function_call_output` items for tool results, and `reasoning`
items for the reasoning parts this dialect returned. Leading system messages become
`instructions`; a system message later in the conversation stays an input message.

Reasoning parts of this dialect (source "openai_responses") carry one reasoning item
each: `signature` holds its `encrypted_content`, `text` its summaries joined by a blank
line (for reading), and `redacted` the item without its encrypted content, as compact
JSON, so the item goes back exactly as it came.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ...domain import (
    ChatRequest,
    ContentPart,
    MediaPart,
    Message,
    ReasoningPart,
    ResponseFormatType,
    Role,
    ToolChoiceMode,
)
from ...errors import InvalidRequest, ModelFeatureUnsupported
from ..base import RESERVED_PASSTHROUGH, merge_passthrough
from ..call_ids import portable_call_id
from ..openai_compat.request import _data_url, _is_image, _uri_type
from ..reasoning_controls import effort_for, reasoning_unsupported

JSON = dict[str, Any]
#: The `source` of the reasoning parts this dialect returns and takes back.
REASONING_SOURCE = "openai_responses"
#: `input` and `instructions` come from the messages; the rest as for every dialect.
RESERVED = RESERVED_PASSTHROUGH | {"input", "instructions"}


@dataclass(frozen=True, slots=True)
class BodyOptions:
    """What the provider's configuration adds to every body."""

    store: bool = False
    #: Ask for `reasoning.encrypted_content` (only meaningful with `store: false`).
    encrypted_reasoning: bool = True
    #: `reasoning.summary`, or "" to ask for none.
    reasoning_summary: str = "auto"
    #: The model reasons: it gets a `reasoning` object, and takes reasoning controls.
    reasoning_model: bool = False
    #: The provider's name, for errors.
    provider: str = ""


def build_body(request: ChatRequest, options: BodyOptions, *, stream: bool) -> JSON:
    """The JSON body of POST /responses for `request` (passthrough merged last)."""
    if request.stop:
        raise ModelFeatureUnsupported("the OpenAI Responses API has no stop sequences; send none",
                                      provider=options.provider, metadata={"capability": "stop_sequences"})
    if request.seed is not None:
        raise ModelFeatureUnsupported("the OpenAI Responses API takes no seed; leave it unset",
                                      provider=options.provider, metadata={"capability": "seed"})
    instructions, items = input_items(request.messages, stored=options.store)
    body: JSON = {"model": request.model}
    if instructions:
        body["instructions"] = instructions
    body["input"] = items
    body["store"] = options.store
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.top_p is not None:
        body["top_p"] = request.top_p
    if request.max_tokens is not None:
        body["max_output_tokens"] = request.max_tokens
    if request.tools:
        body["tools"] = tools_json(request)
    choice = _tool_choice(request)
    if choice is not None:
        body["tool_choice"] = choice
    text_format = _text_format(request)
    if text_format is not None:
        body["text"] = {"format": text_format}
    reasoning = _reasoning(request, options)
    if reasoning is not None:
        body["reasoning"] = reasoning
        if options.encrypted_reasoning and not options.store:
            body["include"] = ["reasoning.encrypted_content"]
    if stream:
        body["stream"] = True
    return merge_passthrough(body, request.passthrough, RESERVED)


def count_body(request: ChatRequest, options: BodyOptions) -> JSON:
    """The body of POST /responses/input_tokens: what the model reads, nothing it does."""
    body = build_body(request, options, stream=False)
    return {k: v for k, v in body.items()
            if k in ("model", "instructions", "input", "tools", "tool_choice", "text", "reasoning")}


def tools_json(request: ChatRequest) -> list[JSON]:
    tools = []
    for tool in request.tools:
        entry: JSON = {"type": "function", "name": tool.name}
        if tool.description:
            entry["description"] = tool.description
        entry["parameters"] = tool.parameters or {"type": "object", "properties": {}}
        # The Responses API makes function tools strict unless told otherwise, and strict
        # mode refuses most hand-written schemas (every property required, no extras).
        entry["strict"] = False
        tools.append(entry)
    return tools


def _tool_choice(request: ChatRequest) -> Any:
    choice = request.tool_choice
    if choice is None or choice.mode is ToolChoiceMode.UNSPECIFIED:
        return None
    if choice.mode is ToolChoiceMode.TOOL:
        return {"type": "function", "name": choice.tool_name}
    return choice.mode.value  # "auto", "none" or "required"


def _text_format(request: ChatRequest) -> JSON | None:
    fmt = request.response_format
    if fmt is None or fmt.type is ResponseFormatType.TEXT:
        return None
    if fmt.type is ResponseFormatType.JSON_OBJECT:
        return {"type": "json_object"}
    out: JSON = {"type": "json_schema", "name": fmt.name or "response", "schema": fmt.schema or {}}
    if fmt.strict:
        out["strict"] = True
    return out


def _reasoning(request: ChatRequest, options: BodyOptions) -> JSON | None:
    if not options.reasoning_model:
        if request.reasoning is not None:
            # OpenAI refuses `reasoning` for models that do not reason (a 400).
            raise reasoning_unsupported(options.provider, request.model,
                                        "it is not one of the provider's reasoning_models")
        return None
    out: JSON = {}
    if request.reasoning is not None:
        out["effort"] = effort_for(request.reasoning).value
    if options.reasoning_summary:
        out["summary"] = options.reasoning_summary
    return out


# -- input items ---------------------------------------------------------------------------


def input_items(messages: list[Message], *, stored: bool = False) -> tuple[str, list[JSON]]:
    """(instructions, input items) for a conversation. Without `stored` (store: false), a
    reasoning item that came without encrypted content is left out: OpenAI would look its
    id up in storage, find nothing, and refuse the request."""
    leading = 0
    while leading < len(messages) and messages[leading].role is Role.SYSTEM:
        leading += 1
    instructions = "\n\n".join(m.text() for m in messages[:leading] if m.text())
    items: list[JSON] = []
    for i, message in enumerate(messages[leading:], start=leading):
        where = f"messages[{i}]"
        if message.role is Role.TOOL:
            items.append({"type": "function_call_output", "call_id": portable_call_id(message.tool_call_id),
                          "output": message.text()})
        elif message.role is Role.ASSISTANT:
            items.extend(_assistant_items(message, stored))
        else:
            items.append(_message_item(message, where))
    return instructions, items


def _message_item(message: Message, where: str) -> JSON:
    if not any(part.media is not None for part in message.parts):
        return {"role": message.role.value, "content": message.text()}
    content: list[JSON] = []
    for j, part in enumerate(message.parts):
        if part.text is not None:
            content.append({"type": "input_text", "text": part.text})
        elif part.media is not None:
            content.append(_media(part.media, f"{where}.parts[{j}].media"))
    return {"role": message.role.value, "content": content}


def _media(media: MediaPart, where: str) -> JSON:
    if _is_image(media):
        image: JSON = {"type": "input_image", "image_url": _data_url(media, "image/png")}
        image["detail"] = media.detail or "auto"
        return image
    mime = media.mime_type or _uri_type(media.uri)
    if not mime:
        raise InvalidRequest([(f"{where}.mime_type", "a document needs its MIME type")])
    if media.data or media.uri.startswith("data:"):
        extension = {"application/pdf": ".pdf"}.get(mime, "")
        return {"type": "input_file", "filename": "document" + extension, "file_data": _data_url(media, mime)}
    return {"type": "input_file", "file_url": media.uri}


def _assistant_items(message: Message, stored: bool) -> list[JSON]:
    """An assistant turn in the order it was produced: reasoning items and text, then its
    function calls. Text between reasoning items stays between them."""
    items: list[JSON] = []
    text: list[str] = []

    def flush() -> None:
        if text:
            items.append({"role": "assistant", "content": "".join(text)})
            text.clear()

    parts = message.parts or ([ContentPart(text=message.content)] if message.content else [])
    for part in parts:
        if part.text is not None:
            if part.text:
                text.append(part.text)
        elif (part.reasoning is not None and part.reasoning.source == REASONING_SOURCE
              and (part.reasoning.signature or stored)):
            flush()
            items.append(reasoning_item(part.reasoning))
        # Other dialects' reasoning, and media in an assistant turn, have no place here.
    flush()
    for call in message.tool_calls:
        items.append({"type": "function_call", "call_id": portable_call_id(call.id), "name": call.name,
                      "arguments": call.arguments})
    return items


def reasoning_item(part: ReasoningPart) -> JSON:
    """The reasoning item a part of this dialect stands for, as the API returned it."""
    item = _kept_item(part.redacted)
    if item is None:
        item = {"type": "reasoning",
                "summary": [{"type": "summary_text", "text": part.text}] if part.text else []}
    if part.signature:
        item["encrypted_content"] = part.signature
    return item


def _kept_item(raw: str) -> JSON | None:
    if not raw.startswith("{"):
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) and value.get("type") == "reasoning" else None


def reasoning_part(item: Mapping[str, Any]) -> ReasoningPart:
    """The part that carries a reasoning item of an answer (see the module's docstring)."""
    summary = item.get("summary")
    texts = [str(s.get("text") or "") for s in summary if isinstance(s, dict)] if isinstance(summary, list) else []
    if not texts and isinstance(item.get("content"), list):
        # Open-weight models return their raw reasoning as `content` (reasoning_text).
        texts = [str(c.get("text") or "") for c in item["content"] if isinstance(c, dict)]
    kept = {k: v for k, v in item.items() if k not in ("encrypted_content", "status")}
    return ReasoningPart(
        text="\n\n".join(t for t in texts if t),
        signature=str(item.get("encrypted_content") or ""),
        redacted=json.dumps(kept, ensure_ascii=False, separators=(",", ":")),
        source=REASONING_SOURCE,
    )

"""A chat request as a Converse / ConverseStream body.

System messages become `system` blocks; assistant tool calls `toolUse` blocks and tool
messages `toolResult` blocks in the next user turn; consecutive messages of one Bedrock
role are merged, because Converse wants the turns to alternate. Reasoning parts that
Bedrock returned go back as `reasoningContent` blocks exactly as they came, signature
included: Claude refuses a tool-use turn with thinking when they are changed or missing.
"""

from __future__ import annotations

import base64
import binascii
import mimetypes
from dataclasses import dataclass
from typing import Any

from ... import bounded_json
from ...domain import (
    CacheBreakpoint,
    ChatRequest,
    ContentPart,
    MediaPart,
    Message,
    ReasoningPart,
    ResponseFormatType,
    Role,
    ToolChoiceMode,
)
from ...errors import InvalidRequest
from ..base import RESERVED_PASSTHROUGH
from ..call_ids import portable_call_id

#: The `source` of the reasoning parts this dialect returns and takes back.
REASONING_SOURCE = "bedrock"

#: Converse names formats, not MIME types.
_IMAGE_FORMATS = {"image/png": "png", "image/jpeg": "jpeg", "image/gif": "gif", "image/webp": "webp"}
_DOCUMENT_FORMATS = {
    "application/pdf": "pdf",
    "text/csv": "csv",
    "application/msword": "doc",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
    "application/vnd.ms-excel": "xls",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "xlsx",
    "text/html": "html",
    "text/plain": "txt",
    "text/markdown": "md",
}

#: Keys of the Converse body that the typed fields own; passthrough may not set them.
#: (`inferenceConfig` and `additionalModelRequestFields` are merged key by key instead.)
BEDROCK_RESERVED_PASSTHROUGH = RESERVED_PASSTHROUGH | {"system", "toolconfig", "modelid"}

_ANSWER_TOOL_DESCRIPTION = (
    "Give your final answer by calling this tool. Its input is the answer, and nothing "
    "else is shown to the user."
)


@dataclass(slots=True)
class Plan:
    """The Converse body, and the name of the tool that carries a structured answer."""

    body: dict[str, Any]
    answer_tool: str = ""


def build_plan(
    request: ChatRequest,
    *,
    additional_fields: dict[str, Any] | None = None,
    guardrail: dict[str, Any] | None = None,
) -> Plan:
    """The body for `POST /model/{id}/converse` (and `converse-stream`, the same body).
    `additional_fields` are model-specific fields (reasoning switches), `guardrail` the
    provider's configured `guardrailConfig`; the caller's passthrough wins over both."""
    system, messages = convert_messages(request.messages)
    body: dict[str, Any] = {"messages": messages}
    if system:
        body["system"] = system
    inference: dict[str, Any] = {}
    if request.max_tokens is not None:
        inference["maxTokens"] = request.max_tokens
    if request.temperature is not None:
        inference["temperature"] = request.temperature
    if request.top_p is not None:
        inference["topP"] = request.top_p
    if request.stop:
        inference["stopSequences"] = list(request.stop)
    answer = _answer_tool(request)
    answer_tool = answer["toolSpec"]["name"] if answer else ""
    tools = [_tool_spec(t.name, t.description, t.parameters) + _cache_point(t.cache)
             for t in request.tools]
    flat_tools = [block for spec in tools for block in spec]
    if answer is not None:
        flat_tools.append(answer)
    choice = _tool_choice(request, answer_tool, has_tool_blocks=_has_tool_blocks(messages))
    if flat_tools and choice != "omit-tools":
        config: dict[str, Any] = {"tools": flat_tools}
        if isinstance(choice, dict):
            config["toolChoice"] = choice
        body["toolConfig"] = config
    fields = dict(additional_fields or {})
    passthrough = dict(request.passthrough)
    extra_inference = passthrough.pop("inferenceConfig", None)
    if isinstance(extra_inference, dict):
        inference.update(extra_inference)
    extra_fields = passthrough.pop("additionalModelRequestFields", None)
    if isinstance(extra_fields, dict):
        fields.update(extra_fields)
    if inference:
        body["inferenceConfig"] = inference
    if fields:
        body["additionalModelRequestFields"] = fields
    if guardrail:
        body["guardrailConfig"] = dict(guardrail)
    body.update(passthrough)
    return Plan(body, answer_tool)


# -- messages ------------------------------------------------------------------------------


def convert_messages(messages: list[Message]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(system blocks, turns) for Converse."""
    system: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []
    last = len(messages) - 1
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if message.role is Role.SYSTEM:
            if message.text():
                system.append({"text": message.text()})
            system.extend(_message_cache_point(message))
            continue
        if message.role is Role.TOOL:
            role, blocks = "user", [_tool_result_block(message, where)]
        elif message.role is Role.ASSISTANT:
            role = "assistant"
            blocks = _content_blocks(message, where) + _tool_use_blocks(message, where)
        else:
            role, blocks = "user", _content_blocks(message, where)
        if not blocks:
            if role == "assistant" and i == last:
                continue  # an empty prefill asks for nothing
            raise InvalidRequest([(f"{where}.content", "must not be empty for Bedrock")])
        blocks.extend(_message_cache_point(message))
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    for turn in turns:
        if turn["role"] == "user":
            # Tool results must open the user turn that answers a tool call; text after.
            turn["content"].sort(key=lambda block: "toolResult" not in block)
    return system, turns


def _content_blocks(message: Message, where: str) -> list[dict[str, Any]]:
    """Text, image, document and (on assistant turns) reasoning blocks, in order, each
    followed by its cache point. Empty text is left out (Converse refuses it), and so is
    reasoning another dialect produced."""
    if not message.parts:
        return [{"text": message.content}] if message.content else []
    blocks: list[dict[str, Any]] = []
    for j, part in enumerate(message.parts):
        if part.media is not None:
            blocks.append(_media_block(part.media, f"{where}.parts[{j}].media", j))
        elif part.reasoning is not None:
            if message.role is Role.ASSISTANT and part.reasoning.source == REASONING_SOURCE:
                blocks.append(reasoning_block(part.reasoning))
            else:
                continue
        elif part.text:
            blocks.append({"text": part.text})
        else:
            continue
        blocks.extend(_part_cache_point(part))
    return blocks


def reasoning_block(reasoning: ReasoningPart) -> dict[str, Any]:
    """The `reasoningContent` block Bedrock returned, rebuilt exactly."""
    if reasoning.redacted:
        return {"reasoningContent": {"redactedContent": reasoning.redacted}}
    text: dict[str, Any] = {"text": reasoning.text}
    if reasoning.signature:
        text["signature"] = reasoning.signature
    return {"reasoningContent": {"reasoningText": text}}


def _media_block(media: MediaPart, where: str, index: int) -> dict[str, Any]:
    """An `image` or a `document` block; Converse takes the bytes inline (base64 in JSON)."""
    mime, data = _media_bytes(media, where)
    if mime in _IMAGE_FORMATS:
        return {"image": {"format": _IMAGE_FORMATS[mime], "source": {"bytes": data}}}
    if mime in _DOCUMENT_FORMATS:
        # Converse requires a name per document, unique in the request; callers give none.
        return {"document": {"format": _DOCUMENT_FORMATS[mime], "name": f"document-{index + 1}",
                             "source": {"bytes": data}}}
    if not mime:
        raise InvalidRequest([(f"{where}.mime_type", "is required: the media type could not be recognised")])
    raise InvalidRequest([(f"{where}.mime_type", f"{mime!r} is not a type Bedrock Converse reads (PNG, JPEG, "
                                                "GIF, WebP images; PDF, CSV, DOC(X), XLS(X), HTML, TXT, MD "
                                                "documents)")])


def _media_bytes(media: MediaPart, where: str) -> tuple[str, str]:
    """(MIME type, base64 data). Converse cannot fetch URLs, so only bytes and data: URLs."""
    if media.data:
        return media.mime_type or _sniff(media.data), base64.b64encode(media.data).decode()
    if media.uri.startswith("data:"):
        header, comma, payload = media.uri.partition(",")
        media_type, _, encoding = header[len("data:"):].partition(";")
        if not comma or encoding != "base64" or not media_type:
            raise InvalidRequest([(f"{where}.uri", "a data: URL must look like data:image/png;base64,...")])
        try:
            base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidRequest([(f"{where}.uri", "the data: URL's payload is not base64")]) from None
        return media.mime_type or media_type, payload
    guessed = mimetypes.guess_type(media.uri)[0] or ""
    raise InvalidRequest([(f"{where}.uri", "Bedrock Converse cannot fetch URLs; send the bytes "
                                           f"({media.mime_type or guessed or 'media'}) inline instead")])


def _sniff(data: bytes) -> str:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data.startswith(b"%PDF-"):
        return "application/pdf"
    return ""


def _tool_use_blocks(message: Message, where: str) -> list[dict[str, Any]]:
    blocks = []
    for j, call in enumerate(message.tool_calls):
        try:
            arguments = bounded_json.loads(call.arguments or "{}")
        except ValueError:
            arguments = None
        if not isinstance(arguments, dict):
            raise InvalidRequest([(f"{where}.tool_calls[{j}].arguments", "must be a JSON object for Bedrock")])
        if not call.id:
            raise InvalidRequest([(f"{where}.tool_calls[{j}].id", "is required by Bedrock")])
        blocks.append({"toolUse": {"toolUseId": portable_call_id(call.id), "name": call.name, "input": arguments}})
    return blocks


def _tool_result_block(message: Message, where: str) -> dict[str, Any]:
    if not message.tool_call_id:
        raise InvalidRequest([(f"{where}.tool_call_id", "is required by Bedrock")])
    content: list[dict[str, Any]] = []
    if any(p.media is not None for p in message.parts):
        content = [b for b in _content_blocks(message, where) if "cachePoint" not in b]
    elif message.text():
        content = [{"text": message.text()}]
    else:
        content = [{"text": ""}]
    return {"toolResult": {"toolUseId": portable_call_id(message.tool_call_id), "content": content}}


def _has_tool_blocks(turns: list[dict[str, Any]]) -> bool:
    return any("toolUse" in block or "toolResult" in block for turn in turns for block in turn["content"])


# -- cache points --------------------------------------------------------------------------


def _cache_point(breakpoint: CacheBreakpoint | None) -> list[dict[str, Any]]:
    """A `cachePoint` block after the block that carries a cache breakpoint. Bedrock has
    one cache lifetime per model, so a breakpoint's TTL is not sent."""
    return [{"cachePoint": {"type": "default"}}] if breakpoint is not None else []


def _message_cache_point(message: Message) -> list[dict[str, Any]]:
    return _cache_point(message.cache)


def _part_cache_point(part: ContentPart) -> list[dict[str, Any]]:
    return _cache_point(part.cache)


# -- tools ---------------------------------------------------------------------------------


def _tool_spec(name: str, description: str, schema: dict[str, Any]) -> list[dict[str, Any]]:
    if not schema:
        schema = {"type": "object", "properties": {}}
    elif "type" not in schema:
        schema = {"type": "object", **schema}
    spec: dict[str, Any] = {"name": name}
    if description:
        spec["description"] = description
    spec["inputSchema"] = {"json": schema}
    return [{"toolSpec": spec}]


def _answer_tool(request: ChatRequest) -> dict[str, Any] | None:
    """The tool that carries a structured answer (Converse has no JSON mode for every
    model), or None for plain text."""
    fmt = request.response_format
    if fmt is None or fmt.type is ResponseFormatType.TEXT:
        return None
    schema: dict[str, Any] = {"type": "object"}
    if fmt.type is ResponseFormatType.JSON_SCHEMA:
        schema = dict(fmt.schema or {})
        if schema.get("type", "object") != "object":
            raise InvalidRequest([("response_format.json_schema", "must describe an object for Bedrock")])
    name = "".join(c if c.isalnum() or c in "_-" else "_" for c in fmt.name)[:64] or "json_response"
    if any(tool.name == name for tool in request.tools):
        raise InvalidRequest([("response_format.name", f"{name!r} is also the name of a tool")])
    return _tool_spec(name, _ANSWER_TOOL_DESCRIPTION, schema)[0]


def _tool_choice(request: ChatRequest, answer_tool: str, *, has_tool_blocks: bool) -> dict[str, Any] | str | None:
    """The `toolChoice` object; None for the default (auto); "omit-tools" when the caller
    asked for no tool calls, which Converse can only express by sending no tools."""
    choice = request.tool_choice
    mode = choice.mode if choice is not None else ToolChoiceMode.UNSPECIFIED
    if choice is not None and mode is ToolChoiceMode.TOOL:
        return {"tool": {"name": choice.tool_name}}
    if answer_tool:
        if request.tools and mode is not ToolChoiceMode.NONE:
            return {"any": {}}
        return {"tool": {"name": answer_tool}}
    if mode is ToolChoiceMode.NONE and request.tools:
        if has_tool_blocks:
            # Converse refuses tool blocks in the conversation without a toolConfig.
            raise InvalidRequest([("tool_choice", "Bedrock Converse has no 'none' tool choice for a conversation "
                                                  "that already holds tool calls; use 'auto'")])
        return "omit-tools"
    if mode is ToolChoiceMode.REQUIRED:
        return {"any": {}}
    if mode is ToolChoiceMode.AUTO:
        return {"auto": {}}
    return None

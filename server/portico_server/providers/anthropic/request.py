"""A chat request as a Messages API body.

System messages are lifted into `system`; assistant tool calls become `tool_use` blocks
and tool messages `tool_result` blocks; consecutive messages that map to the same
Anthropic role are merged into one turn, because the API wants tool results for one
assistant turn together in the next user turn.

Structured output (`response_format`) uses a tool: Portico adds one tool whose input
schema is the response schema and makes the model call it, then hands the tool's input
back as the answer's text. This works on every Claude model, needs no beta header, and
streams as ordinary content deltas.
"""

from __future__ import annotations

import base64
import binascii
import mimetypes
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ... import bounded_json
from ...domain import (
    ChatRequest,
    MediaPart,
    Message,
    ReasoningConfig,
    ReasoningPart,
    ResponseFormatType,
    Role,
    ToolChoiceMode,
)
from ...errors import InvalidRequest
from ..base import RESERVED_PASSTHROUGH, merge_passthrough
from ..call_ids import portable_call_id
from ..reasoning_controls import budget_for
from .caching import Breakpoints

#: The `source` of the reasoning parts this dialect returns and takes back.
REASONING_SOURCE = "anthropic"
_IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
_PDF = "application/pdf"
#: The smallest thinking budget Anthropic accepts.
MIN_THINKING_BUDGET = 1_024

_ANSWER_TOOL_DESCRIPTION = (
    "Give your final answer by calling this tool. Its input is the answer, and nothing "
    "else is shown to the user."
)


@dataclass(slots=True)
class Plan:
    """The request body, and the name of the tool that carries a structured answer."""

    body: dict[str, Any]
    answer_tool: str = ""


#: The system prompt is part of the conversation, so passthrough may not replace it.
ANTHROPIC_RESERVED_PASSTHROUGH = RESERVED_PASSTHROUGH | {"system"}


def build_plan(request: ChatRequest, default_max_tokens: int) -> Plan:
    """The Messages API body for a chat request (without `stream`). `max_tokens` is
    required upstream, so a request without one gets `default_max_tokens`."""
    if request.temperature is not None and request.temperature > 1.0:
        raise InvalidRequest([("temperature", "must be between 0 and 1 for Anthropic")])
    breakpoints = Breakpoints()
    system, turns = convert_messages(request.messages, breakpoints)
    max_tokens = request.max_tokens or default_max_tokens
    body: dict[str, Any] = {"model": request.model, "max_tokens": max_tokens, "messages": turns}
    if system:
        body["system"] = system
    if request.reasoning is not None:
        body["thinking"] = thinking_config(request, request.reasoning, max_tokens)
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.top_p is not None:
        body["top_p"] = request.top_p
    if request.stop:
        body["stop_sequences"] = list(request.stop)
    tools = [_tool_definition(t.name, t.description, t.parameters) for t in request.tools]
    for i, (tool, definition) in enumerate(zip(request.tools, tools, strict=True)):
        if tool.cache is not None:
            breakpoints.mark(definition, tool.cache, f"tools[{i}].cache", section="tools")
    breakpoints.check()
    answer = _answer_tool(request)
    answer_tool = answer["name"] if answer else ""
    if answer is not None:
        tools.append(answer)
    if tools:
        body["tools"] = tools
    choice = _tool_choice(request, answer_tool)
    if choice is not None:
        body["tool_choice"] = choice
    merge_passthrough(body, request.passthrough, ANTHROPIC_RESERVED_PASSTHROUGH)
    return Plan(body, answer_tool)


def thinking_enabled(passthrough: Mapping[str, Any], reasoning: ReasoningConfig | None = None) -> bool:
    """Whether the caller switched on extended thinking (`reasoning`, or `thinking` in the
    passthrough)."""
    thinking = passthrough.get("thinking")
    if isinstance(thinking, dict):
        return bool(thinking.get("type", "enabled") != "disabled")
    return reasoning is not None


def thinking_budget(reasoning: ReasoningConfig, max_tokens: int | None) -> int:
    """The thinking budget for `reasoning`. A budget derived from an effort shrinks to
    half of `max_tokens` (which counts thinking too) so the answer keeps room; an explicit
    budget is the caller's choice and is only checked."""
    budget = budget_for(reasoning)
    if reasoning.budget_tokens is None and max_tokens is not None:
        budget = max(MIN_THINKING_BUDGET, min(budget, max_tokens // 2))
    return budget


def thinking_config(request: ChatRequest, reasoning: ReasoningConfig, max_tokens: int) -> dict[str, Any]:
    """`thinking: {type: enabled, budget_tokens}`, after the checks Anthropic would
    otherwise answer with a 400."""
    budget = thinking_budget(reasoning, max_tokens)
    problems: list[tuple[str, str]] = []
    if reasoning.budget_tokens is not None and budget < MIN_THINKING_BUDGET:
        problems.append(("reasoning.budget_tokens", f"must be at least {MIN_THINKING_BUDGET} for Anthropic"))
    elif budget >= max_tokens:
        field = "reasoning.budget_tokens" if reasoning.budget_tokens is not None else "max_tokens"
        problems.append((field, f"the thinking budget ({budget}) must be less than max_tokens ({max_tokens}), "
                                "which counts thinking too"))
    if request.temperature is not None and request.temperature != 1.0:
        problems.append(("temperature", "must be unset or 1 with extended thinking (Anthropic)"))
    if request.top_p is not None and request.top_p < 0.95:
        problems.append(("top_p", "must be unset or between 0.95 and 1 with extended thinking (Anthropic)"))
    choice = request.tool_choice
    if choice is not None and choice.mode in (ToolChoiceMode.REQUIRED, ToolChoiceMode.TOOL):
        problems.append(("tool_choice.mode", "must be AUTO or NONE with extended thinking (Anthropic)"))
    if problems:
        raise InvalidRequest(problems)
    return {"type": "enabled", "budget_tokens": budget}


# -- messages ------------------------------------------------------------------------------


def convert_messages(
    messages: list[Message], breakpoints: Breakpoints | None = None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(system blocks, turns) for the Messages API, with the messages' and parts' cache
    breakpoints marked (collected in `breakpoints` for the request-wide checks)."""
    marks = breakpoints if breakpoints is not None else Breakpoints()
    system: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []
    last = len(messages) - 1
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if message.role is Role.SYSTEM:
            blocks = _system_blocks(message, where, marks)
            _mark_message(message, blocks, where, marks, section="system")
            system.extend(blocks)
            continue
        if message.role is Role.TOOL:
            # A tool result's parts are its content: their breakpoints are inside it.
            role, blocks = "user", [_tool_result_block(message, where, marks)]
        elif message.role is Role.ASSISTANT:
            role = "assistant"
            blocks = _content_blocks(message, where, marks) + _tool_use_blocks(message, where)
        else:
            role, blocks = "user", _content_blocks(message, where, marks)
        _mark_message(message, blocks, where, marks)
        if not blocks:
            if role == "assistant" and i == last:
                continue  # an empty prefill asks for nothing
            raise InvalidRequest([(f"{where}.content", "must not be empty for Anthropic")])
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    for turn in turns:
        if turn["role"] == "user":
            # Tool results must open the user turn that answers a tool call; text after.
            turn["content"].sort(key=lambda block: block["type"] != "tool_result")
    return system, turns


def _system_blocks(message: Message, where: str, marks: Breakpoints) -> list[dict[str, Any]]:
    """A system message as text blocks: one per text part when parts carry breakpoints
    (so a breakpoint lands where the caller put it), else its whole text in one."""
    if not any(part.cache is not None for part in message.parts):
        return [{"type": "text", "text": message.text()}] if message.text() else []
    blocks: list[dict[str, Any]] = []
    for j, part in enumerate(message.parts):
        if part.text is None:
            continue
        if not part.text:
            if part.cache is not None:
                raise InvalidRequest([(f"{where}.parts[{j}].cache", "an empty text part cannot hold a breakpoint")])
            continue
        block: dict[str, Any] = {"type": "text", "text": part.text}
        if part.cache is not None:
            marks.mark(block, part.cache, f"{where}.parts[{j}].cache", section="system")
        blocks.append(block)
    return blocks


def _mark_message(message: Message, blocks: list[dict[str, Any]], where: str, marks: Breakpoints,
                  section: str = "messages") -> None:
    """A message's breakpoint goes on its last block that Anthropic lets carry one
    (thinking blocks cannot)."""
    if message.cache is None:
        return
    for block in reversed(blocks):
        if block["type"] not in ("thinking", "redacted_thinking"):
            marks.mark(block, message.cache, f"{where}.cache", section=section)
            return
    raise InvalidRequest([(f"{where}.cache", "the message has no content a breakpoint can follow")])


def _content_blocks(message: Message, where: str, marks: Breakpoints | None = None) -> list[dict[str, Any]]:
    """Text, image, document and (on assistant turns) thinking blocks of a message, in
    order. Empty text is left out (the API refuses it); reasoning of other dialects too."""
    if not message.parts:
        return [{"type": "text", "text": message.content}] if message.content else []
    blocks: list[dict[str, Any]] = []
    for j, part in enumerate(message.parts):
        block: dict[str, Any] | None = None
        if part.media is not None:
            block = _media_block(part.media, f"{where}.parts[{j}].media")
        elif part.reasoning is not None:
            if message.role is Role.ASSISTANT and part.reasoning.source == REASONING_SOURCE:
                block = _thinking_block(part.reasoning)
        elif part.text:
            block = {"type": "text", "text": part.text}
        if part.cache is not None:
            if block is None:
                raise InvalidRequest([(f"{where}.parts[{j}].cache", "an empty text part cannot hold a breakpoint")])
            if marks is not None:
                marks.mark(block, part.cache, f"{where}.parts[{j}].cache")
        if block is not None:
            blocks.append(block)
    return blocks


def _thinking_block(reasoning: ReasoningPart) -> dict[str, Any]:
    """The block Anthropic returned, rebuilt exactly: its signature (or the redacted
    payload) covers it, and a tool-use turn with thinking is refused without it."""
    if reasoning.redacted:
        return {"type": "redacted_thinking", "data": reasoning.redacted}
    return {"type": "thinking", "thinking": reasoning.text, "signature": reasoning.signature}


def _media_block(media: MediaPart, where: str) -> dict[str, Any]:
    """An `image` block, or a `document` block for a PDF or plain text."""
    mime, data, url = _media_source(media, where)
    if mime in _IMAGE_TYPES or (not mime and url):
        source = {"type": "url", "url": url} if url else {"type": "base64", "media_type": mime, "data": data}
        return {"type": "image", "source": source}
    if mime == _PDF:
        source = {"type": "url", "url": url} if url else {"type": "base64", "media_type": mime, "data": data}
        return {"type": "document", "source": source}
    if mime == "text/plain" and not url:
        try:
            text = base64.b64decode(data, validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            raise InvalidRequest([(f"{where}.data", "a text/plain document must be UTF-8 text")]) from None
        return {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": text}}
    if not mime:
        raise InvalidRequest([(f"{where}.mime_type", "is required: the media type could not be recognised")])
    raise InvalidRequest([(f"{where}.mime_type", f"{mime!r} is not a type Anthropic reads (JPEG, PNG, GIF, "
                                                "WebP images; PDF and text/plain documents)")])


def _media_source(media: MediaPart, where: str) -> tuple[str, str, str]:
    """(MIME type, base64 data, URL): inline bytes and data: URLs give data, others a URL."""
    if media.data:
        return media.mime_type or _sniff(media.data), base64.b64encode(media.data).decode(), ""
    if media.uri.startswith("data:"):
        header, comma, payload = media.uri.partition(",")
        media_type, _, encoding = header[len("data:"):].partition(";")
        if not comma or encoding != "base64" or not media_type:
            raise InvalidRequest([(f"{where}.uri", "a data: URL must look like data:image/png;base64,...")])
        return media.mime_type or media_type, payload, ""
    return media.mime_type or mimetypes.guess_type(media.uri)[0] or "", "", media.uri


def _sniff(data: bytes) -> str:
    """The MIME type of the formats Anthropic reads, from their magic bytes."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data.startswith(b"%PDF-"):
        return _PDF
    return ""


def _tool_use_blocks(message: Message, where: str) -> list[dict[str, Any]]:
    blocks = []
    for j, call in enumerate(message.tool_calls):
        try:
            arguments = bounded_json.loads(call.arguments or "{}")
        except ValueError:
            arguments = None
        if not isinstance(arguments, dict):
            raise InvalidRequest([(f"{where}.tool_calls[{j}].arguments", "must be a JSON object for Anthropic")])
        if not call.id:
            raise InvalidRequest([(f"{where}.tool_calls[{j}].id", "is required by Anthropic")])
        blocks.append({"type": "tool_use", "id": portable_call_id(call.id), "name": call.name, "input": arguments})
    return blocks


def _tool_result_block(message: Message, where: str, marks: Breakpoints | None = None) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": portable_call_id(message.tool_call_id)}
    if any(p.media is not None or p.cache is not None for p in message.parts):
        block["content"] = _content_blocks(message, where, marks)
    elif message.text():
        block["content"] = message.text()
    return block


# -- tools ---------------------------------------------------------------------------------


def _tool_definition(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    if not schema:
        schema = {"type": "object", "properties": {}}
    elif "type" not in schema:
        schema = {"type": "object", **schema}
    tool: dict[str, Any] = {"name": name}
    if description:
        tool["description"] = description
    tool["input_schema"] = schema
    return tool


def _answer_tool(request: ChatRequest) -> dict[str, Any] | None:
    """The tool that carries a structured answer, or None for plain text."""
    fmt = request.response_format
    if fmt is None or fmt.type is ResponseFormatType.TEXT:
        return None
    schema: dict[str, Any] = {"type": "object"}
    if fmt.type is ResponseFormatType.JSON_SCHEMA:
        schema = dict(fmt.schema or {})
        if schema.get("type", "object") != "object":
            raise InvalidRequest([("response_format.json_schema", "must describe an object for Anthropic")])
    name = re.sub(r"[^A-Za-z0-9_-]", "_", fmt.name)[:64] or "json_response"
    if any(tool.name == name for tool in request.tools):
        raise InvalidRequest([("response_format.name", f"{name!r} is also the name of a tool")])
    return _tool_definition(name, _ANSWER_TOOL_DESCRIPTION, schema)


def _tool_choice(request: ChatRequest, answer_tool: str) -> dict[str, Any] | None:
    choice = request.tool_choice
    mode = choice.mode if choice is not None else ToolChoiceMode.UNSPECIFIED
    if choice is not None and mode is ToolChoiceMode.TOOL:
        return {"type": "tool", "name": choice.tool_name}
    if answer_tool:
        if thinking_enabled(request.passthrough, request.reasoning):
            return {"type": "auto"}  # extended thinking refuses a forced tool
        if request.tools and mode is not ToolChoiceMode.NONE:
            return {"type": "any"}  # call a tool, or answer through the answer tool
        return {"type": "tool", "name": answer_tool}
    if not request.tools:
        return None
    return {
        ToolChoiceMode.AUTO: {"type": "auto"},
        ToolChoiceMode.REQUIRED: {"type": "any"},
        ToolChoiceMode.NONE: {"type": "none"},
    }.get(mode)

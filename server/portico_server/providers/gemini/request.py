"""Portico's chat request -> Gemini's `GenerateContentRequest` JSON.

An assistant message's reasoning parts from Gemini go back as Gemini returned them:
thoughts as `thought: true` parts, and each signature-only part's signature on the part
it came on (see `response`); reasoning from other providers is left out.
"""

from __future__ import annotations

import base64
import binascii
import mimetypes
import re
from collections.abc import Mapping
from typing import Any

from ... import bounded_json
from ...domain import ChatRequest, MediaPart, Message, ResponseFormatType, Role, ToolChoiceMode
from ...errors import InvalidRequest
from .options import GeminiOptions
from .response import REASONING_SOURCE
from .schema import openapi_schema
from .thinking import thinking_config


def build_generate_request(request: ChatRequest, options: GeminiOptions, provider: str = "") -> dict[str, Any]:
    """The `GenerateContentRequest` body for a chat request. Cache breakpoints are not
    sent: Gemini caches implicitly, and explicit caches are resources made beforehand."""
    system: list[dict[str, Any]] = []
    contents: list[dict[str, Any]] = []
    names_by_id: dict[str, str] = {}
    for i, message in enumerate(request.messages):
        if message.role is Role.SYSTEM:
            text = message.text()
            if text:
                system.append({"text": text})
            continue
        if message.role is Role.TOOL:
            part = _function_response(message, names_by_id, i)
            previous = contents[-1] if contents else None
            # All answers to one model turn go back together, in one user turn.
            if previous is not None and previous["role"] == "user" and "functionResponse" in previous["parts"][0]:
                previous["parts"].append(part)
            else:
                contents.append({"role": "user", "parts": [part]})
            continue
        if message.role is Role.ASSISTANT:
            parts = _model_parts(message, i, sentinel=_signs_calls(request.model))
            for call in message.tool_calls:
                names_by_id[call.id] = call.name
            if parts:
                contents.append({"role": "model", "parts": parts})
            continue
        parts = _user_parts(message, i)
        if parts:
            contents.append({"role": "user", "parts": parts})

    body: dict[str, Any] = {"contents": contents}
    if system:
        body["systemInstruction"] = {"parts": system}
    tools = _tools(request, options)
    if tools:
        body["tools"] = [{"functionDeclarations": tools}]
        tool_config = _tool_config(request)
        if tool_config:
            body["toolConfig"] = tool_config
    config = _generation_config(request, options, provider)
    if config:
        body["generationConfig"] = config
    return body


def _user_parts(message: Message, index: int) -> list[dict[str, Any]]:
    if not message.parts:
        return [{"text": message.content}] if message.content else []
    parts: list[dict[str, Any]] = []
    for j, part in enumerate(message.parts):
        if part.text is not None:
            if part.text:
                parts.append({"text": part.text})
        elif part.media is not None:
            parts.append(_media_part(part.media, f"messages[{index}].parts[{j}].media"))
    return parts


#: What Gemini reads: images, audio, video, text documents by prefix; PDF and JSON exactly.
_MEDIA_PREFIXES = ("image/", "audio/", "video/", "text/")
_MEDIA_TYPES = frozenset({"application/pdf", "application/json"})


def _check_type(mime: str, field: str) -> str:
    if not (mime.startswith(_MEDIA_PREFIXES) or mime in _MEDIA_TYPES):
        raise InvalidRequest([(f"{field}.mime_type", f"{mime!r} is not a type Gemini reads (images, audio, video, "
                                                     "PDF, JSON and text documents)")])
    return mime


def _media_part(image: MediaPart, field: str) -> dict[str, Any]:
    """Images, PDFs and text documents, audio, video: bytes inline, links as `fileData`."""
    if image.data:
        mime = _check_type(image.mime_type or "image/png", field)
        return {"inlineData": {"mimeType": mime, "data": base64.b64encode(image.data).decode("ascii")}}
    if image.uri.startswith("data:"):
        header, _, payload = image.uri.partition(",")
        if not header.endswith(";base64") or not payload:
            raise InvalidRequest([(f"{field}.uri", "a data: URL must be base64-encoded (data:<mime>;base64,...)")])
        try:
            base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidRequest([(f"{field}.uri", "the data: URL holds invalid base64")]) from None
        mime = _check_type(image.mime_type or header[len("data:") : -len(";base64")] or "image/png", field)
        return {"inlineData": {"mimeType": mime, "data": payload}}
    mime = _check_type(image.mime_type or mimetypes.guess_type(image.uri)[0] or "image/jpeg", field)
    return {"fileData": {"mimeType": mime, "fileUri": image.uri}}


#: Google's documented stand-in for a function call's signature when the call did not come
#: from Gemini 3 (another provider, an older model): Gemini 3 refuses a call without one.
SKIP_SIGNATURE = "skip_thought_signature_validator"


def _signs_calls(model: str) -> bool:
    """Whether the model refuses a function-call turn without a signature (Gemini 3 on)."""
    return re.match(r"^(models/)?gemini-([3-9]|\d\d)", model) is not None


def _model_parts(message: Message, index: int, *, sentinel: bool = False) -> list[dict[str, Any]]:
    """The model turn's parts: text and thoughts in order, then the function calls.

    A signature-only reasoning part belongs to the text part right after it; the others
    were on function calls, which come after the text, so they go on the calls in order
    (Gemini signs the first of parallel calls). Any left over keep an empty text part.
    With `sentinel`, calls that carry no signature at all (the turn came from elsewhere)
    get Google's stand-in on the first one.
    """
    parts: list[dict[str, Any]] = []
    unattached: list[str] = []
    pending = ""
    if not message.parts and message.content:
        parts.append({"text": message.content})
    for j, part in enumerate(message.parts):
        reasoning = part.reasoning
        if reasoning is not None:
            if reasoning.source != REASONING_SOURCE or not (reasoning.text or reasoning.signature):
                continue
            if pending:
                unattached.append(pending)
                pending = ""
            if reasoning.text:
                thought: dict[str, Any] = {"text": reasoning.text, "thought": True}
                if reasoning.signature:
                    thought["thoughtSignature"] = reasoning.signature
                parts.append(thought)
            else:
                pending = reasoning.signature
        elif part.text is not None:
            if part.text or pending:
                out: dict[str, Any] = {"text": part.text}
                if pending:
                    out["thoughtSignature"] = pending
                    pending = ""
                parts.append(out)
        elif part.media is not None:
            parts.append(_media_part(part.media, f"messages[{index}].parts[{j}].media"))
    if pending:
        unattached.append(pending)
    for j, call in enumerate(message.tool_calls):
        try:
            args = bounded_json.loads(call.arguments or "{}")
        except ValueError:
            args = None
        if not isinstance(args, dict):
            raise InvalidRequest([(
                f"messages[{index}].tool_calls[{j}].arguments", "must be a JSON object for Gemini"
            )])
        function_call: dict[str, Any] = {"functionCall": {"name": call.name, "args": args}}
        if unattached:
            function_call["thoughtSignature"] = unattached.pop(0)
        parts.append(function_call)
    parts.extend({"text": "", "thoughtSignature": signature} for signature in unattached)
    calls = [part for part in parts if "functionCall" in part]
    if sentinel and calls and not any("thoughtSignature" in call for call in calls):
        calls[0]["thoughtSignature"] = SKIP_SIGNATURE
    return parts


def _function_response(message: Message, names_by_id: Mapping[str, str], index: int) -> dict[str, Any]:
    name = names_by_id.get(message.tool_call_id) or message.name
    if not name:
        raise InvalidRequest([(
            f"messages[{index}].tool_call_id",
            "matches no tool call of an earlier assistant message (Gemini needs the function's name)",
        )])
    text = message.text()
    try:
        parsed = bounded_json.loads(text)
    except ValueError:
        parsed = None
    # `response` must be an object; Gemini reads plain results from its "output" key.
    response = parsed if isinstance(parsed, dict) else {"output": text}
    return {"functionResponse": {"name": name, "response": response}}


def _tools(request: ChatRequest, options: GeminiOptions) -> list[dict[str, Any]]:
    declarations = []
    for tool in request.tools:
        decl: dict[str, Any] = {"name": tool.name}
        if tool.description:
            decl["description"] = tool.description
        if tool.parameters.get("properties"):
            if options.schema_dialect == "json_schema":
                decl["parametersJsonSchema"] = tool.parameters
            else:
                decl["parameters"] = openapi_schema(tool.parameters)
        declarations.append(decl)
    return declarations


def _tool_config(request: ChatRequest) -> dict[str, Any]:
    choice = request.tool_choice
    if choice is None or choice.mode in (ToolChoiceMode.UNSPECIFIED, ToolChoiceMode.AUTO):
        return {}
    if choice.mode is ToolChoiceMode.NONE:
        return {"functionCallingConfig": {"mode": "NONE"}}
    config: dict[str, Any] = {"mode": "ANY"}
    if choice.mode is ToolChoiceMode.TOOL:
        config["allowedFunctionNames"] = [choice.tool_name]
    return {"functionCallingConfig": config}


def _generation_config(request: ChatRequest, options: GeminiOptions, provider: str = "") -> dict[str, Any]:
    config: dict[str, Any] = {}
    if request.temperature is not None:
        config["temperature"] = request.temperature
    if request.top_p is not None:
        config["topP"] = request.top_p
    if request.max_tokens is not None:
        config["maxOutputTokens"] = request.max_tokens
    if request.stop:
        config["stopSequences"] = list(request.stop)
    if request.seed is not None:
        config["seed"] = request.seed
    fmt = request.response_format
    if fmt is not None and fmt.type is not ResponseFormatType.TEXT:
        config["responseMimeType"] = "application/json"
        if fmt.type is ResponseFormatType.JSON_SCHEMA and fmt.schema is not None:
            if options.schema_dialect == "json_schema":
                config["responseJsonSchema"] = fmt.schema
            else:
                config["responseSchema"] = openapi_schema(fmt.schema, ordered=True)
    thinking: dict[str, Any] = {}
    if request.reasoning is not None:
        thinking = thinking_config(request.reasoning, request.model, provider or "gemini")
    if options.include_thoughts:
        thinking["includeThoughts"] = True
    if thinking:
        config["thinkingConfig"] = thinking
    return config


def merge_nested(body: Mapping[str, Any], passthrough: Mapping[str, Any]) -> dict[str, Any]:
    """The passthrough with objects that the body also has merged into the body's ones, so
    `{"generationConfig": {"topK": 40}}` adds to the generation config instead of replacing it."""
    merged: dict[str, Any] = {}
    for key, value in passthrough.items():
        existing = body.get(key)
        if isinstance(value, dict) and isinstance(existing, dict):
            merged[key] = {**existing, **merge_nested(existing, value)}
        else:
            merged[key] = value
    return merged


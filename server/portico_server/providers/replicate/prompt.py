"""A chat request as a Replicate prediction's `input`.

Replicate runs each model with its own input schema; the language models share a few
conventions, and this module uses them:

- `prompt` format (the default): system messages become `system_prompt`; a conversation of
  one user message is its text as `prompt`; a longer one becomes a transcript
  ("User: ...", "Assistant: ...", ending with "Assistant:") in `prompt`, since these models
  take a single turn and wrap it in their own chat template.
- `messages` format, for models configured to take it: `messages` as a list of
  `{"role", "content"}`, system messages included.

Tools, structured output, media and reasoning controls have no common input on
Replicate: a request that needs them is refused before anything is sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from ...domain import ChatRequest, Message, ResponseFormatType, Role
from ...errors import CapabilityUnsupported, InvalidRequest
from ..base import RESERVED_PASSTHROUGH, merge_passthrough
from ..reasoning_controls import reasoning_unsupported

JSON = dict[str, Any]
InputFormat = Literal["prompt", "messages"]
#: The conversation's own inputs: passthrough may not replace them.
RESERVED = RESERVED_PASSTHROUGH | {"prompt", "system_prompt", "input", "version"}
_SPEAKERS = {Role.USER: "User", Role.ASSISTANT: "Assistant"}


@dataclass(frozen=True, slots=True)
class Target:
    """Where a prediction for a model name goes: `owner/name` runs the model's latest
    version (POST /models/{owner}/{name}/predictions); `owner/name:version` or a bare
    version id runs that version (POST /predictions with `version`)."""

    path: str
    version: str = ""


def target(model: str) -> Target:
    name, _, version = model.partition(":")
    if version and name.count("/") == 1:
        return Target("/predictions", version)
    if not version and name.count("/") == 1 and all(name.split("/")):
        owner, model_name = name.split("/")
        return Target(f"/models/{owner}/{model_name}/predictions")
    if not version and len(name) == 64 and all(c in "0123456789abcdef" for c in name):
        return Target("/predictions", name)
    raise InvalidRequest([("model", f"{model!r} is not a Replicate model: use owner/name, "
                                    "owner/name:version or a version id")])


def build_input(request: ChatRequest, input_format: InputFormat, max_tokens_field: str,
                provider: str = "") -> JSON:
    """The prediction's `input` for `request` (passthrough merged last)."""
    _refuse_unsupported(request)
    if request.reasoning is not None:
        raise reasoning_unsupported(provider, request.model, "Replicate's models share no reasoning input")
    body: JSON = {}
    if input_format == "messages":
        body["messages"] = [{"role": m.role.value, "content": m.text()} for m in request.messages]
    else:
        system = [m for m in request.messages if m.role is Role.SYSTEM]
        turns = [m for m in request.messages if m.role is not Role.SYSTEM]
        body["prompt"] = _prompt(turns)
        if system:
            body["system_prompt"] = "\n\n".join(m.text() for m in system)
    if request.max_tokens is not None:
        body[max_tokens_field] = request.max_tokens
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.top_p is not None:
        body["top_p"] = request.top_p
    if request.seed is not None:
        body["seed"] = request.seed
    if request.stop:
        if any("," in s for s in request.stop):
            raise InvalidRequest([("stop", "Replicate takes stop sequences as one comma-separated "
                                           "list, so none may contain a comma")])
        body["stop_sequences"] = ",".join(request.stop)
    return merge_passthrough(body, request.passthrough, RESERVED)


def _prompt(turns: list[Message]) -> str:
    if len(turns) == 1 and turns[0].role is Role.USER:
        return turns[0].text()
    lines = [f"{_SPEAKERS[m.role]}: {m.text()}" for m in turns]
    return "\n\n".join([*lines, "Assistant:"])


def _refuse_unsupported(request: ChatRequest) -> None:
    def refuse(what: str, field: str) -> CapabilityUnsupported:
        return CapabilityUnsupported(f"Replicate's language models take no {what}",
                                     metadata={"capability": field})

    if request.tools or any(m.tool_calls or m.role is Role.TOOL for m in request.messages):
        raise refuse("tools", "tools")
    fmt = request.response_format
    if fmt is not None and fmt.type is not ResponseFormatType.TEXT:
        raise refuse("structured output (response_format)", "response_format")
    if any(p.media is not None for m in request.messages for p in m.parts):
        raise refuse("images or documents through Portico's media parts", "vision")

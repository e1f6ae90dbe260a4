"""Reading predictions: whether one has finished, its text, and its usage."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...domain import ChatRequest, Usage
from ..base import estimate_tokens

#: Statuses after which a prediction does not change.
FINISHED = frozenset({"succeeded", "failed", "canceled", "aborted"})


def status(prediction: Mapping[str, Any]) -> str:
    return str(prediction.get("status") or "")


def url(prediction: Mapping[str, Any], which: str) -> str:
    """One of the prediction's `urls` (get, cancel, stream); "" when it has none."""
    urls = prediction.get("urls")
    value = urls.get(which) if isinstance(urls, dict) else None
    return value if isinstance(value, str) else ""


def output_text(prediction: Mapping[str, Any]) -> str:
    """A language model's output: a list of tokens (joined) or one string."""
    output = prediction.get("output")
    if isinstance(output, list):
        return "".join(item if isinstance(item, str) else "" for item in output)
    return output if isinstance(output, str) else ""


def usage(prediction: Mapping[str, Any] | None, request: ChatRequest, text: str) -> Usage:
    """Token counts from the prediction's `metrics` when the model reports them; else
    Portico's estimate, marked as one."""
    metrics = prediction.get("metrics") if prediction else None
    if isinstance(metrics, dict):
        prompt, completion = metrics.get("input_token_count"), metrics.get("output_token_count")
        if isinstance(prompt, int) and isinstance(completion, int):
            return Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion)
    prompt, completion = estimate_tokens(request), (len(text) + 3) // 4
    return Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion,
                 estimated=True)

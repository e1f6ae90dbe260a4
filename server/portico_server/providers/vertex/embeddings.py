"""Vertex AI text embeddings (`:predict` with `instances`): the request body and the
reading of its `predictions`."""

from __future__ import annotations

from typing import Any

from ... import vectors
from ...domain import Capabilities, Source

#: Texts per `:predict` call. gemini-embedding-001 takes one text a request; the
#: text-embedding models up to 250 (and 20,000 tokens in all, so fewer is safer).
_BATCH = 100
_ONE_TEXT_MODELS = ("gemini-embedding-",)
#: Known embedding models -> input tokens.
_KNOWN: dict[str, int] = {
    "gemini-embedding-001": 2_048,
    "text-embedding-005": 2_048,
    "text-embedding-004": 2_048,
    "text-multilingual-embedding-002": 2_048,
}


def batch_size(model: str) -> int:
    return 1 if model.startswith(_ONE_TEXT_MODELS) else _BATCH


def predict_body(texts: list[str], dimensions: int | None) -> dict[str, Any]:
    body: dict[str, Any] = {"instances": [{"content": text} for text in texts]}
    if dimensions is not None:
        body["parameters"] = {"outputDimensionality": dimensions}
    return body


def read_predictions(data: Any, count: int) -> tuple[list[bytes], int] | None:
    """(packed vectors, tokens counted) from a `:predict` answer for `count` texts; None
    when the answer does not have that shape."""
    predictions = data.get("predictions") if isinstance(data, dict) else None
    if not isinstance(predictions, list) or len(predictions) != count:
        return None
    packed: list[bytes] = []
    tokens = 0
    for prediction in predictions:
        embeddings = prediction.get("embeddings") if isinstance(prediction, dict) else None
        values = embeddings.get("values") if isinstance(embeddings, dict) else None
        if not isinstance(values, list):
            return None
        try:
            packed.append(vectors.pack(values))
        except (TypeError, OverflowError):
            return None
        statistics = embeddings.get("statistics") if isinstance(embeddings, dict) else None
        counted = statistics.get("token_count") if isinstance(statistics, dict) else None
        if isinstance(counted, int | float) and not isinstance(counted, bool):
            tokens += int(counted)
    return packed, tokens


def known_embedding_model(model: str) -> Capabilities | None:
    for name, window in _KNOWN.items():
        if model.startswith(name):
            return Capabilities(model=model, context_window=window, supports_tools=False, supports_streaming=False,
                                supports_embeddings=True, source=Source.BUILT_IN)
    return None

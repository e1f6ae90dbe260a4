"""Embeddings through InvokeModel, the one use of it: Titan takes one text per call,
Cohere up to 96. Each family's body and answer differ, so each has its pair here."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ... import vectors
from ...errors import InvalidRequest, UpstreamProtocol

#: Texts Cohere embeds in one call.
COHERE_BATCH = 96
#: Titan v2's output sizes.
_TITAN_V2_DIMENSIONS = (256, 512, 1024)


def request_bodies(family: str, inputs: list[str], dimensions: int | None,
                   input_type: str) -> Iterator[tuple[list[int], dict[str, Any]]]:
    """(positions of the inputs it carries, body) for each InvokeModel call."""
    if family.startswith("titan"):
        if dimensions is not None and (family != "titan-v2" or dimensions not in _TITAN_V2_DIMENSIONS):
            allowed = "256, 512 or 1024" if family == "titan-v2" else "not settable for this model"
            raise InvalidRequest([("dimensions", f"Titan embeddings: {allowed}")])
        for i, text in enumerate(inputs):
            body: dict[str, Any] = {"inputText": text}
            if dimensions is not None:
                body["dimensions"] = dimensions
            yield [i], body
        return
    if dimensions is not None and family != "cohere-v4":
        raise InvalidRequest([("dimensions", "Cohere v3 embeddings have a fixed size")])
    for start in range(0, len(inputs), COHERE_BATCH):
        batch = inputs[start : start + COHERE_BATCH]
        body = {"texts": batch, "input_type": input_type}
        if family == "cohere-v4":
            body["embedding_types"] = ["float"]
            if dimensions is not None:
                body["output_dimension"] = dimensions
        yield list(range(start, start + len(batch))), body


def vectors_of(family: str, data: Any, expected: int, provider: str) -> tuple[list[bytes], int]:
    """(packed vectors, input tokens when the body says) from an InvokeModel answer."""
    if not isinstance(data, dict):
        raise _malformed(provider)
    if family.startswith("titan"):
        embedding = data.get("embedding")
        if not isinstance(embedding, list):
            raise _malformed(provider)
        tokens = data.get("inputTextTokenCount")
        return [_pack(embedding, provider)], tokens if isinstance(tokens, int) else 0
    embeddings = data.get("embeddings")
    if isinstance(embeddings, dict):  # v4 (and v3 with embedding_types): by type
        embeddings = embeddings.get("float")
    if not isinstance(embeddings, list) or len(embeddings) != expected:
        raise _malformed(provider)
    return [_pack(e, provider) for e in embeddings], 0


def _pack(values: Any, provider: str) -> bytes:
    if not isinstance(values, list) or not all(isinstance(v, int | float) for v in values):
        raise _malformed(provider)
    return vectors.pack(values)


def _malformed(provider: str) -> UpstreamProtocol:
    return UpstreamProtocol(f"provider {provider!r} answered an embedding call without the vectors asked for",
                            provider=provider)

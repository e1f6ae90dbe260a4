"""The embeddings wire format: splitting inputs into requests the server accepts, and
reading the vectors back (JSON numbers or base64 float32)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ... import vectors
from ...errors import UpstreamProtocol
from .errors import Scrub, error_from_payload


def batches(inputs: list[str], max_items: int, max_tokens: int = 0) -> Iterator[list[str]]:
    """Consecutive slices of `inputs` of at most `max_items`, and (when `max_tokens` is
    set) at most that many tokens by a deliberately high estimate (UTF-8 bytes / 3)."""
    batch: list[str] = []
    tokens = 0
    for text in inputs:
        cost = len(text.encode()) // 3 + 1
        if batch and (len(batch) >= max_items or (max_tokens and tokens + cost > max_tokens)):
            yield batch
            batch, tokens = [], 0
        batch.append(text)
        tokens += cost
    if batch:
        yield batch


def decode_vector(value: Any, provider: str) -> bytes:
    """A packed vector from JSON numbers, or from base64 of little-endian float32
    (encoding_format=base64), which is decoded straight into the packed form."""
    packed: bytes | None = None
    if isinstance(value, str):
        packed = vectors.from_base64(value)
    elif isinstance(value, list):
        try:
            packed = vectors.pack(value)
        except (TypeError, OverflowError):
            packed = None
    if packed is None:
        raise UpstreamProtocol(f"provider {provider!r} sent an embedding that is not a vector", provider=provider)
    return packed


def embedding_vectors(data: Any, expected: int, *, provider: str, scrub: Scrub) -> list[bytes]:
    """The vectors of one embeddings response, in the order of the inputs."""
    if isinstance(data, dict) and data.get("error"):
        raise error_from_payload(data["error"], provider, scrub)
    items = data.get("data") if isinstance(data, dict) else None
    if not isinstance(items, list) or len(items) != expected:
        raise UpstreamProtocol(
            f"provider {provider!r} returned {len(items) if isinstance(items, list) else 'no'} "
            f"embeddings for {expected} inputs",
            provider=provider,
        )
    # The API numbers each vector with its input's index; do not trust list order.
    ordered = sorted(enumerate(items), key=lambda p: p[1].get("index", p[0]) if isinstance(p[1], dict) else p[0])
    return [decode_vector(item.get("embedding") if isinstance(item, dict) else None, provider)
            for _, item in ordered]

"""Texts of records and queries turned into vectors through the gateway's own Embed path
(`LLMServicer.embed`: routing, the caller's permissions and limits, retries, breakers,
fallbacks), with the collection's embedding provider and model.

Texts go in batches of `vectors.embed_batch`, one after another; each batch is one Embed
call, which the provider splits further to its own limit on inputs per request. The
model is asked for the collection's dimensions (OpenAI's text-embedding-3 models, Gemini
and `fake` shorten their vectors to it); a model that answers with another length is
refused, naming the text's field.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from ..call import CallContext
from ..domain import EmbedRequest, EmbedResponse
from ..errors import InvalidRequest
from ..resilience.trace import Trace
from . import packed
from .model import Collection, Vector


class EmbedPath(Protocol):
    async def embed(
        self, provider: str, model: str, request: EmbedRequest, call: CallContext, trace: Trace
    ) -> EmbedResponse: ...


class TextEmbedder:
    def __init__(self, path: EmbedPath, batch: int) -> None:
        self.path = path
        self.batch = batch

    async def embed(
        self, collection: Collection, texts: list[str], fields: list[str], call: CallContext, trace: Trace
    ) -> list[Vector]:
        """One vector per text, in order; `fields` name each text for errors."""
        vectors: list[Vector] = []
        for start in range(0, len(texts), self.batch):
            request = EmbedRequest(model="", inputs=texts[start : start + self.batch],
                                   dimensions=collection.dimensions)
            result = await self.path.embed(collection.embedding_provider, collection.embedding_model,
                                           request, call, trace)
            for offset, vector in enumerate(result.vectors):
                got = packed.dimensions(vector)
                if got != collection.dimensions:
                    raise InvalidRequest([(fields[start + offset], (
                        f"the embedding model {result.provider}/{result.model} gave {got} dimensions; "
                        f"collection {collection.name!r} has {collection.dimensions}"))])
                vectors.append(np.frombuffer(vector, dtype="<f4").astype(np.float32))
        return vectors

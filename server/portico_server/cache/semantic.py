"""The semantic cache: an answer for a question close enough to one answered before.

The last user message is embedded (through the gateway's own Embed path) and looked up
in a vector collection of earlier questions, among those asked with the same everything
else: route, options, tools and the conversation before it (`context_key`). A match at
or above the similarity threshold points at the exact cache's entry of that question;
an entry that has expired since is a miss, and its vector is dropped.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from ..call import CallContext
from ..domain import ChatRequest, EmbedRequest
from ..errors import NotFound
from ..resilience.trace import Trace
from ..vectors.model import Collection, Distance, Eq, Record, VectorBackend
from .key import context_key, last_user_index

log = logging.getLogger("portico.cache")

#: The collection holding the questions' vectors.
COLLECTION = "portico-response-cache"

Embedder = Callable[[str], Awaitable[npt.NDArray[np.float32]]]


def gateway_embedder(servicer: Any, provider: str, model: str, timeout: float) -> Embedder:
    """Embeddings through the gateway's own Embed path: the servicer's current router
    (so a reload applies) and its dispatcher (retries, breakers, limits). The attempts go
    in a trace of their own: the call's trace lists the attempts that answer it."""

    async def embed(text: str) -> npt.NDArray[np.float32]:
        call = CallContext.with_timeout(timeout)
        plan = servicer.router.plan(provider, model, embedding=True, call=call)
        result = await servicer.dispatcher.embed(plan, EmbedRequest(model="", inputs=[text]), call, Trace())
        return np.frombuffer(result.vectors[0], dtype="<f4").astype(np.float32)

    return embed


@dataclass(slots=True)
class SemanticProbe:
    """What one call looks up, and later remembers."""

    context: str
    text: str
    vector: npt.NDArray[np.float32] | None = None


class SemanticCache:
    def __init__(self, backend: VectorBackend, embed: Embedder, threshold: float, max_entries: int) -> None:
        self.backend = backend
        self.embed = embed
        self.threshold = threshold
        self._collection_ready = False
        #: The questions remembered, oldest first: the collection keeps `max_entries` of them.
        self._remembered: deque[str] = deque()
        self._max_entries = max_entries

    def probe(self, method: str, provider: str, model: str, chat: ChatRequest, scope: str) -> SemanticProbe | None:
        last = last_user_index(chat.messages)
        if last is None:
            return None
        text = chat.messages[last].text()
        if not text:
            return None
        return SemanticProbe(context_key(provider, model, chat, f"{method}:{scope}"), text)

    async def find(self, probe: SemanticProbe) -> str | None:
        """The exact cache key of the closest earlier question, if close enough."""
        probe.vector = await self.embed(probe.text)
        if not await self._ready(len(probe.vector)):
            return None
        matches = await self.backend.query(COLLECTION, probe.vector, 1, Eq("context", probe.context),
                                           self.threshold, False, True)
        if not matches or matches[0].metadata is None:
            return None
        entry = matches[0].metadata.get("entry")
        return entry if isinstance(entry, str) else None

    async def remember(self, probe: SemanticProbe, entry: str) -> None:
        vector = probe.vector if probe.vector is not None else await self.embed(probe.text)
        if not await self._ready(len(vector), create=True):
            return
        await self.backend.upsert(COLLECTION, [Record(entry, vector, {"context": probe.context, "entry": entry})])
        self._remembered.append(entry)
        if len(self._remembered) > self._max_entries:
            await self.backend.delete(COLLECTION, ids=[self._remembered.popleft()])

    async def forget(self, entry: str) -> None:
        await self.backend.delete(COLLECTION, ids=[entry])

    async def _ready(self, dimensions: int, create: bool = False) -> bool:
        if self._collection_ready:
            return True
        try:
            await self.backend.get_collection(COLLECTION)
        except NotFound:
            if not create:
                return False
            await self.backend.create_collection(Collection(COLLECTION, dimensions, Distance.COSINE))
        self._collection_ready = True
        return True

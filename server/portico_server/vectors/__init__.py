"""Vectors: packed float32 embeddings (`packed`) and the vector store service
(`model`, `backend`, `memory`, `filters`, `service`).

The packing helpers stay importable as `vectors.pack` and friends, since every provider
that returns embeddings uses them; nothing here imports numpy, so providers do not pay
for it.
"""

from .packed import dimensions, from_base64, pack, unpack

__all__ = ["dimensions", "from_base64", "pack", "unpack"]

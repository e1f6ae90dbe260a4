"""`vertex`: Google Vertex AI, serving Gemini (in the Gemini dialect) and Claude (in the
Anthropic dialect) with tokens from Application Default Credentials.

`provider` speaks HTTP to Vertex, `endpoints` says where each call goes, `credentials`
fetches and refreshes access tokens off the event loop, `embeddings` builds and reads
`:predict` calls, and `options` is the provider's configuration. Importing the package
registers the kind.
"""

from __future__ import annotations

from .. import registry
from .credentials import CLOUD_PLATFORM_SCOPE, TokenSource
from .options import ANTHROPIC_VERTEX_VERSION, VertexOptions
from .provider import VertexProvider

__all__ = ["ANTHROPIC_VERTEX_VERSION", "CLOUD_PLATFORM_SCOPE", "TokenSource", "VertexOptions", "VertexProvider"]

registry.register("vertex", VertexProvider)

"""`vertex`: Google Vertex AI, serving Gemini (in the Gemini dialect) and Claude (in the
Anthropic dialect) with tokens from Application Default Credentials.

`provider` speaks HTTP to Vertex, `endpoints` says where each call goes, `credentials`
hands out access tokens and refreshes them off the event loop, `adc` gets them from
google-auth (imported only when a vertex provider is configured), `embeddings` builds and
reads `:predict` calls, and `options` is the provider's configuration. Importing the
package registers the kind.
"""

from __future__ import annotations

from .. import registry
from .credentials import TokenSource
from .options import ANTHROPIC_VERTEX_VERSION, VertexOptions
from .provider import VertexProvider

__all__ = ["ANTHROPIC_VERTEX_VERSION", "TokenSource", "VertexOptions", "VertexProvider"]

registry.register("vertex", VertexProvider)

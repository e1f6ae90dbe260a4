"""`gemini`: Google's Gemini API in its native dialect (`generateContent`).

`provider` speaks HTTP to the API; `request` and `schema` build what it sends, `response`
and `errors` read what comes back (thought signatures travel as reasoning parts), and
`models` is Portico's table of known models. Importing the package registers
the kind and its environment hook.
"""

from __future__ import annotations

from .. import registry
from .models import known_gemini_model
from .options import GeminiOptions
from .provider import DEFAULT_MAX_REQUEST_BYTES, EMBED_BATCH_SIZE, GeminiProvider, from_environment
from .request import build_generate_request, merge_nested
from .schema import openapi_schema

__all__ = [
    "DEFAULT_MAX_REQUEST_BYTES",
    "EMBED_BATCH_SIZE",
    "GeminiOptions",
    "GeminiProvider",
    "build_generate_request",
    "from_environment",
    "known_gemini_model",
    "merge_nested",
    "openapi_schema",
]

registry.register("gemini", GeminiProvider)
registry.add_environment_hook(from_environment)

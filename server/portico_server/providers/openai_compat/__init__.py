"""`openai_compat` and its presets: every server that speaks OpenAI's Chat Completions.

One adapter, many vendors: the preset (`presets.py`) gives the base URL, the key
variable, default models and quirks. The wire translation lives in plain functions
(`request.py`, `response.py`, `embeddings.py`) so Azure and the LiteLLM bridge reuse them;
`provider.py` is the HTTP provider, `models.py` the table of known models and
`errors.py` the reading of upstream errors.

Importing the package registers one kind per preset and the environment hook.
"""

from __future__ import annotations

from .. import registry
from .embeddings import batches, decode_vector
from .errors import parse_duration, redact_key_shapes
from .presets import PRESETS, Preset, providers_from_environment
from .provider import OpenAICompatOptions, OpenAICompatProvider
from .request import JSON, chat_body, message_json
from .response import ChunkReader, parse_completion, parse_usage

__all__ = [
    "JSON",
    "PRESETS",
    "ChunkReader",
    "OpenAICompatOptions",
    "OpenAICompatProvider",
    "Preset",
    "batches",
    "chat_body",
    "decode_vector",
    "message_json",
    "parse_completion",
    "parse_duration",
    "parse_usage",
    "providers_from_environment",
    "redact_key_shapes",
]

for _kind in PRESETS:
    registry.register(_kind, OpenAICompatProvider)
registry.add_environment_hook(providers_from_environment)

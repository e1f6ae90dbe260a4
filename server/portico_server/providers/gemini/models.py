"""What Portico knows about Gemini models without asking the API."""

from __future__ import annotations

from ...domain import Capabilities, Source

#: name prefix -> (context window, max output tokens). The longest matching prefix wins.
_KNOWN: dict[str, tuple[int, int]] = {
    "gemini-3-pro": (1_048_576, 65_536),
    "gemini-3-flash": (1_048_576, 65_536),
    "gemini-2.5-pro": (1_048_576, 65_536),
    "gemini-2.5-flash": (1_048_576, 65_536),
    "gemini-2.5-flash-lite": (1_048_576, 65_536),
    "gemini-2.0-flash": (1_048_576, 8_192),
    "gemini-2.0-flash-lite": (1_048_576, 8_192),
    "gemini-1.5-pro": (2_097_152, 8_192),
    "gemini-1.5-flash": (1_048_576, 8_192),
}
#: embedding model name prefix -> context window.
_KNOWN_EMBEDDINGS: dict[str, int] = {
    "gemini-embedding-001": 2_048,
    "text-embedding-004": 2_048,
}


def known_gemini_model(model: str) -> Capabilities | None:
    """Capabilities from Portico's table of Gemini models (source BUILT_IN)."""
    for name, window in _KNOWN_EMBEDDINGS.items():
        if model.startswith(name):
            return Capabilities(
                model=model, context_window=window, supports_tools=False, supports_streaming=False,
                supports_embeddings=True, source=Source.BUILT_IN,
            )
    matches = [prefix for prefix in _KNOWN if model.startswith(prefix)]
    if not matches:
        return None
    window, output = _KNOWN[max(matches, key=len)]
    return Capabilities(
        model=model, context_window=window, max_output_tokens=output, supports_tools=True,
        supports_streaming=True, supports_embeddings=False, supports_vision=True,
        supports_response_format=True, source=Source.BUILT_IN,
    )

"""Where a Vertex AI call goes: the host of a location, the publisher of a model, and
the resource path of a model's method."""

from __future__ import annotations

from typing import Literal
from urllib.parse import quote

from ...errors import InvalidRequest

Publisher = Literal["google", "anthropic"]

#: Name prefixes of the models Google publishes on Vertex.
_GOOGLE_PREFIXES = ("gemini-", "gemma-", "text-embedding-", "text-multilingual-embedding-", "multimodalembedding")


def host(location: str) -> str:
    """`https://aiplatform.googleapis.com` for `global`, else the regional host."""
    if location == "global":
        return "https://aiplatform.googleapis.com"
    return f"https://{location}-aiplatform.googleapis.com"


def publisher_of(model: str, setting: str) -> Publisher:
    """The publisher `setting` names, or for `auto` the one the model's name tells."""
    if setting == "google":
        return "google"
    if setting == "anthropic":
        return "anthropic"
    name = model.lower()
    if name.startswith("claude-"):
        return "anthropic"
    if name.startswith(_GOOGLE_PREFIXES):
        return "google"
    raise InvalidRequest([(
        "model",
        f"cannot tell who publishes {model!r} on Vertex AI (gemini-* is Google's, claude-* "
        "Anthropic's); set the provider's options.publisher",
    )])


def model_path(api_version: str, project: str, location: str, publisher: str, model: str, method: str) -> str:
    """`/v1/projects/{project}/locations/{location}/publishers/{publisher}/models/{model}:{method}`."""
    return (f"/{api_version}/projects/{quote(project, safe=':')}/locations/{location}"
            f"/publishers/{publisher}/models/{quote(model, safe='@')}:{method}")

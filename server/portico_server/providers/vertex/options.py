"""The `options` a provider of kind `vertex` takes in its configuration."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

#: The `anthropic_version` Claude on Vertex requires in every request body.
ANTHROPIC_VERTEX_VERSION = "vertex-2023-10-16"


class VertexOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: The Google Cloud project; unset: the one the credentials name (a key file's
    #: `project_id`, the metadata server's project).
    project: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9.:-]*$")
    #: A region (`us-central1`, `europe-west4`, ...) or `global`.
    location: str = Field(default="global", pattern=r"^[a-z][a-z0-9-]*$")
    #: Who publishes the models: `auto` tells by the name (`gemini-*`, `gemma-*` and
    #: `text-*embedding*` are Google's, `claude-*` Anthropic's).
    publisher: Literal["auto", "google", "anthropic"] = "auto"
    #: A service-account key or external-account (workload identity federation) JSON
    #: file; unset: Application Default Credentials.
    credentials_file: str | None = None
    #: The API version in every path.
    api_version: str = Field(default="v1", pattern=r"^[A-Za-z0-9_.-]+$")
    #: Seconds before a token's expiry at which it is fetched again (at most half its
    #: lifetime).
    token_refresh_margin: float = Field(default=300.0, ge=0)
    #: Seconds a call waits for a token at most.
    token_timeout: float = Field(default=30.0, gt=0)
    #: Gemini: ask thinking models for thought summaries (`thinkingConfig.includeThoughts`).
    include_thoughts: bool = False
    #: Gemini: how JSON Schemas are sent (see the `gemini` provider).
    schema_dialect: Literal["openapi", "json_schema"] = "openapi"
    #: Claude: the `anthropic_version` in the body.
    anthropic_version: str = ANTHROPIC_VERTEX_VERSION
    #: Claude: beta features, sent as one `anthropic-beta` header.
    anthropic_betas: list[str] = Field(default_factory=list)
    #: Claude: `max_tokens` for requests that give none; unset: per model.
    default_max_tokens: int | None = Field(default=None, gt=0)

"""The `options` a provider of kind `gemini` takes in its configuration."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class GeminiOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: The API version in every path.
    api_version: str = Field(default="v1beta", pattern=r"^[A-Za-z0-9_.-]+$")
    #: Ask thinking models for thought summaries (`thinkingConfig.includeThoughts`); they
    #: arrive as `reasoning_content` and as reasoning parts. Models without thinking
    #: reject the setting.
    include_thoughts: bool = False
    #: "openapi": send JSON Schemas as `parameters` / `responseSchema` (Gemini's OpenAPI
    #: subset; Portico converts them). "json_schema": send them unchanged as
    #: `parametersJsonSchema` / `responseJsonSchema` (newer models only).
    schema_dialect: Literal["openapi", "json_schema"] = "openapi"

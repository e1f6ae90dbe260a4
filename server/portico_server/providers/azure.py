"""`azure`: Azure OpenAI, the OpenAI dialect behind deployment URLs.

Requests go to `{endpoint}/openai/deployments/{deployment}/{operation}?api-version=...`
with the key in an `api-key` header. A model name maps to a deployment through the
`deployments` option; unmapped names are used as the deployment name. With
`api_version: v1` the newer version-less `/openai/v1/` routes are used instead, and the
model (deployment) name travels in the body as with OpenAI.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import quote

from pydantic import Field, SecretStr

from ..config import ConfigError, ProviderSettings
from ..domain import Capabilities, ChatRequest
from . import registry
from .openai_compat import JSON, OpenAICompatOptions, OpenAICompatProvider, Preset

#: The latest generally available data-plane version when this was written.
DEFAULT_API_VERSION = "2024-10-21"

AZURE = Preset(
    "azure",
    base_url="",  # the resource's endpoint, always configured
    max_completion_tokens_models=("o1", "o3", "o4", "gpt-5"),
    embedding_batch_size=2048,
    embedding_base64=True,
)


class AzureOptions(OpenAICompatOptions):
    #: The `api-version` query parameter, or "v1" for the version-less /openai/v1/ routes.
    api_version: str = Field(default=DEFAULT_API_VERSION, min_length=1)
    #: Model name -> deployment name. Names not listed are taken as deployment names.
    deployments: dict[str, str] = Field(default_factory=dict)


class AzureOpenAIProvider(OpenAICompatProvider):
    kind: ClassVar[str] = "azure"
    Options = AzureOptions
    options: AzureOptions

    def __init__(self, settings: ProviderSettings) -> None:
        if not settings.base_url:
            raise ConfigError(
                f"provider {settings.name!r} (kind azure) needs base_url: the resource endpoint, "
                "e.g. https://my-resource.openai.azure.com"
            )
        super().__init__(settings)

    @staticmethod
    def preset_for(settings: ProviderSettings) -> Preset:
        return AZURE

    def auth_headers(self) -> dict[str, str]:
        # Azure takes the key in `api-key`; an Entra ID token can be configured instead
        # as an Authorization header under `headers`.
        key = self.api_key()
        return {"api-key": key} if key else {}

    @property
    def _v1(self) -> bool:
        return self.options.api_version == "v1"

    def deployment(self, model: str) -> str:
        return self.options.deployments.get(model, model)

    def operation_path(self, operation: str, model: str) -> str:
        if self._v1:
            return f"/openai/v1/{operation}"
        if operation == "models":
            return "/openai/models"
        return f"/openai/deployments/{quote(self.deployment(model), safe='')}/{operation}"

    def query_params(self) -> dict[str, str] | None:
        return None if self._v1 else {"api-version": self.options.api_version}

    def chat_body(self, request: ChatRequest, *, stream: bool) -> JSON:
        body = super().chat_body(request, stream=stream)
        if self._v1:
            body["model"] = self.deployment(request.model)
        return body

    async def discover_capabilities(self, model: str) -> Capabilities | None:
        # Azure's model listing states no context windows; the built-in table answers.
        return None


def providers_from_environment(environ: Mapping[str, str]) -> list[ProviderSettings]:
    """`azure` when AZURE_OPENAI_API_KEY and AZURE_OPENAI_ENDPOINT are both set."""
    key = environ.get("AZURE_OPENAI_API_KEY")
    endpoint = environ.get("AZURE_OPENAI_ENDPOINT")
    if not key or not endpoint:
        return []
    options: dict[str, Any] = {}
    version = environ.get("AZURE_OPENAI_API_VERSION") or environ.get("OPENAI_API_VERSION")
    if version:
        options["api_version"] = version
    deployment = environ.get("AZURE_OPENAI_DEPLOYMENT") or "gpt-4o-mini"
    return [ProviderSettings(
        name="azure",
        kind="azure",
        api_key=SecretStr(key),
        base_url=endpoint,
        models=[deployment],
        default_model=deployment,
        embedding_model=environ.get("AZURE_OPENAI_EMBEDDING_DEPLOYMENT") or None,
        options=options,
    )]


registry.register("azure", AzureOpenAIProvider)
registry.add_environment_hook(providers_from_environment)

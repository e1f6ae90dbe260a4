"""Maps a provider `kind` to the class that implements it.

Provider modules register themselves when imported; `load_builtin_providers()` imports
the built-in ones. Each class may also say which providers the embedded default config
gets from environment variables (`from_environment`).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping

from pydantic import ValidationError

from ..config import ConfigError, ProviderSettings
from .base import Provider

#: kind -> provider class
_KINDS: dict[str, type[Provider]] = {}
#: Functions that return the ProviderSettings the environment asks for (embedded default).
_ENV_HOOKS: list[Callable[[Mapping[str, str]], list[ProviderSettings]]] = []

#: Modules of the built-in providers. Each registers its kinds on import.
BUILTIN_MODULES = ("fake", "anthropic", "gemini", "ollama", "openai_compat", "azure", "litellm_bridge",
                   "openai_responses", "replicate")


def register(kind: str, cls: type[Provider]) -> None:
    """Make `kind` create instances of `cls`. Registering a kind twice replaces it."""
    _KINDS[kind] = cls


def unregister(kind: str) -> None:
    _KINDS.pop(kind, None)


def get(kind: str) -> type[Provider]:
    load_builtin_providers()
    try:
        return _KINDS[kind]
    except KeyError:
        raise ConfigError(f"unknown provider kind {kind!r}; known kinds: {', '.join(kinds())}") from None


def kinds() -> list[str]:
    load_builtin_providers()
    return sorted(_KINDS)


def create(settings: ProviderSettings, where: str = "") -> Provider:
    """Instantiate the provider `settings.kind` names; errors name `where` (a config path)."""
    cls = get(settings.kind)
    try:
        return cls(settings)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        prefix = f"{where}.options" if where else f"provider {settings.name!r} options"
        raise ConfigError(f"{prefix}.{loc}: {first['msg']}") from None


def add_environment_hook(hook: Callable[[Mapping[str, str]], list[ProviderSettings]]) -> None:
    """Register a function that turns environment variables into provider settings."""
    if hook not in _ENV_HOOKS:
        _ENV_HOOKS.append(hook)


def default_providers(environ: Mapping[str, str]) -> list[ProviderSettings]:
    """The embedded default: `fake`, plus every real provider whose key variable is set."""
    load_builtin_providers()
    providers = [ProviderSettings(name="fake", kind="fake", models=["fake-chat", "fake-embed"],
                                  default_model="fake-chat", embedding_model="fake-embed")]
    for hook in _ENV_HOOKS:
        providers.extend(hook(environ))
    return providers


_loaded = False


def load_builtin_providers() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for module in BUILTIN_MODULES:
        importlib.import_module(f"{__package__}.{module}")

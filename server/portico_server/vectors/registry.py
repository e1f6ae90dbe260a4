"""Vector backends by kind: the `vectors.backend` setting names one, and its factory
builds it from `vectors.options`.

A backend module registers itself with `@register("kind")`; the built-in modules are
imported on first use, so a backend's own dependencies load only when it is chosen.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from ..config import ConfigError, VectorSettings
from .model import VectorBackend

#: (the options mapping, where it came from for error messages) -> a backend.
BackendFactory = Callable[[dict[str, Any], str], VectorBackend]
#: Modules of this package that register a backend when imported.
BUILTIN_MODULES = ["memory", "embedded", "postgres"]

_FACTORIES: dict[str, BackendFactory] = {}
Options = TypeVar("Options", bound=BaseModel)


def register(kind: str) -> Callable[[BackendFactory], BackendFactory]:
    def add(factory: BackendFactory) -> BackendFactory:
        _FACTORIES[kind] = factory
        return factory

    return add


def kinds() -> list[str]:
    _load_builtins()
    return sorted(_FACTORIES)


def create(settings: VectorSettings, where: str = "vectors") -> VectorBackend:
    """The configured backend; ConfigError names the setting that is wrong."""
    _load_builtins()
    factory = _FACTORIES.get(settings.backend)
    if factory is None:
        raise ConfigError(f"{where}.backend: no vector backend {settings.backend!r}; "
                          f"known: {', '.join(sorted(_FACTORIES))}")
    return factory(settings.options, f"{where}.options")


def options(model: type[Options], given: dict[str, Any], where: str) -> Options:
    """A backend's options checked by its pydantic model, mistakes as ConfigError."""
    try:
        return model.model_validate(given)
    except ValidationError as exc:
        lines = [f"{where}.{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()]
        raise ConfigError("\n".join(lines)) from None


def _load_builtins() -> None:
    for module in BUILTIN_MODULES:
        importlib.import_module(f"{__package__}.{module}")

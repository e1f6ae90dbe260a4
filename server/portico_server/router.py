"""Picks the provider and the provider's model name for a call.

Order: an explicit `provider` (with its default model when `model` is empty); else an
alias; else the provider that lists the model; else NOT_FOUND naming the field. A request
naming neither goes to the first configured provider's default model, so
`portico chat "hi"` works on any configuration.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import InvalidRequest, UnknownModel, UnknownProvider
from .providers.base import Provider


@dataclass(frozen=True, slots=True)
class Target:
    """One place a call can go: a provider instance and the provider's model name.
    `group` names the model group or chain that chose it ("" for a direct route)."""

    provider: Provider
    model: str
    group: str = ""

    @property
    def name(self) -> str:
        return f"{self.provider.name}/{self.model}"


class Router:
    def __init__(self, providers: dict[str, Provider], aliases: dict[str, str]) -> None:
        self.providers = providers
        self.aliases: dict[str, tuple[str, str]] = {}
        for alias, target in aliases.items():
            name, _, model = target.partition("/")
            if name not in providers:
                from .config import ConfigError

                raise ConfigError(f"aliases.{alias}: {target!r} names no configured provider {name!r}")
            self.aliases[alias] = (name, model)
        # First provider listing a model wins, in configuration order.
        self._by_model: dict[str, str] = {}
        self._by_embedding_model: dict[str, str] = {}
        for name, provider in providers.items():
            for model in provider.models():
                self._by_model.setdefault(model, name)
            if provider.embedding_model():
                self._by_embedding_model.setdefault(provider.embedding_model(), name)

    def plan(self, provider: str, model: str, *, embedding: bool = False) -> list[Target]:
        """The targets to try for a request's `provider` and `model` fields, in order."""
        chosen, name = self.route(provider, model, embedding=embedding)
        return [Target(chosen, name)]

    def route(self, provider: str, model: str, *, embedding: bool = False) -> tuple[Provider, str]:
        """(provider, model) for a request's `provider` and `model` fields."""
        if not provider and not model and self.providers:
            provider = next(iter(self.providers))
        if provider:
            chosen = self.providers.get(provider)
            if chosen is None:
                raise UnknownProvider(
                    f"no provider named {provider!r}; configured: {', '.join(self.providers) or 'none'}",
                    metadata={"field": "provider", "provider": provider},
                )
            if not model:
                model = (chosen.embedding_model() if embedding else None) or chosen.default_model()
                if not model:
                    raise InvalidRequest([("model", f"is required: provider {provider!r} has no default model")])
            elif model in self.aliases and self.aliases[model][0] == provider:
                model = self.aliases[model][1] or model
            if not chosen.accepts_model(model):
                raise UnknownModel(
                    f"provider {provider!r} does not serve model {model!r}",
                    metadata={"field": "model", "model": model, "provider": provider},
                )
            return chosen, model
        if model in self.aliases:
            alias_provider, target = self.aliases[model]
            return self.providers[alias_provider], target or model
        name = (self._by_embedding_model.get(model) if embedding else None) or self._by_model.get(model)
        if name is None:
            raise UnknownModel(
                f"no provider serves model {model!r}; set provider, or list the model in a provider's models",
                metadata={"field": "model", "model": model},
            )
        return self.providers[name], model

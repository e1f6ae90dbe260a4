"""Plans where a call goes: an ordered list of targets (provider instance + model name).

What a request's `provider` and `model` name, in this order:
- an explicit `provider` (with its default model when `model` is empty); a provider
  configured with several `api_keys` is the group of its keys (`openai#1`, `openai#2`, ...);
- else a model group (`groups:`): its deployments, ordered by the group's strategy
  (resilience/balance.py);
- else an alias (`aliases:`): its target;
- else the provider that lists the model; else NOT_FOUND naming the field. A request
  naming neither goes to the first configured provider's default model, so
  `portico chat "hi"` works on any configuration.
The group's or alias's `fallbacks` follow, in order (a fallback naming a group adds that
group's deployments; it does not add that group's own fallbacks).

Then, with live figures from `Stats`: targets whose breaker is open or that sit in a
cooldown move to the back; a target whose observed time to first token exceeds the call's
remaining deadline moves behind those that can make it, and when none can the plan fails
at once with DEADLINE_EXCEEDED (`DeadlineExceeded`). When the request's estimated size
exceeds a target's known context window and a target that fits exists, the ones that do
not fit are left out (the `context_window_fallbacks` join the plan for this).

How the dispatcher runs a plan:

    plan = router.plan(provider, model, call=call, estimated_tokens=n)
    target, tried = plan[0], []
    while True:
        try:
            return await attempt(target)
        except PorticoError as exc:
            tried.append(target)
            target = plan.fallback_for(exc, tried)
            if target is None:
                raise

`plan.fallback_for(exc, tried)` answers "for this failure, what is the next target?":
`ContextLengthExceeded` → the next untried `context_window_fallbacks` target; a
content-policy refusal (`is_content_policy_refusal`) → the next `content_policy_fallbacks`
target; a failure another target may not share (retryable upstream failures, an open
breaker, a full queue, an exhausted quota) → the next untried target of the plan; anything
else (a bad request, a cancellation, the caller's deadline) → None. An answer that is a
refusal (stop reason content filter or refusal) asks `plan.fallback_for_refusal(tried)`.
`plan.hedge` is the route's hedging configuration (None: no hedging).
"""

from __future__ import annotations

import random
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

from .call import CallContext
from .config import AliasSettings, ConfigError, GroupSettings, HedgeSettings, RouteSettings
from .errors import (
    CircuitOpen,
    ContextLengthExceeded,
    DeadlineExceeded,
    InvalidRequest,
    PorticoError,
    RateLimited,
    UnknownModel,
    UnknownProvider,
    UpstreamBadRequest,
    UpstreamDeadlineExceeded,
    UpstreamQuotaExceeded,
)
from .providers.base import Provider
from .resilience.balance import Stats, Strategy, WeightedRandom, strategy
from .resilience.stats import LiveStats

#: The route `switch` names for requests that name neither a provider nor a model.
DEFAULT_ROUTE = "default"


@dataclass(frozen=True, slots=True)
class Target:
    """One place a call can go: a provider instance and the provider's model name.
    `group` names the model group, alias or key group that chose it ("" for a direct route)."""

    provider: Provider
    model: str
    group: str = ""

    @property
    def name(self) -> str:
        return f"{self.provider.name}/{self.model}"


@dataclass(frozen=True, slots=True)
class _Candidate:
    """A target with its balancing weight, before ordering."""

    target: Target
    weight: float

    @property
    def name(self) -> str:
        return self.target.name


class Plan(list[Target]):
    """The targets to try, in order, and where failures of a kind go instead."""

    def __init__(
        self,
        targets: Iterable[Target] = (),
        *,
        context_window_fallbacks: Sequence[Target] = (),
        content_policy_fallbacks: Sequence[Target] = (),
        hedge: HedgeSettings | None = None,
    ) -> None:
        super().__init__(targets)
        self.context_window_fallbacks = list(context_window_fallbacks)
        self.content_policy_fallbacks = list(content_policy_fallbacks)
        self.hedge = hedge
        #: The call's token estimate the plan was made with (prompt plus max_tokens), so
        #: the rate limits charge the same figure without estimating again.
        self.estimated_tokens: int | None = None

    def fallback_for(self, exc: BaseException, tried: Collection[Target] = ()) -> Target | None:
        """The next target after `exc`, or None when the failure is the caller's answer."""
        if isinstance(exc, ContextLengthExceeded):
            pool: Sequence[Target] = self.context_window_fallbacks
        elif is_content_policy_refusal(exc):
            pool = self.content_policy_fallbacks
        elif falls_over(exc):
            pool = self
        else:
            return None
        return _next_untried(pool, tried)

    def fallback_for_refusal(self, tried: Collection[Target] = ()) -> Target | None:
        """The next target for an answer the model refused on content policy."""
        return _next_untried(self.content_policy_fallbacks, tried)


def _next_untried(pool: Sequence[Target], tried: Collection[Target]) -> Target | None:
    done = {t.name for t in tried}
    return next((t for t in pool if t.name not in done), None)


def falls_over(exc: BaseException) -> bool:
    """Whether another target may answer where this one failed."""
    if isinstance(exc, UpstreamDeadlineExceeded):
        return False  # the caller's own deadline: no time left for anyone
    return isinstance(exc, PorticoError) and (
        exc.retryable or isinstance(exc, (CircuitOpen, RateLimited, UpstreamQuotaExceeded)))


_POLICY_HINTS = ("content_policy", "content policy", "content_filter", "content management policy",
                 "responsible_ai", "safety")


def is_content_policy_refusal(exc: BaseException) -> bool:
    """A 400 whose error code or message says the provider's content policy refused it."""
    if not isinstance(exc, UpstreamBadRequest):
        return False
    text = f"{exc.metadata.get('upstream_code', '')} {exc.message}".lower()
    return any(hint in text for hint in _POLICY_HINTS)


@dataclass
class _Route:
    """A resolved alias or group: its own deployments and where to go next."""

    name: str
    deployments: list[tuple[str, str, float]]  # (provider or key group, model, weight)
    strategy: Strategy
    settings: RouteSettings


class Router:
    def __init__(
        self,
        providers: dict[str, Provider],
        aliases: Mapping[str, str | AliasSettings],
        groups: Mapping[str, GroupSettings] | None = None,
        key_groups: Mapping[str, list[str]] | None = None,
        stats: Stats | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.providers = providers
        #: provider name -> the instances of its keys (`openai` -> [`openai#1`, ...]).
        self.key_groups = {name: list(members) for name, members in (key_groups or {}).items()}
        self.stats: Stats = stats if stats is not None else LiveStats()
        self._rng = rng or random.Random()
        self._even = WeightedRandom(self._rng)
        self._routes: dict[str, _Route] = {}
        for group, settings in (groups or {}).items():
            deployments = []
            for i, d in enumerate(settings.deployments):
                self._check_provider(d.provider, f"groups.{group}.deployments[{i}]")
                deployments.append((d.provider, d.model, d.weight))
            self._routes[group] = _Route(group, deployments, strategy(settings.strategy, self._rng), settings)
        #: alias -> (provider, model) for the plain aliases the explicit-provider path reads.
        self.aliases: dict[str, tuple[str, str]] = {}
        for alias, value in aliases.items():
            alias_settings = value if isinstance(value, AliasSettings) else AliasSettings(target=value)
            if alias in self._routes:
                raise ConfigError(f"aliases.{alias}: the name is a model group too; use one or the other")
            name, _, model = alias_settings.target.partition("/")
            self._check_provider(name, f"aliases.{alias}", alias_settings.target)
            self.aliases[alias] = (name, model)
            # An alias naming only a provider sends the alias itself as the model name.
            self._routes[alias] = _Route(alias, [(name, model or alias, 1.0)], self._even, alias_settings)
        for route in self._routes.values():
            for kind in ("fallbacks", "context_window_fallbacks", "content_policy_fallbacks"):
                for i, target in enumerate(getattr(route.settings, kind)):
                    if target not in self._routes and not self._names_provider(target):
                        section = "aliases" if route.name in self.aliases else "groups"
                        raise ConfigError(f"{section}.{route.name}.{kind}[{i}]: {target!r} "
                                          "names no group, alias or configured provider")
        # Public provider names in configuration order: a key group stands for its keys.
        member_of = {member: name for name, members in self.key_groups.items() for member in members}
        self._public: list[str] = list(dict.fromkeys(member_of.get(name, name) for name in providers))
        # First provider listing a model wins, in configuration order.
        self._by_model: dict[str, str] = {}
        self._by_embedding_model: dict[str, str] = {}
        for name, provider in providers.items():
            public = member_of.get(name, name)
            for model in provider.models():
                self._by_model.setdefault(model, public)
            if provider.embedding_model():
                self._by_embedding_model.setdefault(provider.embedding_model(), public)
        self._check_routes()
        #: Routes an operator pinned at run time (`switch`): route -> target text.
        self.pinned: dict[str, str] = {}
        self._configured = {name: route.deployments for name, route in self._routes.items()}

    def switch(self, route: str, target: str) -> str:
        """Pin a group or alias (or `DEFAULT_ROUTE`) to `target` ("provider/model" or a
        provider), or restore its configured deployments when `target` is empty. Returns the
        previous pin ("" for none). Raises UnknownRoute, or what resolving `target` raises."""
        if route != DEFAULT_ROUTE and route not in self._routes:
            raise UnknownModel(
                f"no model group or alias named {route!r}; routes: "
                f"{', '.join([DEFAULT_ROUTE, *self._routes])}",
                metadata={"field": "route", "route": route},
            )
        if target:
            name, _, model = target.partition("/")
            self._direct(name, model, embedding=False)  # raises for a provider or model it cannot route to
        previous = self.pinned.pop(route, "")
        if target:
            self.pinned[route] = target
        if route != DEFAULT_ROUTE:
            self._routes[route].deployments = (
                [(name, model, 1.0)] if target else self._configured[route])
        return previous

    def _check_routes(self) -> None:
        """Resolve every route once, so a model a provider does not serve stops start-up
        instead of failing each call."""
        for route in self._routes.values():
            section = "aliases" if route.name in self.aliases else "groups"
            try:
                self._deployments(route)
            except PorticoError as exc:
                raise ConfigError(f"{section}.{route.name}: {exc.message}") from None
            for kind in ("fallbacks", "context_window_fallbacks", "content_policy_fallbacks"):
                for i, target in enumerate(getattr(route.settings, kind)):
                    try:
                        self._resolve(target)
                    except PorticoError as exc:
                        raise ConfigError(f"{section}.{route.name}.{kind}[{i}]: {exc.message}") from None

    def _names_provider(self, text: str) -> bool:
        name = text.partition("/")[0]
        return name in self.providers or name in self.key_groups

    def _check_provider(self, name: str, where: str, text: str = "") -> None:
        if name not in self.providers and name not in self.key_groups:
            raise ConfigError(f"{where}: {text or name!r} names no configured provider {name!r}")

    # -- planning -------------------------------------------------------------------------

    def plan(
        self,
        provider: str,
        model: str,
        *,
        embedding: bool = False,
        call: CallContext | None = None,
        estimated_tokens: int | None = None,
    ) -> Plan:
        """The targets to try for a request's `provider` and `model` fields, in order."""
        route = None if provider else self._routes.get(model)
        if route is None:
            plan = Plan(self._spread(self._direct(provider, model, embedding=embedding)))
        else:
            targets = self._deployments(route)
            targets += [t for name in route.settings.fallbacks for t in self._resolve(name)]
            plan = Plan(
                _unique(targets),
                context_window_fallbacks=_unique(
                    t for name in route.settings.context_window_fallbacks for t in self._resolve(name)),
                content_policy_fallbacks=_unique(
                    t for name in route.settings.content_policy_fallbacks for t in self._resolve(name)),
                hedge=route.settings.hedge,
            )
        if estimated_tokens is not None:
            plan.estimated_tokens = estimated_tokens
            self._fit_context(plan, estimated_tokens)
        self._prefer_available(plan)
        if call is not None:
            self._meet_deadline(plan, call)
        return plan

    def route(self, provider: str, model: str, *, embedding: bool = False) -> tuple[Provider, str]:
        """(provider, model) of the plan's first target."""
        first = self.plan(provider, model, embedding=embedding)[0]
        return first.provider, first.model

    def _resolve(self, text: str) -> list[Target]:
        """The targets a fallback entry names: a group or alias (its own deployments, in
        its strategy's order), "provider/model", or a provider (its default model)."""
        route = self._routes.get(text)
        if route is not None:
            return self._deployments(route)
        name, _, model = text.partition("/")
        return self._spread(self._direct(name, model, embedding=False))

    def _deployments(self, route: _Route) -> list[Target]:
        """A route's own deployments (each key of a provider one of them), in its strategy's order."""
        out: list[_Candidate] = []
        for name, model, weight in route.deployments:
            out += self._instances(name, model, weight, route.name)
        return [out[i].target for i in route.strategy.order(out, self.stats)]

    def _instances(self, name: str, model: str, weight: float, group: str) -> list[_Candidate]:
        """A provider's instances for `model`: its keys, sharing the deployment's weight."""
        members = self.key_groups.get(name, [name])
        out = []
        for member in members:
            chosen = self.providers[member]
            resolved = model or chosen.default_model()
            if not resolved:
                raise InvalidRequest([("model", f"is required: provider {name!r} has no default model")])
            if not chosen.accepts_model(resolved):
                raise UnknownModel(f"provider {name!r} does not serve model {resolved!r}",
                                   metadata={"field": "model", "model": resolved, "provider": name})
            out.append(_Candidate(Target(chosen, resolved, group or (name if name in self.key_groups else "")),
                                  weight / len(members)))
        return out

    def _direct(self, provider: str, model: str, *, embedding: bool) -> list[_Candidate]:
        """A route that names no group: an explicit provider, an alias, or a model's provider."""
        if not provider and not model and self._public:
            pinned = self.pinned.get(DEFAULT_ROUTE)
            provider, _, model = pinned.partition("/") if pinned else (self._public[0], "", "")
        if provider:
            if provider not in self.providers and provider not in self.key_groups:
                raise UnknownProvider(
                    f"no provider named {provider!r}; configured: {', '.join(self._public) or 'none'}",
                    metadata={"field": "provider", "provider": provider},
                )
            first = self.providers[self.key_groups.get(provider, [provider])[0]]
            if not model:
                model = (first.embedding_model() if embedding else None) or first.default_model()
                if not model:
                    raise InvalidRequest([("model", f"is required: provider {provider!r} has no default model")])
            elif model in self.aliases and self.aliases[model][0] == provider:
                model = self.aliases[model][1] or model
            if not first.accepts_model(model):
                raise UnknownModel(
                    f"provider {provider!r} does not serve model {model!r}",
                    metadata={"field": "model", "model": model, "provider": provider},
                )
            return self._instances(provider, model, 1.0, "")
        name = (self._by_embedding_model.get(model) if embedding else None) or self._by_model.get(model)
        if name is None:
            raise UnknownModel(
                f"no provider serves model {model!r}; set provider, or list the model in a provider's models",
                metadata={"field": "model", "model": model},
            )
        return self._instances(name, model, 1.0, "")

    def _spread(self, candidates: list[_Candidate]) -> list[Target]:
        """The keys of one provider in a random order, so they share the load evenly."""
        return [candidates[i].target for i in self._even.order(candidates, self.stats)]

    def _fit_context(self, plan: Plan, tokens: int) -> None:
        fits = [t for t in plan if _fits(t, tokens)]
        if len(fits) == len(plan):
            return
        larger = [t for t in plan.context_window_fallbacks if _fits(t, tokens) and t not in fits]
        if fits or larger:  # with nothing that fits, the upstream has the last word
            plan[:] = fits + larger

    def _prefer_available(self, plan: Plan) -> None:
        plan.sort(key=lambda t: not self.stats.available(t.name))  # stable: order kept within each

    def _meet_deadline(self, plan: Plan, call: CallContext) -> None:
        remaining = call.remaining()
        if remaining is None:
            return

        def too_slow(target: Target) -> bool:
            ttft = self.stats.ttft_ewma(target.name)
            return ttft is not None and ttft > remaining

        plan.sort(key=too_slow)
        if plan and too_slow(plan[0]):
            observed = ", ".join(f"{t.name} {self.stats.ttft_ewma(t.name):.3g}s" for t in plan[:5])
            raise DeadlineExceeded(
                f"no target can answer within the {remaining:.3g}s left; "
                f"observed time to first token: {observed}",
                metadata={"remaining_seconds": f"{remaining:.3f}"},
                retry_safe=True,  # nothing was sent
            )


def _fits(target: Target, tokens: int) -> bool:
    window = known_context_window(target)
    return window is None or tokens <= window


def known_context_window(target: Target) -> int | None:
    """The model's context window from configuration or the built-in table, if known."""
    override = target.provider.capability_overrides(target.model).get("context_window")
    if isinstance(override, int):
        return override
    known = target.provider.known_capabilities(target.model)
    return known.context_window if known is not None and known.context_window else None


def _unique(targets: Iterable[Target]) -> list[Target]:
    seen: set[str] = set()
    out = []
    for target in targets:
        if target.name not in seen:
            seen.add(target.name)
            out.append(target)
    return out

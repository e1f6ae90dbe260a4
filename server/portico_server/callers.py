"""What a caller key may do once the gateway knows who is calling (auth.py): which
targets it may use, how many requests and tokens per minute, and how many tokens per day
or month.

Allow lists apply to the router's plan. A target is allowed when the key's `providers`
name its provider, its `models` name its model ("model" or "provider/model"), or its
`groups` name the model group or alias that chose it; empty lists allow everything. The
plan keeps only the allowed targets, in order: fallbacks the key may not use are never
tried, and a plan left empty is PERMISSION_DENIED naming the model asked for.

Requests and tokens per minute reuse the gateway's rate-limit buckets
(resilience/limits.py) with no queue: over a limit the call is refused at once with
RESOURCE_EXHAUSTED and the wait in RetryInfo, before any upstream work. Budgets are in
budgets.py. Without Redis everything is counted in this process only; with a `redis:`
section limits and budgets hold across every worker and replica (docs/scale-out.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .budgets import Budget
from .call import CallContext
from .config import AuthSettings, CallerKeySettings, KeyAllow, LimitSettings
from .errors import PermissionDenied, RateLimited
from .resilience.limits import Limits, Ticket
from .router import Plan, Target
from .shared.budgets import SharedSpend
from .shared.limits import SharedLimits, SharedStateRefusal


def caller_key(name: str) -> str:
    """The rate-limit key of a caller (beside `provider:`, `deployment:` and `group:`)."""
    return f"caller:{name}"


def allows(allow: KeyAllow, target: Target) -> bool:
    provider = target.provider.name.partition("#")[0]  # a key of a provider with several
    return (
        provider in allow.providers
        or target.model in allow.models
        or f"{provider}/{target.model}" in allow.models
        or (bool(target.group) and target.group in allow.groups)
    )


@dataclass(slots=True)
class Spend:
    """A call's hold on its caller's limits; `settle` charges what the provider reported."""

    ticket: Ticket | None = None
    budget: Budget | None = None
    estimate: int = 0
    settled: bool = False

    def settle(self, used_tokens: int | None) -> None:
        if self.settled:
            return
        self.settled = True
        if self.ticket is not None:
            self.ticket.settle(used_tokens)
        if self.budget is not None:
            self.budget.charge(self.estimate if used_tokens is None else used_tokens)


class _NoSpend(Spend):
    def settle(self, used_tokens: int | None) -> None:
        return None


#: For the open gateway and for callers without limits or budget.
_FREE = _NoSpend()


class CallerPolicies:
    """Every caller key's allow list, limits and budget. `update` applies a reloaded file;
    limits and budgets of keys that stay keep what they counted."""

    def __init__(self, settings: AuthSettings, shared_limits: SharedLimits | None = None,
                 shared_spend: SharedSpend | None = None) -> None:
        self._allow: dict[str, KeyAllow] = {}
        self._limited: dict[str, str] = {}  # caller -> what its limits are, for refusals
        self._budgets: dict[str, Budget] = {}
        self._shared_spend = shared_spend
        self.limits = Limits({}, shared=shared_limits)
        self.update(settings)

    def update(self, settings: AuthSettings) -> None:
        self._allow = {k.name: k.allow for k in settings.keys if not k.allow.everything}
        self._limited = {k.name: _describe_limits(k) for k in settings.keys if k.rpm or k.tpm}
        self.limits.update({caller_key(k.name): LimitSettings(rpm=k.rpm, tpm=k.tpm, queue=0)
                            for k in settings.keys})
        wanted = {k.name: k.budget for k in settings.keys if k.budget is not None}
        for name in list(self._budgets):
            if name not in wanted:
                self._budgets.pop(name).forget()
        for name, budget in wanted.items():
            if name in self._budgets:
                self._budgets[name].reconfigure(budget)
            else:
                self._budgets[name] = Budget(name, budget, shared=self._shared_spend)

    def described(self, caller: str) -> str:
        return self._limited.get(caller, "")

    def budget(self, caller: str) -> Budget | None:
        return self._budgets.get(caller)

    def permit(self, caller: str, plan: Plan, model: str) -> None:
        """Cut `plan` to the targets `caller` may use; PERMISSION_DENIED when none is left.
        `model` is what the request asked for (named in the refusal)."""
        allow = self._allow.get(caller)
        if allow is None:
            return
        allowed = [t for t in plan if allows(allow, t)]
        if not allowed:
            named = model or (plan[0].name if plan else "")
            raise PermissionDenied(f"caller {caller!r} may not use model {named!r}",
                                   metadata={"caller": caller, "model": named})
        if len(allowed) != len(plan):
            plan[:] = allowed
        plan.context_window_fallbacks = [t for t in plan.context_window_fallbacks if allows(allow, t)]
        plan.content_policy_fallbacks = [t for t in plan.content_policy_fallbacks if allows(allow, t)]

    def admit(self, caller: str, call: CallContext, estimated_tokens: int) -> _Admission:
        """`async with policies.admit(caller, call, tokens) as spend:` holds the caller's
        requests- and tokens-per-minute slots and checks its budget for the block;
        refusals are RESOURCE_EXHAUSTED with RetryInfo."""
        budget = self._budgets.get(caller)
        limited = caller in self._limited
        if budget is None and not limited:
            return _UNLIMITED
        return _Admission(self, caller, call, estimated_tokens, budget, limited)


class _Admission:
    __slots__ = ("_budget", "_call", "_caller", "_held", "_limited", "_policies", "_tokens")

    def __init__(self, policies: CallerPolicies, caller: str, call: CallContext, tokens: int,
                 budget: Budget | None, limited: bool) -> None:
        self._policies, self._caller, self._call, self._tokens = policies, caller, call, tokens
        self._budget, self._limited = budget, limited
        self._held: Any = None

    async def __aenter__(self) -> Spend:
        if self._budget is not None:
            await self._budget.check_shared()
        if not self._limited:
            return Spend(None, self._budget, self._tokens)
        caller = self._caller
        held = self._policies.limits.admit(caller_key(caller), self._call, self._tokens)
        try:
            ticket = await held.__aenter__()
        except SharedStateRefusal:
            raise
        except RateLimited as exc:
            raise RateLimited(
                f"caller {caller!r} is over its rate limit ({self._policies.described(caller)}); "
                f"retry in about {exc.retry_after or 1.0:.1f} s",
                metadata={"caller": caller, "limit": "rate"},
                retry_after=exc.retry_after, retry_safe=True) from None
        self._held = held
        return Spend(ticket, self._budget, self._tokens)

    async def __aexit__(self, kind: Any, exc: BaseException | None, tb: Any) -> None:
        if self._held is not None:
            await self._held.__aexit__(kind, exc, tb)
        if self._budget is not None:
            # Before the answer leaves: the next call on any replica sees this spend.
            await self._budget.flush()


class _Unlimited(_Admission):
    """A caller without limits or budget (or the open gateway): nothing to hold."""

    def __init__(self) -> None:
        pass

    async def __aenter__(self) -> Spend:
        return _FREE

    async def __aexit__(self, kind: Any, exc: BaseException | None, tb: Any) -> None:
        return None


_UNLIMITED = _Unlimited()


def _describe_limits(key: CallerKeySettings) -> str:
    parts = [f"{key.rpm} requests per minute" if key.rpm else "", f"{key.tpm} tokens per minute" if key.tpm else ""]
    return ", ".join(p for p in parts if p)

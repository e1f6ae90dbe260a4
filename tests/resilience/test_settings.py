"""Resilience settings: on by default, validated with the key named."""

from __future__ import annotations

import pytest
from portico_server.config import ConfigError, parse_config


def test_retries_breakers_and_cooldowns_are_on_by_default() -> None:
    provider = parse_config({"providers": [{"name": "p", "kind": "fake"}]}).providers[0]
    assert provider.retry.enabled and provider.retry.attempts == 3
    assert (provider.retry.backoff_initial, provider.retry.backoff_max) == (0.5, 8.0)
    assert provider.breaker.enabled and provider.breaker.failures == 5
    assert (provider.breaker.recovery, provider.breaker.trial_calls, provider.breaker.per_model) == (30.0, 1, False)
    assert provider.quota_cooldown == 3600


@pytest.mark.parametrize(("settings", "key"), [
    ({"breaker": {"failures": 0}}, "providers[0].breaker.failures"),
    ({"retry": {"attempts": -1}}, "providers[0].retry.attempts"),
    ({"retry": {"backoff_initial": 0}}, "providers[0].retry.backoff_initial"),
    ({"retry": {"tries": 2}}, "providers[0].retry.tries"),
    ({"quota_cooldown": -5}, "providers[0].quota_cooldown"),
])
def test_a_bad_setting_is_refused_with_its_key(settings: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({"providers": [{"name": "p", "kind": "fake", **settings}]}, "gateway.yaml")
    assert f"gateway.yaml: {key}:" in str(info.value)

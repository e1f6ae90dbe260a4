"""The Resilience page's complete example loads, and every route in it resolves."""

from __future__ import annotations

import re
from pathlib import Path

from portico_server.app import Gateway
from portico_server.config import parse_config

PAGE = Path(__file__).resolve().parents[2] / "docs" / "resilience.md"


def example_yaml() -> str:
    text = PAGE.read_text(encoding="utf-8")
    example = text[text.index("## A complete example"):]
    found = re.search(r"```yaml\n(.*?)```", example, re.S)
    assert found is not None, "the Resilience section has no complete example"
    return found.group(1)


async def test_the_complete_resilience_example_loads_and_routes() -> None:
    import yaml

    environ = {"OPENAI_KEY_TEAM_A": "sk-a-0123456789", "OPENAI_KEY_TEAM_B": "sk-b-0123456789",
               "AZURE_EU_KEY": "azure-0123456789", "ANTHROPIC_API_KEY": "sk-ant-0123456789",
               "GEMINI_API_KEY": "gemini-0123456789"}
    config = parse_config(yaml.safe_load(example_yaml()), environ=environ)
    gateway = Gateway(config)
    try:
        openai = next(p for p in config.providers if p.name == "openai")
        assert openai.breaker.per_model and openai.limits.concurrency == 32
        assert config.group_limits["mini"].concurrency == 64
        # Each key has the provider's limits; the keys share `group_limits.openai`.
        plan = gateway.router.plan("", "smart")
        assert [t.provider.name for t in plan][:2] in (["openai#1", "openai#2"], ["openai#2", "openai#1"])
        first = plan[0].provider.name
        assert gateway.dispatcher.limits.keys_for(plan[0]) == [
            f"provider:{first}", f"deployment:{first}/gpt-4o", "group:openai"]
        assert plan.hedge is not None and plan.content_policy_fallbacks
        mini = gateway.router.plan("", "mini")
        assert {t.provider.name for t in mini} >= {"openai#1", "openai#2", "azure-eu", "anthropic"}
        assert [t.provider.name for t in mini.context_window_fallbacks] == ["gemini"]
        on_key = next(t for t in mini if t.provider.name == "openai#1")
        assert gateway.dispatcher.limits.keys_for(on_key) == ["provider:openai#1", "group:openai", "group:mini"]
    finally:
        for provider in gateway.providers.values():
            await provider.close()

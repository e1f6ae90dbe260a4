"""The Python client's reasoning, cache and document helpers against a real gateway: what
the keyword arguments and helpers set is what the provider receives."""

from __future__ import annotations

from typing import Any

import portico
import pytest
from harness import running_gateway
from portico_server.domain import CacheBreakpoint, MediaPart, ReasoningConfig, ReasoningEffort
from portico_server.providers.fake import FakeProvider

CONFIG = {"providers": [{"name": "fake", "kind": "fake", "models": ["fake-chat"], "default_model": "fake-chat"}]}


def fake(gw: Any) -> FakeProvider:
    provider = gw.provider("fake")
    assert isinstance(provider, FakeProvider)
    return provider


@pytest.mark.parametrize(("kwargs", "expected"), [
    ({"reasoning_effort": "high"}, ReasoningConfig(effort=ReasoningEffort.HIGH)),
    ({"reasoning_effort": portico.ReasoningEffort.Value("REASONING_EFFORT_LOW")},
     ReasoningConfig(effort=ReasoningEffort.LOW)),
    ({"reasoning_budget": 4096}, ReasoningConfig(budget_tokens=4096)),
    ({"reasoning_effort": "Medium", "reasoning_budget": 2000},
     ReasoningConfig(effort=ReasoningEffort.MEDIUM, budget_tokens=2000)),
    ({}, None),
])
async def test_reasoning_keyword_arguments_reach_the_provider(kwargs, expected) -> None:
    async with running_gateway(CONFIG) as gw, portico.AsyncClient(gw.address) as client:
        await client.chat("think", model="fake-chat", **kwargs)
        sent = fake(gw).last_request
    assert sent is not None and sent.reasoning == expected


def test_a_wrong_effort_is_refused_before_any_call() -> None:
    with portico.Client("127.0.0.1:1") as client, pytest.raises(ValueError, match="reasoning_effort"):
        client.chat("x", reasoning_effort="extreme")


async def test_cache_markers_on_messages_parts_and_tools_reach_the_provider(tmp_path) -> None:
    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(b"%PDF-1.7 tiny")
    messages = [
        portico.cache(portico.Message(role=portico.Role.Value("ROLE_SYSTEM"), content="rules"), ttl=3600),
        {"role": "user", "content": [portico.cache(portico.document(pdf)), portico.cache("the long part"),
                                     {"text": "question", "cache": False}], "cache": True},
    ]
    tools = [{"name": "lookup", "cache": 300}, portico.cache(portico.tool("other"))]
    async with running_gateway(CONFIG) as gw, portico.AsyncClient(gw.address) as client:
        await client.chat(messages, model="fake-chat", tools=tools)
        sent = fake(gw).last_request
    assert sent is not None
    assert [m.cache for m in sent.messages] == [CacheBreakpoint(3600), CacheBreakpoint()]
    parts = sent.messages[1].parts
    assert [p.cache for p in parts] == [CacheBreakpoint(), CacheBreakpoint(), None]
    assert parts[0].media == MediaPart(mime_type="application/pdf", data=b"%PDF-1.7 tiny")
    assert [t.cache for t in sent.tools] == [CacheBreakpoint(300), CacheBreakpoint()]


def test_cache_refuses_what_cannot_be_a_breakpoint() -> None:
    with pytest.raises(TypeError, match="cache"):
        portico.cache({"role": "user", "content": "x"})  # type: ignore[call-overload]
    with portico.Client("127.0.0.1:1") as client, pytest.raises(TypeError, match="cache"):
        client.chat([{"role": "user", "content": "x", "cache": "5m"}])

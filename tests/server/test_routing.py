"""Model groups, several keys of one provider, fallback chains, deadline-aware routing and
hedging, through a real gateway to loopback upstreams."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from typing import Any

import grpc
import pytest
from harness import rpc_details, running_gateway
from portico.v1 import llm_service_pb2 as pb
from portico.v1 import types_pb2 as t
from portico_server.config import ConfigError, expand_api_keys, parse_config
from upstream import Received, Reply, Upstream, fixture

JSON = {"content-type": "application/json"}
USER = t.Message(role=t.ROLE_USER, content="hi")
KEYS = ["sk-routing-key-one-0001", "sk-routing-key-two-0002", "sk-routing-key-throttled-0003"]
THROTTLED = KEYS[2]


def ok() -> Reply:
    return Reply(200, JSON, fixture("openai/chat_text.json"))


def error(status: int, code: str, message: str = "refused") -> Reply:
    return Reply(status, JSON, json.dumps({"error": {"message": message, "type": "x", "code": code}}).encode())


def openai(name: str, up: Upstream, **extra: Any) -> dict[str, Any]:
    return {"name": name, "kind": "openai", "base_url": up.url, "api_key": "sk-routing-test-key-0000",
            "models": ["gpt-4o"], **extra}


def fake(name: str, **options: Any) -> dict[str, Any]:
    return {"name": name, "kind": "fake", "models": ["fake-chat"], "options": options}


def key_aware(up: Upstream) -> Counter[str]:
    """Answer 429 to the throttled key and 200 to the others; count calls per key."""
    seen: Counter[str] = Counter()

    async def respond(received: Received) -> Reply:
        key = received.headers["authorization"].removeprefix("Bearer ")
        seen[key] += 1
        return error(429, "rate_limit_exceeded", "slow down") if key == THROTTLED else ok()

    up.respond("POST", "/chat/completions", respond)
    return seen


async def test_a_group_over_three_keys_with_one_throttled_never_fails_a_caller() -> None:
    async with Upstream() as up:
        seen = key_aware(up)
        config = {
            "providers": [{**openai("openai", up), "api_key": None, "api_keys": KEYS}],
            "groups": {"chat": {"deployments": [{"provider": "openai", "model": "gpt-4o"}]}},
        }
        async with running_gateway(config) as gw:
            replies = await asyncio.gather(*(gw.stub.Chat(pb.ChatRequest(model="chat", messages=[USER]))
                                             for _ in range(30)))
            # A request naming the provider goes to the group of its keys too.
            direct = [await gw.stub.Chat(pb.ChatRequest(provider="openai", model="gpt-4o", messages=[USER]))
                      for _ in range(10)]
            listed = await gw.stub.ListProviders(pb.ListProvidersRequest())
    served = Counter(reply.provider for reply in replies + direct)
    assert all(reply.content == "Oi!" for reply in replies + direct)
    assert set(served) <= {"openai#1", "openai#2"}
    assert seen[THROTTLED] > 0  # it was asked, and skipped
    assert seen[KEYS[0]] > 0 and seen[KEYS[1]] > 0
    names = [p.name for p in listed.providers]
    assert names == ["openai#1", "openai#2", "openai#3"]
    assert not any(key in str(listed) for key in KEYS)


async def test_weights_share_the_calls_of_a_group() -> None:
    config = {
        "providers": [fake("heavy"), fake("light")],
        "groups": {"chat": {"deployments": [
            {"provider": "heavy", "model": "fake-chat", "weight": 3},
            "light/fake-chat",
        ]}},
    }
    async with running_gateway(config) as gw:
        replies = await asyncio.gather(*(gw.stub.Chat(pb.ChatRequest(model="chat", messages=[USER]))
                                         for _ in range(400)))
    served = Counter(reply.provider for reply in replies)
    # Expected 300 of 400 on `heavy` (standard deviation 8.7); the bounds are five of them.
    assert 256 < served["heavy"] < 344
    assert served["heavy"] + served["light"] == 400


async def test_a_chain_answers_from_its_second_target_and_says_so() -> None:
    async with Upstream() as first, Upstream() as second:
        first.always("POST", "/chat/completions", error(503, "server_error", "down"))
        second.always("POST", "/chat/completions", ok())
        config = {
            # No retries on the primary: the chain, not the retry, is under test.
            "providers": [openai("primary", first, retry={"enabled": False}), openai("backup", second)],
            "aliases": {"smart": {"target": "primary/gpt-4o", "fallbacks": ["backup/gpt-4o"]}},
        }
        async with running_gateway(config) as gw:
            reply = await gw.stub.Chat(pb.ChatRequest(model="smart", messages=[USER]))
        assert (reply.provider, reply.model, reply.content) == ("backup", "gpt-4o-2024-08-06", "Oi!")
        assert len(first.received) == 1 and len(second.received) == 1


async def test_a_bad_request_does_not_go_down_the_chain() -> None:
    async with Upstream() as first, Upstream() as second:
        first.always("POST", "/chat/completions", error(400, "invalid_value", "temperature is wrong"))
        second.always("POST", "/chat/completions", ok())
        config = {
            "providers": [openai("primary", first), openai("backup", second)],
            "aliases": {"smart": {"target": "primary/gpt-4o", "fallbacks": ["backup"]}},
        }
        async with running_gateway(config) as gw:
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await gw.stub.Chat(pb.ChatRequest(model="smart", messages=[USER]))
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert not second.received


async def test_context_length_exceeded_goes_to_the_larger_context_target() -> None:
    async with Upstream() as small, Upstream() as large:
        small.always("POST", "/chat/completions",
                     error(400, "context_length_exceeded", "This model's maximum context length is 8192 tokens"))
        large.always("POST", "/chat/completions", ok())
        config = {
            "providers": [openai("small", small), openai("large", large), openai("other", large)],
            "groups": {"chat": {"deployments": ["small/gpt-4o"], "fallbacks": ["other"],
                                "context_window_fallbacks": ["large/gpt-4o"]}},
        }
        async with running_gateway(config) as gw:
            reply = await gw.stub.Chat(pb.ChatRequest(model="chat", messages=[USER]))
        assert reply.provider == "large"  # not the plain fallback `other`


async def test_a_request_over_the_known_context_window_skips_the_small_model() -> None:
    config = {
        "providers": [
            {**fake("small"), "capabilities": {"fake-chat": {"context_window": 64}}},
            fake("large"),
        ],
        "groups": {"chat": {"deployments": ["small/fake-chat"],
                            "context_window_fallbacks": ["large/fake-chat"]}},
    }
    long = t.Message(role=t.ROLE_USER, content="word " * 400)
    async with running_gateway(config) as gw:
        short_reply = await gw.stub.Chat(pb.ChatRequest(model="chat", messages=[USER]))
        long_reply = await gw.stub.Chat(pb.ChatRequest(model="chat", messages=[long]))
        small = gw.provider("small")
    assert short_reply.provider == "small"
    assert long_reply.provider == "large"
    assert small.last_request is not None and small.last_request.messages[-1].text() == "hi"  # type: ignore[attr-defined]


async def test_a_content_policy_refusal_goes_to_its_configured_target() -> None:
    async with Upstream() as strict, Upstream() as lenient:
        strict.always("POST", "/chat/completions",
                      error(400, "content_policy_violation", "Your request was rejected by our safety system"))
        lenient.always("POST", "/chat/completions", ok())
        config = {
            "providers": [openai("strict", strict), openai("lenient", lenient)],
            "aliases": {"with": {"target": "strict/gpt-4o", "content_policy_fallbacks": ["lenient/gpt-4o"]},
                        "without": {"target": "strict/gpt-4o", "fallbacks": ["lenient/gpt-4o"]}},
        }
        async with running_gateway(config) as gw:
            reply = await gw.stub.Chat(pb.ChatRequest(model="with", messages=[USER]))
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await gw.stub.Chat(pb.ChatRequest(model="without", messages=[USER]))
    assert reply.provider == "lenient"
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT  # not opted in: the refusal stands


async def test_an_answer_filtered_on_content_goes_to_its_configured_target() -> None:
    config = {
        "providers": [fake("strict", replies=[{"content": "", "stop_reason": "content_filter"}]), fake("lenient")],
        "aliases": {"chat": {"target": "strict/fake-chat", "content_policy_fallbacks": ["lenient/fake-chat"]}},
    }
    async with running_gateway(config) as gw:
        reply = await gw.stub.Chat(pb.ChatRequest(model="chat", messages=[USER]))
    assert (reply.provider, reply.content) == ("lenient", "hi")


def observed(gw: Any, name: str, seconds: float) -> None:
    """Give the gateway's live statistics a call to `name` that took `seconds`."""
    stats = gw.gateway.dispatcher.stats
    stats.first_token((name,), seconds)
    stats.succeeded((name,), seconds)


async def test_deadline_aware_routing_picks_the_target_that_can_make_it() -> None:
    config = {
        "providers": [fake("slow", replies=[]), fake("fast")],
        "groups": {"chat": {"deployments": ["slow/fake-chat", "fast/fake-chat"]}},
    }
    async with running_gateway(config) as gw:
        observed(gw, "slow/fake-chat", 30.0)
        observed(gw, "fast/fake-chat", 0.05)
        replies = [await gw.stub.Chat(pb.ChatRequest(model="chat", messages=[USER]), timeout=10)
                   for _ in range(20)]
        assert {reply.provider for reply in replies} == {"fast"}
        # With no deadline, both serve.
        open_ended = [await gw.stub.Chat(pb.ChatRequest(model="chat", messages=[USER])) for _ in range(40)]
        assert {reply.provider for reply in open_ended} == {"slow", "fast"}


async def test_when_no_target_can_make_the_deadline_the_call_fails_at_once() -> None:
    config = {
        "providers": [fake("slow"), fake("slower")],
        "groups": {"chat": {"deployments": ["slow/fake-chat", "slower/fake-chat"]}},
    }
    async with running_gateway(config) as gw:
        observed(gw, "slow/fake-chat", 20.0)
        observed(gw, "slower/fake-chat", 40.0)
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await gw.stub.Chat(pb.ChatRequest(model="chat", messages=[USER]), timeout=10)
        elapsed = loop.time() - started
        assert gw.provider("slow").last_request is None  # type: ignore[attr-defined]
        assert gw.provider("slower").last_request is None  # type: ignore[attr-defined]
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert rpc_details(info.value)["reason"] == "ERROR_REASON_DEADLINE_EXCEEDED"  # the gateway's, not the clock's
    assert "slow/fake-chat" in (info.value.details() or "")
    assert elapsed < 5  # at once, not after the 10 s deadline


async def test_hedging_closes_the_slow_first_targets_connection_when_the_second_answers() -> None:
    async with Upstream() as slow, Upstream() as fast:
        slow.always("POST", "/chat/completions", Reply(200, JSON, b"", hang=True))
        fast.always("POST", "/chat/completions", ok())
        config = {
            "providers": [openai("slow", slow), openai("fast", fast)],
            "aliases": {"chat": {"target": "slow/gpt-4o", "fallbacks": ["fast/gpt-4o"],
                                 "hedge": {"after_ms": 200}}},
        }
        async with running_gateway(config) as gw:
            reply = await gw.stub.Chat(pb.ChatRequest(model="chat", messages=[USER]), timeout=20)
            assert reply.provider == "fast"
            await asyncio.wait_for(slow.disconnected.wait(), 5)
        assert len(slow.received) == 1 and len(fast.received) == 1


async def test_a_hedged_target_that_answers_in_time_is_the_only_one_asked() -> None:
    async with Upstream() as first, Upstream() as second:
        first.always("POST", "/chat/completions", ok())
        second.always("POST", "/chat/completions", ok())
        config = {
            "providers": [openai("first", first), openai("second", second)],
            "aliases": {"chat": {"target": "first/gpt-4o", "fallbacks": ["second/gpt-4o"],
                                 "hedge": {"after_ms": 5000}}},
        }
        async with running_gateway(config) as gw:
            reply = await gw.stub.Chat(pb.ChatRequest(model="chat", messages=[USER]))
        assert reply.provider == "first"
        assert not second.received


@pytest.mark.parametrize(("tree", "message"), [
    ({"providers": [fake("a")], "groups": {"g": {"deployments": ["nope/x"]}}},
     "groups.g.deployments[0]: 'nope' names no configured provider"),
    ({"providers": [fake("a")], "aliases": {"x": {"target": "a/fake-chat", "fallbacks": ["ghost"]}}},
     "aliases.x.fallbacks[0]: 'ghost' names no group, alias or configured provider"),
    ({"providers": [fake("a")], "groups": {"x": {"deployments": ["a"]}}, "aliases": {"x": "a/fake-chat"}},
     "aliases.x: the name is a model group too"),
    ({"providers": [fake("a")], "groups": {"g": {"deployments": ["a/fake-chat"], "fallbacks": ["a/gpt-9"]}}},
     "groups.g.fallbacks[0]: provider 'a' does not serve model 'gpt-9'"),
    ({"providers": [fake("a")], "groups": {"g": {"deployments": ["a/other"]}}},
     "groups.g: provider 'a' does not serve model 'other'"),
])
async def test_routing_configuration_mistakes_are_named(tree: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        async with running_gateway(tree):
            pass


def test_api_keys_expand_into_one_provider_per_key_from_the_environment() -> None:
    config = parse_config({"providers": [{"name": "o", "kind": "openai", "api_keys": ["${KEY_A}", "${KEY_B}"]}]},
                          environ={"KEY_A": "sk-env-a-0001", "KEY_B": "sk-env-b-0002"})
    instances = expand_api_keys(config.providers[0])
    assert [p.name for p in instances] == ["o#1", "o#2"]
    assert [p.api_key.get_secret_value() for p in instances if p.api_key] == ["sk-env-a-0001", "sk-env-b-0002"]
    assert "sk-env" not in repr(config)


def test_api_keys_are_checked_without_showing_them() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({"providers": [{"name": "o", "kind": "openai", "api_keys": ["sk-good-one", "sk-bad-two\n"]}]})
    assert "key 2" in str(info.value) and "sk-bad-two" not in str(info.value)
    with pytest.raises(ConfigError, match="api_key or api_keys"):
        parse_config({"providers": [{"name": "o", "kind": "openai", "api_key": "sk-a", "api_keys": ["sk-b"]}]})
    with pytest.raises(ConfigError, match="exactly one of after_ms and after"):
        parse_config({"providers": [fake("a")],
                      "aliases": {"x": {"target": "a/fake-chat", "hedge": {"after_ms": 1, "after": "p95"}}}})


async def test_a_target_whose_breaker_is_open_moves_to_the_back() -> None:
    down = {"error": {"reason": "UPSTREAM_UNAVAILABLE", "message": "down"}}
    config = {
        "providers": [{**fake("a", replies=[down]), "retry": {"enabled": False}, "breaker": {"failures": 1}},
                      fake("b")],
        "groups": {"chat": {"deployments": ["a/fake-chat", "b/fake-chat"]}},
    }
    async with running_gateway(config) as gw:
        with pytest.raises(grpc.aio.AioRpcError):  # one failure opens a's breaker
            await gw.stub.Chat(pb.ChatRequest(provider="a", messages=[USER]))
        replies = [await gw.stub.Chat(pb.ChatRequest(model="chat", messages=[USER])) for _ in range(20)]
    assert {reply.provider for reply in replies} == {"b"}


async def test_streams_and_other_calls_reach_a_groups_first_target() -> None:
    config = {
        "providers": [fake("a"), {**fake("b"), "models": ["fake-chat", "fake-chat-latest"]}],
        "groups": {"chat": {"deployments": ["a/fake-chat"], "fallbacks": ["b"]}},
        "aliases": {"fake-chat-latest": "b"},
    }
    async with running_gateway(config) as gw:
        chunks = [chunk async for chunk in gw.stub.StreamChat(pb.ChatRequest(model="chat", messages=[USER]))]
        caps = await gw.stub.GetCapabilities(pb.GetCapabilitiesRequest(model="chat"))
        aliased = await gw.stub.Chat(pb.ChatRequest(model="fake-chat-latest", messages=[USER]))
    assert chunks[0].provider == "a" and "".join(c.content for c in chunks) == "hi"
    assert caps.capabilities.provider == "a"
    # An alias naming only a provider sends its own name as the model.
    assert (aliased.provider, aliased.model) == ("b", "fake-chat-latest")

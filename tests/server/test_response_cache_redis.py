"""The response cache in a real redis-server: shared by two gateway processes, kept for
its TTL by Redis itself, and never in the way when Redis is gone."""

from __future__ import annotations

import json
from pathlib import Path

import grpc
from faults import CHAT_PATH, completion, stream_reply
from harness import eventually, running_gateway, spawned_gateway
from portico.v1 import llm_service_pb2 as pb
from portico.v1 import llm_service_pb2_grpc
from portico.v1 import types_pb2 as t
from redis_server import RedisServer
from upstream import Upstream

USE = (("x-portico-cache", "use"),)


def ask(text: str = "What is the capital of France?") -> pb.ChatRequest:
    return pb.ChatRequest(provider="up", model="gpt-4o", temperature=0,
                          messages=[t.Message(role=t.ROLE_USER, content=text)])


def config_text(up: Upstream, redis: RedisServer, ttl: float = 300) -> str:
    return json.dumps({
        "providers": [{"name": "up", "kind": "openai", "api_key": "sk-test-up-0123456789",
                       "base_url": f"{up.url}/v1", "models": ["gpt-4o"]}],
        "redis": {"url": redis.url},
        "response_cache": {"ttl": ttl},
    })


def chats(up: Upstream) -> int:
    return sum(1 for r in up.received if r.path == CHAT_PATH)


async def test_two_gateway_processes_share_one_cache(redis_server: RedisServer, tmp_path: Path) -> None:
    async with Upstream() as up:
        up.always("POST", CHAT_PATH, completion("Paris."))
        up.add("POST", CHAT_PATH, stream_reply(["Par", "is", "."]))
        text = config_text(up, redis_server)
        with (spawned_gateway(text, tmp_path, "--workers", "1") as (_, first),
              spawned_gateway(text, tmp_path, "--workers", "1") as (_, second)):
            async with grpc.aio.insecure_channel(first) as a, grpc.aio.insecure_channel(second) as b:
                stub_a, stub_b = llm_service_pb2_grpc.LLMServiceStub(a), llm_service_pb2_grpc.LLMServiceStub(b)
                original = [c async for c in stub_a.StreamChat(ask(), metadata=USE)]
                replay = stub_b.StreamChat(ask(), metadata=USE)
                replayed = [c async for c in replay]
                assert replayed == original and chats(up) == 1
                assert dict(await replay.trailing_metadata())["portico-cache"] == "hit"

                answer = await stub_b.Chat(ask("and of Spain?"), metadata=USE)
                hit = stub_a.Chat(ask("and of Spain?"), metadata=USE)
                assert await hit == answer and chats(up) == 2
                assert dict(await hit.trailing_metadata())["portico-cache"] == "hit"


async def test_redis_keeps_an_answer_for_its_ttl(redis_server: RedisServer) -> None:
    async with Upstream() as up:
        up.always("POST", CHAT_PATH, completion("Paris."))
        config = {"providers": [{"name": "up", "kind": "openai", "api_key": "sk-test-up-0123456789",
                                 "base_url": f"{up.url}/v1", "models": ["gpt-4o"]}],
                  "redis": {"url": redis_server.url},
                  "response_cache": {"ttl": 120, "models": {"up/gpt-4o": {"ttl": 30}}}}
        async with running_gateway(config) as gw:
            await gw.stub.Chat(ask())
            keys = redis_server.command("KEYS", "portico:cache:*").decode().split("\r\n")
            stored = [k for k in keys if k.startswith("portico:cache:")]
            assert len(stored) == 1
            ttl_ms = int(redis_server.command("PTTL", stored[0]).decode().strip(":\r\n"))
            assert 0 < ttl_ms <= 30_000  # the route's TTL, not the cache-wide one

            # Once Redis expires it, the next call goes upstream again.
            redis_server.command("PEXPIRE", stored[0], "1")
            await eventually(lambda: redis_server.command("EXISTS", stored[0]) == b":0\r\n", "the entry expired")
            call = gw.stub.Chat(ask())
            await call
            assert chats(up) == 2
            assert dict(await call.trailing_metadata())["portico-cache"] == "miss"


async def test_calls_flow_while_redis_is_down(redis_server: RedisServer) -> None:
    async with Upstream() as up:
        up.always("POST", CHAT_PATH, completion("Paris."))
        config = {"providers": [{"name": "up", "kind": "openai", "api_key": "sk-test-up-0123456789",
                                 "base_url": f"{up.url}/v1", "models": ["gpt-4o"]}],
                  "redis": {"url": redis_server.url}, "response_cache": {}}
        async with running_gateway(config) as gw:
            redis_server.stop()
            for _ in range(3):
                call = gw.stub.Chat(ask(), metadata=USE)
                assert (await call).content == "Paris."
                assert dict(await call.trailing_metadata())["portico-cache"] == "miss"
            assert chats(up) == 3

"""The semantic cache: a close enough last user message is answered from the cache, within
one route and conversation; embeddings go through the gateway's own Embed path to a
loopback upstream whose vectors the test chooses."""

from __future__ import annotations

import json
from typing import Any

from faults import CHAT_PATH, JSON, completion, openai_provider
from harness import running_gateway
from portico.v1 import llm_service_pb2 as pb
from portico.v1 import types_pb2 as t
from upstream import Received, Reply, Upstream

EMBED_PATH = "/v1/embeddings"
USE = (("x-portico-cache", "use"),)
#: The question's vector by its text: two phrasings of one question point the same way.
VECTORS = {
    "What is the capital of France?": [1.0, 0.0, 0.0],
    "what's France's capital city": [0.98, 0.2, 0.0],
    "How tall is Mont Blanc?": [0.0, 0.0, 1.0],
}


async def embeddings(received: Received) -> Reply:
    texts = received.json()["input"]
    data = [{"object": "embedding", "index": i, "embedding": VECTORS[text]} for i, text in enumerate(texts)]
    body = {"object": "list", "data": data, "model": "embed-1", "usage": {"prompt_tokens": 3, "total_tokens": 3}}
    return Reply(200, JSON, json.dumps(body).encode())


def config(up: Upstream, **semantic: Any) -> dict[str, Any]:
    embedder = {**openai_provider("emb", up), "models": ["embed-1"], "embedding_model": "embed-1",
                "options": {"embedding_encoding": "float"}}
    return {"providers": [openai_provider("up", up), embedder],
            "response_cache": {"semantic": {"enabled": True, "embedding_provider": "emb", **semantic}}}


def ask(text: str, system: str = "") -> pb.ChatRequest:
    messages = [t.Message(role=t.ROLE_SYSTEM, content=system)] if system else []
    return pb.ChatRequest(provider="up", model="gpt-4o", temperature=0,
                          messages=[*messages, t.Message(role=t.ROLE_USER, content=text)])


def chats(up: Upstream) -> int:
    return sum(1 for r in up.received if r.path == CHAT_PATH)


async def test_a_similar_question_is_answered_from_the_cache() -> None:
    async with Upstream() as up:
        up.always("POST", CHAT_PATH, completion("Paris."))
        up.respond("POST", EMBED_PATH, embeddings)
        async with running_gateway(config(up, threshold=0.95)) as gw:
            await gw.stub.Chat(ask("What is the capital of France?"), metadata=USE)
            similar = gw.stub.Chat(ask("what's France's capital city"), metadata=USE)
            answer = await similar
            assert chats(up) == 1 and answer.content == "Paris."
            assert dict(await similar.trailing_metadata())["portico-cache"] == "semantic-hit"

            # Far from it: the upstream answers.
            await gw.stub.Chat(ask("How tall is Mont Blanc?"), metadata=USE)
            assert chats(up) == 2
            # The same question after another system prompt is another conversation.
            await gw.stub.Chat(ask("what's France's capital city", system="Answer in French."), metadata=USE)
            assert chats(up) == 3


async def test_below_the_threshold_is_a_miss() -> None:
    async with Upstream() as up:
        up.always("POST", CHAT_PATH, completion("Paris."))
        up.respond("POST", EMBED_PATH, embeddings)
        async with running_gateway(config(up, threshold=0.99)) as gw:
            await gw.stub.Chat(ask("What is the capital of France?"), metadata=USE)
            miss = gw.stub.Chat(ask("what's France's capital city"), metadata=USE)
            await miss
            assert chats(up) == 2
            assert dict(await miss.trailing_metadata())["portico-cache"] == "miss"


async def test_without_the_semantic_cache_no_embedding_is_asked_for() -> None:
    async with Upstream() as up:
        up.always("POST", CHAT_PATH, completion("Paris."))
        up.respond("POST", EMBED_PATH, embeddings)
        async with running_gateway({"providers": [openai_provider("up", up)]}) as gw:
            await gw.stub.Chat(ask("What is the capital of France?"), metadata=USE)
            await gw.stub.Chat(ask("what's France's capital city"), metadata=USE)
        assert chats(up) == 2
        assert not [r for r in up.received if r.path == EMBED_PATH]

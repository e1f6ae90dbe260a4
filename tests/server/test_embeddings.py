"""Embed on the fake provider: deterministic, unit length, in input order."""

from __future__ import annotations

import math

import grpc
import pytest
from harness import running_gateway, spawned_gateway
from portico.v1 import llm_service_pb2 as pb
from portico.v1 import llm_service_pb2_grpc
from portico_server.providers.fake import hash_embedding

CONFIG = {"providers": [{"name": "fake", "kind": "fake", "models": ["fake-chat"], "embedding_model": "fake-embed",
                         "options": {"embedding_dimensions": 48}}]}
CONFIG_YAML = """
providers:
  - name: fake
    kind: fake
    models: [fake-chat]
    embedding_model: fake-embed
    options: {embedding_dimensions: 48}
"""
TEXTS = ["the cat sat on the mat", "", "naïve café ☕", "the cat sat on the mat"]


def norm(values) -> float:
    return math.sqrt(sum(v * v for v in values))


async def test_vectors_are_unit_length_in_input_order_and_deterministic():
    async with running_gateway(CONFIG) as gw:
        reply = await gw.stub.Embed(pb.EmbedRequest(model="fake-embed", inputs=TEXTS))
        assert [e.index for e in reply.embeddings] == [0, 1, 2, 3]
        assert all(len(e.values) == 48 for e in reply.embeddings)
        assert all(abs(norm(e.values) - 1.0) < 1e-5 for e in reply.embeddings)
        assert list(reply.embeddings[0].values) == list(reply.embeddings[3].values)
        assert list(reply.embeddings[0].values) != list(reply.embeddings[2].values)
        assert reply.provider == "fake" and reply.model == "fake-embed"
        assert reply.usage.prompt_token_count > 0
        shorter = await gw.stub.Embed(pb.EmbedRequest(provider="fake", inputs=["x"], dimensions=8))
        assert len(shorter.embeddings[0].values) == 8  # the provider's embedding model is the default


def embed_in_process(address: str) -> list[list[float]]:
    with grpc.insecure_channel(address) as channel:
        reply = llm_service_pb2_grpc.LLMServiceStub(channel).Embed(
            pb.EmbedRequest(model="fake-embed", inputs=TEXTS), timeout=10
        )
    return [list(e.values) for e in reply.embeddings]


def test_two_gateway_processes_give_identical_vectors(tmp_path):
    # Separate processes have different hash seeds; the vectors must not depend on them.
    with spawned_gateway(CONFIG_YAML, tmp_path) as (_, first), spawned_gateway(CONFIG_YAML, tmp_path) as (_, second):
        assert first != second
        assert embed_in_process(first) == embed_in_process(second)


async def test_many_inputs_keep_their_index_and_values():
    # Indices past 127 take two bytes on the wire; values are float32 as the provider made them.
    texts = [f"text number {i}" for i in range(300)]
    async with running_gateway(CONFIG) as gw:
        reply = await gw.stub.Embed(pb.EmbedRequest(model="fake-embed", inputs=texts, dimensions=1536))
    assert [e.index for e in reply.embeddings] == list(range(300))
    for text, embedding in zip(texts[::37], reply.embeddings[::37], strict=True):
        assert list(embedding.values) == pytest.approx(hash_embedding(text, 1536), abs=1e-6)

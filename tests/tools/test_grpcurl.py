"""grpcurl against a real gateway: what a person debugging Portico from a shell types.

The pinned binary comes from scripts/install-go-tools.sh into tools/bin/. It runs as a
subprocess while the gateway serves in this test's event loop, so every call to it is
awaited, never run blocking.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import pytest
from harness import running_gateway

REPO = Path(__file__).resolve().parents[2]
GRPCURL = REPO / "tools" / "bin" / "grpcurl"
SERVICE = "portico.v1.LLMService"

CONFIG = {
    "providers": [
        {
            "name": "fake",
            "kind": "fake",
            "models": ["fake-chat", "fake-embed"],
            "default_model": "fake-chat",
            "embedding_model": "fake-embed",
            "options": {"chunk_size": 4},
        }
    ],
}


def grpcurl_binary() -> str:
    if not os.access(GRPCURL, os.X_OK):
        pytest.fail(f"{GRPCURL.relative_to(REPO)} is missing: run scripts/install-go-tools.sh", pytrace=False)
    return str(GRPCURL)


async def grpcurl(*args: str, body: dict[str, Any] | None = None) -> tuple[int, str, str]:
    """Run grpcurl with `args` (and `-d BODY` when given); returns (exit code, stdout, stderr)."""
    command = [grpcurl_binary(), "-plaintext", "-max-time", "20"]
    if body is not None:
        command += ["-d", json.dumps(body)]
    proc = await asyncio.create_subprocess_exec(
        *command, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 30)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise AssertionError(f"grpcurl {' '.join(args)} did not finish in 30 s") from None
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def json_documents(text: str) -> list[dict[str, Any]]:
    """grpcurl prints one JSON document per response message, one after the other."""
    decoder = json.JSONDecoder()
    documents, position = [], 0
    while (position := _skip_space(text, position)) < len(text):
        document, position = decoder.raw_decode(text, position)
        documents.append(document)
    return documents


def _skip_space(text: str, position: int) -> int:
    while position < len(text) and text[position].isspace():
        position += 1
    return position


def chat_body(prompt: str, **fields: Any) -> dict[str, Any]:
    return {"provider": "fake", "messages": [{"role": "ROLE_USER", "content": prompt}], **fields}


async def test_list_shows_the_services_through_reflection():
    async with running_gateway(CONFIG) as gw:
        code, out, err = await grpcurl(gw.address, "list")
    assert code == 0, err
    services = out.split()
    assert SERVICE in services
    assert "grpc.health.v1.Health" in services
    assert any(s.startswith("grpc.reflection.") and s.endswith(".ServerReflection") for s in services)


async def test_describe_shows_every_rpc_of_the_service():
    async with running_gateway(CONFIG) as gw:
        code, out, err = await grpcurl(gw.address, "describe", SERVICE)
    assert code == 0, err
    assert f"{SERVICE} is a service:" in out
    expected = [
        "rpc Chat ( .portico.v1.ChatRequest ) returns ( .portico.v1.CompletionResponse );",
        "rpc StreamChat ( .portico.v1.ChatRequest ) returns ( stream .portico.v1.StreamChunk );",
        "rpc Embed ( .portico.v1.EmbedRequest ) returns ( .portico.v1.EmbedResponse );",
        "rpc CountTokens ( .portico.v1.CountTokensRequest ) returns ( .portico.v1.CountTokensResponse );",
        "rpc GetCapabilities ( .portico.v1.GetCapabilitiesRequest ) returns ( .portico.v1.GetCapabilitiesResponse );",
        "rpc ListProviders ( .portico.v1.ListProvidersRequest ) returns ( .portico.v1.ListProvidersResponse );",
    ]
    for rpc in expected:
        assert rpc in out


async def test_describe_a_request_message_shows_its_fields_and_their_behaviour():
    async with running_gateway(CONFIG) as gw:
        code, out, err = await grpcurl(gw.address, "describe", "portico.v1.ChatRequest")
    assert code == 0, err
    # The google.api.field_behavior annotations travel in the reflected descriptors.
    assert "repeated .portico.v1.Message messages = 3 [(.google.api.field_behavior) = REQUIRED];" in out
    assert "optional double temperature = 4 [(.google.api.field_behavior) = OPTIONAL];" in out


async def test_chat_with_a_json_body():
    async with running_gateway(CONFIG) as gw:
        code, out, err = await grpcurl(gw.address, f"{SERVICE}/Chat", body=chat_body("Hello from grpcurl"))
    assert code == 0, err
    [answer] = json_documents(out)
    assert answer["content"] == "Hello from grpcurl"
    assert answer["role"] == "ROLE_ASSISTANT"
    assert answer["stop_reason"] == "STOP_REASON_END_TURN"
    assert (answer["provider"], answer["model"]) == ("fake", "fake-chat")
    assert answer["usage"]["total_token_count"] > 0


async def test_stream_chat_prints_the_chunks_in_order_then_the_final_one():
    prompt = "Streaming through grpcurl"
    async with running_gateway(CONFIG) as gw:
        code, out, err = await grpcurl(gw.address, f"{SERVICE}/StreamChat", body=chat_body(prompt))
    assert code == 0, err
    chunks = json_documents(out)
    *pieces, final = chunks
    assert [c.get("content", "") for c in pieces] == [prompt[i : i + 4] for i in range(0, len(prompt), 4)]
    assert not any(c.get("final") for c in pieces)
    assert final["final"] is True
    assert final["stop_reason"] == "STOP_REASON_END_TURN"
    assert final["usage"]["completion_token_count"] > 0


async def test_an_invalid_request_shows_the_status_details():
    async with running_gateway(CONFIG) as gw:
        code, out, err = await grpcurl(
            "-format-error", gw.address, f"{SERVICE}/Chat", body=chat_body("hi", temperature=5)
        )
    # grpcurl exits with 64 + the status code (INVALID_ARGUMENT is 3) and, with
    # -format-error, prints the status and its details as JSON on stderr.
    assert code == 64 + 3, err
    assert out == ""
    [status] = json_documents(err)
    assert status["code"] == 3
    details = {d["@type"].rsplit("/", 1)[-1]: d for d in status["details"]}
    assert details["google.rpc.ErrorInfo"]["reason"] == "ERROR_REASON_INVALID_REQUEST"
    assert details["google.rpc.ErrorInfo"]["domain"] == "portico"
    fields = [v["field"] for v in details["google.rpc.BadRequest"]["field_violations"]]
    assert fields == ["temperature"]

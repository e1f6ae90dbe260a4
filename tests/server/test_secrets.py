"""Configured secrets — the API key, every header value, the token inside `Bearer <token>`
(the Azure Entra recipe) — never reach a caller, the CLI's output or the log, even when
the upstream echoes them back."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from dialects import BY_NAME, JSON, NDJSON, SSE
from harness import PORTICO_BIN, rpc_details, running_gateway, spawned_gateway
from portico.v1 import llm_service_pb2 as pb
from portico.v1 import llm_service_pb2_grpc
from portico.v1 import types_pb2 as t
from portico_server.redaction import REDACTED, install_log_redaction, register_secrets
from upstream import Reply, Upstream

KEY = "sk-live-APIKEY-0123456789abcdef"
TOKEN = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.entra-token-payload.signature"
TENANT = "tenant-secret-0987654321"
SECRETS = (KEY, TOKEN, TENANT)
ECHO = f"Bearer {TOKEN} is not valid here; api-key {KEY}; X-Tenant-Secret {TENANT}"

#: Dialects with their kind for this test: Azure is where the Entra recipe applies.
KINDS = {"azure": ("openai", "azure"), "anthropic": ("anthropic", "anthropic"),
         "gemini": ("gemini", "gemini"), "ollama": ("ollama", "ollama")}


def provider_config(name: str, up: Upstream) -> dict[str, Any]:
    dialect_name, kind = KINDS[name]
    config = BY_NAME[dialect_name].provider_config(up)
    config.update(kind=kind, api_key=KEY,
                  headers={"Authorization": f"Bearer {TOKEN}", "X-Tenant-Secret": TENANT})
    if kind == "azure":
        config["options"] = {"api_version": "v1"}
    return config


def path(name: str, stream: bool) -> str:
    if name == "azure":
        return "/openai/v1/chat/completions"
    return BY_NAME[KINDS[name][0]].path(stream)


def error_reply(name: str) -> Reply:
    """A 401 whose body, error code and request-id header all echo the secrets."""
    headers = {**JSON, "x-request-id": TOKEN, "request-id": TOKEN}
    body: Any
    if name == "azure":
        body = {"error": {"message": ECHO, "type": "invalid_request_error", "code": f"bad_token_{TOKEN}"}}
    elif name == "anthropic":
        body = {"type": "error", "error": {"type": "authentication_error", "message": ECHO}, "request_id": KEY}
    elif name == "gemini":
        body = {"error": {"code": 401, "message": ECHO, "status": "UNAUTHENTICATED",
                          "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": TENANT}]}}
    else:
        body = {"error": ECHO}
    return Reply(401, headers, json.dumps(body).encode())


def midstream_error_reply(name: str) -> Reply:
    """A 200 stream whose first event is an error echoing the secrets."""
    if name == "azure":
        body = b"event: error\ndata: " + json.dumps({"error": {"message": ECHO, "code": TOKEN}}).encode() + b"\n\n"
        return Reply(200, SSE, body)
    if name == "anthropic":
        event = {"type": "error", "error": {"type": "api_error", "message": ECHO}, "request_id": TOKEN}
        return Reply(200, SSE, b"event: error\ndata: " + json.dumps(event).encode() + b"\n\n")
    if name == "gemini":
        event = {"error": {"code": 500, "message": ECHO, "status": TENANT}}
        return Reply(200, SSE, b"data: " + json.dumps(event).encode() + b"\n\n")
    return Reply(200, NDJSON, json.dumps({"error": ECHO}).encode() + b"\n")


def assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text
    assert "Bearer ey" not in text


async def failed_call(gw: Any, model: str, stream: bool) -> grpc.aio.AioRpcError:
    request = pb.ChatRequest(model=model, messages=[t.Message(role=t.ROLE_USER, content="hi")])
    with pytest.raises(grpc.aio.AioRpcError) as info:
        if stream:
            async for _ in gw.stub.StreamChat(request):
                pass
        else:
            await gw.stub.Chat(request)
    return info.value


def model_of(name: str) -> str:
    return BY_NAME[KINDS[name][0]].model


@pytest.mark.parametrize("name", list(KINDS))
@pytest.mark.parametrize("fault", ["error status, unary", "error status, stream", "error event, stream"])
async def test_echoed_secrets_never_reach_the_caller(name: str, fault: str) -> None:
    stream = fault.endswith("stream")
    async with Upstream() as up:
        reply = midstream_error_reply(name) if fault.startswith("error event") else error_reply(name)
        up.add("POST", path(name, stream), reply)
        async with running_gateway({"providers": [provider_config(name, up)]}) as gw:
            err = await failed_call(gw, model_of(name), stream)
        # The secrets did go out, in the headers the configuration asked for.
        assert up.last().headers.get("authorization") == f"Bearer {TOKEN}"
    assert err.code() not in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN)
    assert REDACTED in err.details()
    assert_no_secret(err.details())
    metadata = rpc_details(err)["metadata"]
    assert_no_secret(json.dumps(metadata))


async def test_the_cli_shows_the_error_without_the_secrets() -> None:
    async with Upstream() as up:
        up.add("POST", path("azure", True), error_reply("azure"))
        async with running_gateway({"providers": [provider_config("azure", up)]}) as gw:
            process = await asyncio.create_subprocess_exec(
                PORTICO_BIN, "chat", "hi", "--address", gw.address, "--provider", "p",
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            )
            out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 1
    text = (out + err).decode()
    assert REDACTED in text
    assert_no_secret(text)


async def test_the_gateway_log_never_carries_a_secret_even_at_debug(tmp_path: Path) -> None:
    async with Upstream() as up:
        up.always("POST", path("azure", False), error_reply("azure"))
        config = {"server": {"log_level": "DEBUG", "health_probe_interval": 0},
                  "providers": [provider_config("azure", up)]}
        with spawned_gateway(yaml.safe_dump(config), tmp_path) as (_, address):
            async with grpc.aio.insecure_channel(address) as channel:
                stub = llm_service_pb2_grpc.LLMServiceStub(channel)
                request = pb.ChatRequest(model=model_of("azure"), messages=[t.Message(role=t.ROLE_USER, content="x")])
                for _ in range(2):
                    with pytest.raises(grpc.aio.AioRpcError):
                        await stub.Chat(request)
        assert len(up.received) == 2
    logs = gateway_log(tmp_path)
    assert "DEBUG" in logs  # the level took effect
    assert_no_secret(logs)


def test_every_log_record_passes_the_redacting_filter() -> None:
    """What an HTTP library logs at DEBUG (raw headers, a traceback quoting a value)
    comes out of the handler with the configured secrets replaced."""
    register_secrets([f"Bearer {TOKEN}", KEY])
    root = logging.getLogger()
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    root.addHandler(handler)
    level = root.level
    root.setLevel(logging.DEBUG)
    try:
        install_log_redaction()
        library = logging.getLogger("aiohttp.client")
        library.debug("sending headers %s", {"Authorization": f"Bearer {TOKEN}", "api-key": KEY})
        try:
            raise ValueError(f"bad token {TOKEN}")
        except ValueError:
            library.exception("request failed for key %s", KEY)
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    handler.flush()
    text = buffer.getvalue()
    assert text.count(REDACTED) >= 4
    assert_no_secret(text)
    assert "ValueError" in text  # the traceback is kept, only the secret is gone


def gateway_log(tmp_path: Path) -> str:
    """What the spawned gateways of a test wrote to their log files."""
    return "".join(p.read_text() for p in tmp_path.glob("gateway-*/serve.log"))

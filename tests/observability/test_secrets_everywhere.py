"""A faulty run, end to end: wrong and missing caller keys, upstreams that answer 401 and
500 with every header they received echoed back, invalid requests. Then everything the
run produced — the gateway's log at debug level, every status message, every trailer
and response, the metrics page — is searched for the provider keys, the header token and
the caller keys. None may appear."""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import json
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from dialects import BY_NAME, JSON
from harness import spawned_gateway
from metrics_page import scrape
from portico.v1 import llm_service_pb2 as pb
from portico.v1 import llm_service_pb2_grpc
from portico.v1 import types_pb2 as t
from portico_server.redaction import REDACTED
from upstream import Received, Reply, Upstream

PROVIDER_KEY = "sk-prov-SECRET-5d1f0c9a7b3e4a2c"
ENV_KEY = "sk-env-SECRET-9a8b7c6d5e4f3a2b"  # reaches the configuration through ${...}
OK_KEY = "sk-ok-SECRET-0a1b2c3d4e5f6a7b"
HEADER_TOKEN = "hdr-token-SECRET-1234567890abcdef"
CALLER_KEY = "pk-caller-SECRET-0f1e2d3c4b5a6978"
OTHER_CALLER_KEY = "pk-caller2-SECRET-8796a5b4c3d2e1f0"
WRONG_CALLER_KEY = "pk-wrong-SECRET-aaaabbbbccccdddd"
SECRETS = (PROVIDER_KEY, ENV_KEY, OK_KEY, HEADER_TOKEN, CALLER_KEY, OTHER_CALLER_KEY, WRONG_CALLER_KEY)
OPENAI = BY_NAME["openai"]
USER = [t.Message(role=t.ROLE_USER, content="hello")]
#: The caller credentials each call presents, in turn: right, another form, wrong, none.
CREDENTIALS: list[tuple[tuple[str, str], ...]] = [
    (("authorization", f"Bearer {CALLER_KEY}"),),
    (("x-api-key", OTHER_CALLER_KEY),),
    (("authorization", f"Bearer {WRONG_CALLER_KEY}"),),
    (),
]


async def echo_everything(received: Received) -> Reply:
    """The upstream: the key decides the answer, and an error quotes every header."""
    key = received.headers.get("authorization", "")
    echo = json.dumps({"error": {"message": f"rejected: {json.dumps(received.headers)}",
                                 "type": "invalid_request_error", "code": key}}).encode()
    if OK_KEY in key:
        return OPENAI.stream_reply() if received.json().get("stream") else OPENAI.chat_reply()
    if PROVIDER_KEY in key:
        return Reply(401, {**JSON, "x-request-id": key}, echo)
    return Reply(500, {**JSON, "x-echo": key}, echo)


def provider(name: str, up: Upstream, api_key: str) -> dict[str, Any]:
    return OPENAI.provider_config(up, name=name, api_key=api_key, headers={"X-Org-Token": HEADER_TOKEN},
                                  retry={"enabled": True, "unsafe": True, "attempts": 1, "backoff_initial": 0.01})


def requests() -> list[tuple[str, Any]]:
    model = OPENAI.model
    return [
        ("Chat", pb.ChatRequest(provider="rejected", model=model, messages=USER)),
        ("Chat", pb.ChatRequest(provider="broken", model=model, messages=USER)),
        ("StreamChat", pb.ChatRequest(provider="broken", model=model, messages=USER)),
        ("StreamChat", pb.ChatRequest(provider="rejected", model=model, messages=USER)),
        ("Chat", pb.ChatRequest(provider="fine", model=model, messages=USER)),
        ("StreamChat", pb.ChatRequest(provider="fine", model=model, messages=USER)),
        ("Chat", pb.ChatRequest(provider="fine", model=model, messages=USER, temperature=-3)),
        ("Chat", pb.ChatRequest(provider="nobody", model=model, messages=USER)),
        ("Chat", pb.ChatRequest(provider="fine", model=model)),
        ("Embed", pb.EmbedRequest(provider="fine", model=model)),
    ]


async def run_calls(address: str) -> tuple[list[str], list[grpc.StatusCode]]:
    """Every call of `requests()` with each caller credential; returns what the caller saw
    (statuses, messages, trailers, headers, responses) and the codes."""
    seen: list[str] = []
    codes: list[grpc.StatusCode] = []
    async with grpc.aio.insecure_channel(address) as channel:
        stub = llm_service_pb2_grpc.LLMServiceStub(channel)
        for metadata in CREDENTIALS:
            for method, request in requests():
                call = getattr(stub, method)(request, metadata=metadata)
                try:
                    if method == "StreamChat":
                        seen.extend(str(chunk) for chunk in [c async for c in call])
                    else:
                        seen.append(str(await call))
                    codes.append(grpc.StatusCode.OK)
                except grpc.aio.AioRpcError as err:
                    codes.append(err.code())
                    seen += [err.details() or "", err.debug_error_string() or "", str(err.trailing_metadata())]
                    continue
                seen += [str(await call.initial_metadata()), str(await call.trailing_metadata())]
    return seen, codes


def read_metrics_page(url: str) -> str:
    return scrape(url).text


async def test_no_secret_in_anything_a_faulty_run_produced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORTICO_SECRET_TEST_KEY", ENV_KEY)
    async with Upstream() as up:
        for path in (OPENAI.chat_path, OPENAI.stream_path):
            up.respond("POST", path, echo_everything)
        config = {
            "server": {"health_probe_interval": 0, "workers": 1},
            "logging": {"level": "debug", "format": "json"},
            "metrics": {"host": "127.0.0.1", "port": 0},
            # The right key and the other form are callers; the wrong key and none are refused.
            "auth": {"keys": [{"name": "svc-a", "sha256": hashlib.sha256(CALLER_KEY.encode()).hexdigest()},
                              {"name": "svc-b", "sha256": hashlib.sha256(OTHER_CALLER_KEY.encode()).hexdigest()}]},
            "providers": [provider("rejected", up, PROVIDER_KEY),
                          provider("broken", up, "${PORTICO_SECRET_TEST_KEY}"),
                          provider("fine", up, OK_KEY)],
        }
        with spawned_gateway(yaml.safe_dump(config), tmp_path) as (process, address):
            assert process.stdout is not None
            pool = concurrent.futures.ThreadPoolExecutor(1)
            try:
                line = await asyncio.wrap_future(pool.submit(process.stdout.readline))
            finally:
                pool.shutdown(wait=False)
            metrics_url = line.removeprefix("portico: metrics on ").strip()
            seen, codes = await run_calls(address)
            page = await asyncio.to_thread(read_metrics_page, metrics_url)
        log = await asyncio.to_thread(lambda: "".join(p.read_text() for p in tmp_path.glob("gateway-*/serve.log")))
        # The secrets were in play: the upstream got the keys and the header, and echoed them.
        sent = {json.dumps(r.headers) for r in up.received}
        assert any(f"Bearer {PROVIDER_KEY}" in h for h in sent) and any(f"Bearer {ENV_KEY}" in h for h in sent)
        assert any(HEADER_TOKEN in h for h in sent)
    # Every kind of outcome happened, and each was reported without a secret.
    assert {grpc.StatusCode.OK, grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.UNAVAILABLE,
            grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND, grpc.StatusCode.UNAUTHENTICATED} <= set(codes)
    assert grpc.StatusCode.INTERNAL not in codes
    assert any(REDACTED in text for text in seen)  # the echoed keys were replaced, not dropped
    assert '"level":"DEBUG"' in log and '"logger":"portico.call"' in log
    assert "portico_calls_total" in page
    # Calls refused before their request was read are still counted and logged, by method.
    refused = [line for line in page.splitlines()
               if line.startswith("portico_calls_total") and 'code="UNAUTHENTICATED"' in line]
    assert any('method="Chat"' in line for line in refused) and any('method="StreamChat"' in line for line in refused)
    assert '"caller":"svc-a"' in log and '"caller":"svc-b"' in log
    everything = {"what the caller saw": "\n".join(seen), "the gateway log": log, "the metrics page": page}
    for where, text in everything.items():
        for secret in SECRETS:
            assert secret not in text, f"{secret} appears in {where}"

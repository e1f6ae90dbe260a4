"""Vertex AI access tokens: a throwaway service-account key signs the assertion a loopback
token endpoint checks; tokens are reused, fetched again before they expire, fetched once
for many concurrent calls, and never shown. Workload identity (an external-account file
exchanging a subject token at a loopback STS) and the metadata server are covered too.

The token endpoint is served by the test's own event loop, so every test here would hang
if a token fetch blocked the loop: google-auth runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import textwrap
from typing import Any
from urllib.parse import parse_qsl

import grpc
import pytest
from harness import eventually, rpc_details, running_gateway
from portico.v1 import llm_service_pb2 as pb
from portico.v1 import types_pb2 as t
from portico_server.config import ConfigError, ProviderSettings
from portico_server.domain import ChatRequest, Message, Role
from portico_server.errors import UpstreamAuth
from portico_server.providers.vertex import VertexProvider
from upstream import Reply, Upstream, fixture

from providers.vertex_support import (
    JSON,
    LOCATION,
    PROJECT,
    TOKEN_PATH,
    Clock,
    ServiceAccount,
    TokenEndpoint,
    model_path,
    vertex_settings,
)

MODEL = "gemini-2.5-flash"
GENERATE = model_path("google", MODEL, "generateContent")
HELLO = ChatRequest(model=MODEL, messages=[Message(Role.USER, "What is the capital of France?")])
SCOPE = "https://www.googleapis.com/auth/cloud-platform"


@pytest.fixture
async def up():
    async with Upstream() as server:
        server.always("POST", GENERATE, Reply(200, JSON, fixture("vertex/gemini_generate_content_text.json")))
        yield server


@pytest.fixture
def account(up, tmp_path) -> ServiceAccount:
    return ServiceAccount.create(tmp_path, up.url + TOKEN_PATH)


@pytest.fixture
def tokens(up, account) -> TokenEndpoint:
    endpoint = TokenEndpoint(account)
    up.respond("POST", TOKEN_PATH, endpoint)
    return endpoint


def bearer(up: Upstream) -> list[str]:
    return [r.headers["authorization"] for r in up.received if r.path == GENERATE]


async def test_the_key_signs_the_assertion_and_one_token_serves_many_calls(up, account, tokens, caplog):
    caplog.set_level(logging.DEBUG)
    provider = VertexProvider(vertex_settings(up, account))
    try:
        for _ in range(3):
            answer = await provider.chat(HELLO)
            assert answer.content == "The capital of France is Paris.\n"
    finally:
        await provider.close()

    assert len(tokens.requests) == 1
    claims = tokens.claims[0]
    assert claims["iss"] == account.email
    assert claims["aud"] == "https://oauth2.googleapis.com/token"  # google-auth's audience, whatever the URI
    assert SCOPE in claims["scope"].split()
    assert claims["exp"] - claims["iat"] == 3600
    assert bearer(up) == ["Bearer ya29.test-1"] * 3
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "ya29.test-1" not in logged
    assert "PRIVATE KEY" not in logged


async def test_a_token_is_fetched_again_before_it_expires(up, account, tokens):
    clock = Clock()
    provider = VertexProvider(vertex_settings(up, account, token_refresh_margin=300), clock=clock)
    try:
        await provider.chat(HELLO)
        clock.now += 3299  # 301 s before the token's expiry: still fresh enough
        await provider.chat(HELLO)
        assert len(tokens.requests) == 1
        clock.now += 1  # 300 s before expiry: a new token is fetched while the old one serves
        await provider.chat(HELLO)
        await eventually(lambda: provider.tokens.refreshes == 2, "the second token arrived")
        await provider.chat(HELLO)
        clock.now += 3299
        await provider.chat(HELLO)
    finally:
        await provider.close()
    assert len(tokens.requests) == 2
    assert bearer(up) == ["Bearer ya29.test-1"] * 3 + ["Bearer ya29.test-2"] * 2


async def test_a_call_waits_rather_than_use_a_token_about_to_expire(up, account, tokens):
    clock = Clock()
    provider = VertexProvider(vertex_settings(up, account, token_refresh_margin=300), clock=clock)
    try:
        await provider.chat(HELLO)
        clock.now += 3595  # 5 s left: too close to hand out
        await provider.chat(HELLO)
    finally:
        await provider.close()
    assert bearer(up) == ["Bearer ya29.test-1", "Bearer ya29.test-2"]


async def test_a_short_lived_token_is_not_fetched_on_every_call(up, account, tokens):
    # A token living less than the margin is kept for half its life, not refetched at once.
    tokens.expires_in = 120
    clock = Clock()
    provider = VertexProvider(vertex_settings(up, account, token_refresh_margin=300), clock=clock)
    try:
        await provider.chat(HELLO)
        clock.now += 55
        await provider.chat(HELLO)
        assert len(tokens.requests) == 1
        clock.now += 6
        await provider.chat(HELLO)
        await eventually(lambda: provider.tokens.refreshes == 2, "the second token arrived")
    finally:
        await provider.close()
    assert len(tokens.requests) == 2


async def test_twenty_concurrent_calls_share_one_refresh(up, account, tokens):
    tokens.hold = True
    provider = VertexProvider(vertex_settings(up, account))
    try:
        calls = [asyncio.create_task(provider.chat(HELLO)) for _ in range(20)]
        await eventually(lambda: bool(tokens.requests), "the fetch reached the token endpoint")
        assert not any(call.done() for call in calls)
        tokens.release.set()
        answers = await asyncio.wait_for(asyncio.gather(*calls), 30)
    finally:
        await provider.close()
    assert [a.content for a in answers] == ["The capital of France is Paris.\n"] * 20
    assert len(tokens.requests) == 1
    assert bearer(up) == ["Bearer ya29.test-1"] * 20


async def test_a_caller_giving_up_does_not_cancel_the_shared_fetch(up, account, tokens):
    tokens.hold = True
    provider = VertexProvider(vertex_settings(up, account))
    try:
        impatient = asyncio.create_task(provider.chat(HELLO))
        patient = asyncio.create_task(provider.chat(HELLO))
        await eventually(lambda: bool(tokens.requests), "the fetch reached the token endpoint")
        impatient.cancel()
        tokens.release.set()
        answer = await asyncio.wait_for(patient, 30)
    finally:
        await provider.close()
    assert answer.content and len(tokens.requests) == 1


async def test_a_401_from_vertex_makes_the_next_call_fetch_a_new_token(up, account, tokens):
    refused = {"error": {"code": 401, "message": "Request had invalid authentication credentials.",
                         "status": "UNAUTHENTICATED"}}
    up.add("POST", GENERATE, Reply(401, JSON, json.dumps(refused).encode()))
    provider = VertexProvider(vertex_settings(up, account))
    try:
        with pytest.raises(UpstreamAuth):
            await provider.chat(HELLO)
        await provider.chat(HELLO)
    finally:
        await provider.close()
    assert bearer(up) == ["Bearer ya29.test-1", "Bearer ya29.test-2"]


async def test_a_refused_key_is_failed_precondition_without_secrets(up, account, tokens):
    tokens.refuse = True
    config = {"providers": [{"name": "vertex", "kind": "vertex", "base_url": up.url, "models": [MODEL],
                             "retry": {"enabled": False},
                             "options": {"project": PROJECT, "location": LOCATION,
                                         "credentials_file": str(account.path)}}]}
    async with running_gateway(config) as gw:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await gw.stub.Chat(pb.ChatRequest(provider="vertex", model=MODEL,
                                              messages=[t.Message(role=t.ROLE_USER, content="Hi")]))
    err = caught.value
    assert err.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert rpc_details(err)["reason"] == "ERROR_REASON_UPSTREAM_AUTH"
    assert "invalid_grant" in (err.details() or "")
    assertion = dict(parse_qsl(tokens.requests[0].body.decode()))["assertion"]
    for secret in (assertion, account.private_key_pem.splitlines()[1]):
        assert secret not in (err.details() or "")
        assert secret not in str(rpc_details(err)["metadata"])
    assert not [r for r in up.received if r.path == GENERATE]


def test_a_missing_key_file_fails_the_configuration(tmp_path):
    settings = ProviderSettings(name="vertex", kind="vertex",
                                options={"project": PROJECT, "credentials_file": str(tmp_path / "absent.json")})
    with pytest.raises(ConfigError, match="credentials_file: cannot read"):
        VertexProvider(settings)


def test_an_api_key_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="not api_key"):
        VertexProvider(ProviderSettings(name="vertex", kind="vertex", api_key="AIza-not-used",
                                        options={"project": PROJECT}))


async def test_workload_identity_exchanges_the_subject_token_at_sts(up, tmp_path):
    subject = tmp_path / "subject-token.jwt"
    subject.write_text("eyJhbGciOiJSUzI1NiJ9.subject.signature")
    exchanges: list[dict[str, str]] = []

    async def sts(received: Any) -> Reply:
        exchanges.append(dict(parse_qsl(received.body.decode())))
        body = {"access_token": "ya29.federated-1", "issued_token_type":
                "urn:ietf:params:oauth:token-type:access_token", "token_type": "Bearer", "expires_in": 3600}
        return Reply(200, JSON, json.dumps(body).encode())

    up.respond("POST", "/v1/token", sts)
    audience = ("//iam.googleapis.com/projects/123/locations/global/workloadIdentityPools/pool/"
                "providers/provider")
    config = tmp_path / "external-account.json"
    config.write_text(json.dumps({
        "type": "external_account",
        "audience": audience,
        "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
        "token_url": up.url + "/v1/token",
        "credential_source": {"file": str(subject)},
    }))
    settings = ProviderSettings(name="vertex", kind="vertex", base_url=up.url, options={
        "project": PROJECT, "location": LOCATION, "credentials_file": str(config)})
    provider = VertexProvider(settings)
    try:
        await provider.chat(HELLO)
        await provider.chat(HELLO)
    finally:
        await provider.close()
    assert len(exchanges) == 1
    assert exchanges[0]["grant_type"] == "urn:ietf:params:oauth:grant-type:token-exchange"
    assert exchanges[0]["subject_token"] == subject.read_text()
    assert exchanges[0]["audience"] == audience
    assert bearer(up) == ["Bearer ya29.federated-1"] * 2


METADATA_CHILD = textwrap.dedent("""
    import asyncio, sys
    from portico_server.config import ProviderSettings
    from portico_server.domain import ChatRequest, Message, Role
    from portico_server.providers.vertex import VertexProvider

    async def main():
        provider = VertexProvider(ProviderSettings(
            name="vertex", kind="vertex", base_url=sys.argv[1], options={"location": "us-east5"}))
        try:
            answer = await provider.chat(ChatRequest(model="gemini-2.5-flash", messages=[Message(Role.USER, "Hi")]))
            print(answer.content.strip())
        finally:
            await provider.close()

    asyncio.run(main())
""")


async def test_on_google_cloud_the_metadata_server_gives_the_token_and_the_project(up, tmp_path):
    # google-auth reads the metadata server's address from the environment when it is
    # imported, so the gateway side runs in a process of its own.
    async with Upstream() as metadata:
        flavor = {"metadata-flavor": "Google"}
        root = "/computeMetadata/v1"
        metadata.always("GET", "/", Reply(200, flavor, b""))
        metadata.always("GET", f"{root}/project/project-id", Reply(200, {**flavor, "content-type": "text/plain"},
                                                                    PROJECT.encode()))
        account_info = {"email": "default@portico-test.iam.gserviceaccount.com", "scopes": [SCOPE],
                        "aliases": ["default"]}
        metadata.always("GET", f"{root}/instance/service-accounts/default/",
                        Reply(200, {**flavor, **JSON}, json.dumps(account_info).encode()))
        token = {"access_token": "ya29.metadata-1", "expires_in": 3599, "token_type": "Bearer"}
        metadata.always("GET", f"{root}/instance/service-accounts/default/token",
                        Reply(200, {**flavor, **JSON}, json.dumps(token).encode()))
        metadata.always("GET", f"{root}/universe/universe-domain",
                        Reply(200, {**flavor, "content-type": "text/plain"}, b"googleapis.com"))
        host = f"127.0.0.1:{metadata.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("GOOGLE_", "GCE_", "CLOUDSDK_"))}
        env.update({"GCE_METADATA_HOST": host, "GCE_METADATA_IP": host, "CLOUDSDK_CONFIG": str(tmp_path),
                    "HOME": str(tmp_path)})
        child = await asyncio.create_subprocess_exec(
            sys.executable, "-c", METADATA_CHILD, up.url, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(child.communicate(), 60)
    assert child.returncode == 0, err.decode()
    assert out.decode().strip() == "The capital of France is Paris."
    assert bearer(up) == ["Bearer ya29.metadata-1"]
    token_requests = [r for r in metadata.received if r.path.endswith("/token")]
    assert len(token_requests) == 1 and token_requests[0].headers["metadata-flavor"] == "Google"


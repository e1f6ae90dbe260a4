"""Azure OpenAI: deployment URLs, `api-version`, the `api-key` header, Azure's stream and
error shapes, against a loopback server and through a real gateway.

Azure bodies here are assembled from the Azure OpenAI REST reference (content-filter
annotations, `{"error": {"code", "message"}}` errors); the chat and embeddings payloads
are OpenAI's recorded vectors, which Azure serves in the same shape.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from harness import collect, running_gateway
from portico.v1 import llm_service_pb2 as pb
from portico.v1 import types_pb2 as t
from portico_server import errors
from portico_server.config import ConfigError, ProviderSettings
from portico_server.domain import ChatRequest, EmbedRequest, Message, Role, StopReason
from portico_server.providers import registry
from portico_server.providers.azure import AzureOpenAIProvider
from portico_server.vectors import unpack
from upstream import Reply, Upstream, fixture

KEY = "0123456789abcdef0123456789abcdef"
DEPLOYMENT_PATH = "/openai/deployments/prod-4o/chat/completions"
JSON_CT = {"content-type": "application/json"}
SSE_CT = {"content-type": "text/event-stream"}

FILTER_OK = {
    "hate": {"filtered": False, "severity": "safe"},
    "self_harm": {"filtered": False, "severity": "safe"},
    "sexual": {"filtered": False, "severity": "safe"},
    "violence": {"filtered": False, "severity": "safe"},
}


def azure_stream(words: list[str], finish: str = "stop") -> bytes:
    """A stream as Azure sends it: a prompt-filter event with no choices and no model first,
    content-filter annotations on every choice, then finish, then usage, then [DONE]."""
    events: list[dict[str, Any]] = [
        {
            "choices": [],
            "created": 0,
            "id": "",
            "model": "",
            "object": "",
            "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": FILTER_OK}],
        }
    ]
    base = {
        "created": 1730000000,
        "id": "chatcmpl-AZ1",
        "model": "gpt-4o-2024-08-06",
        "object": "chat.completion.chunk",
        "system_fingerprint": "fp_az",
    }
    events.append(
        {
            **base,
            "choices": [
                {
                    "content_filter_results": {},
                    "delta": {"content": "", "role": "assistant"},
                    "finish_reason": None,
                    "index": 0,
                    "logprobs": None,
                }
            ],
        }
    )
    for word in words:
        events.append(
            {
                **base,
                "choices": [
                    {
                        "content_filter_results": FILTER_OK,
                        "delta": {"content": word},
                        "finish_reason": None,
                        "index": 0,
                        "logprobs": None,
                    }
                ],
            }
        )
    events.append(
        {
            **base,
            "choices": [
                {"content_filter_results": {}, "delta": {}, "finish_reason": finish, "index": 0, "logprobs": None}
            ],
        }
    )
    events.append(
        {
            **base,
            "choices": [],
            "usage": {"prompt_tokens": 9, "completion_tokens": len(words), "total_tokens": 9 + len(words)},
        }
    )
    return b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events) + b"data: [DONE]\n\n"


def settings(url: str, **options: Any) -> ProviderSettings:
    return ProviderSettings(
        name="azure",
        kind="azure",
        api_key=KEY,
        base_url=url,
        models=["gpt-4o"],
        options={"deployments": {"gpt-4o": "prod-4o", "embed": "emb-3"}, **options},
    )


@asynccontextmanager
async def provider(up: Upstream, **options: Any) -> AsyncIterator[AzureOpenAIProvider]:
    p = registry.create(settings(up.url, **options))
    assert isinstance(p, AzureOpenAIProvider)
    try:
        yield p
    finally:
        await p.close()


def user() -> Message:
    return Message(role=Role.USER, content="hi")



async def test_chat_goes_to_the_deployment_with_api_version_and_api_key() -> None:
    async with Upstream() as up, provider(up) as p:
        up.add("POST", DEPLOYMENT_PATH, Reply(200, JSON_CT, fixture("openai/chat_text.json")))
        result = await p.chat(ChatRequest(model="gpt-4o", messages=[user()], max_tokens=5))
        sent = up.last(DEPLOYMENT_PATH)
    assert sent.query == {"api-version": "2024-10-21"}
    assert sent.headers["api-key"] == KEY and "authorization" not in sent.headers
    assert sent.json()["max_tokens"] == 5
    assert result.content == "Oi!" and result.usage.total_tokens == 22


@pytest.mark.parametrize("cut", [None, 1, 7, 64])
async def test_stream_with_filter_annotations_is_reassembled(cut: int | None) -> None:
    async with Upstream() as up, provider(up) as p:
        up.add("POST", DEPLOYMENT_PATH, Reply(200, SSE_CT, azure_stream(["Hel", "lo ", "wörld"]), cut_every=cut))
        deltas, final = await collect(p.stream(ChatRequest(model="gpt-4o", messages=[user()])))
        body = up.last().json()
    assert body["stream_options"] == {"include_usage": True}
    assert "".join(c.content for c in deltas) == "Hello wörld"
    assert deltas[0].model == "gpt-4o-2024-08-06"  # not the empty model of the filter event
    assert final.stop_reason is StopReason.END_TURN
    assert final.usage is not None and final.usage.total_tokens == 12


async def test_content_filter_cut_is_a_content_filter_stop() -> None:
    async with Upstream() as up, provider(up) as p:
        up.add("POST", DEPLOYMENT_PATH, Reply(200, SSE_CT, azure_stream(["Once"], finish="content_filter")))
        _, final = await collect(p.stream(ChatRequest(model="gpt-4o", messages=[user()])))
    assert final.stop_reason is StopReason.CONTENT_FILTER and final.raw_stop_reason == "content_filter"


PROMPT_FILTERED = {
    "error": {
        "message": "The response was filtered due to the prompt triggering Azure OpenAI's content management policy. "
        "Please modify your prompt and retry.",
        "type": None,
        "param": "prompt",
        "code": "content_filter",
        "status": 400,
        "innererror": {
            "code": "ResponsibleAIPolicyViolation",
            "content_filter_result": {
                "hate": {"filtered": False, "severity": "safe"},
                "violence": {"filtered": True, "severity": "medium"},
            },
        },
    }
}
ACCESS_DENIED = {
    "error": {
        "code": "401",
        "message": "Access denied due to invalid subscription key or wrong API "
        "endpoint. Make sure to provide a valid key for an active subscription and use a correct "
        "regional API endpoint for your resource.",
    }
}
NO_DEPLOYMENT = {
    "error": {
        "code": "DeploymentNotFound",
        "message": "The API deployment for this resource does not "
        "exist. If you created the deployment within the last 5 minutes, please wait a moment "
        "and try again.",
    }
}
TOO_MANY = {
    "error": {
        "code": "429",
        "message": "Requests to the ChatCompletions_Create Operation under Azure OpenAI "
        "API version 2024-10-21 have exceeded token rate limit of your current OpenAI S0 pricing tier. "
        "Please retry after 6 seconds.",
    }
}


@pytest.mark.parametrize(
    ("status", "body", "headers", "cls", "code", "retry"),
    [
        (400, PROMPT_FILTERED, {}, errors.UpstreamBadRequest, "content_filter", None),
        (401, ACCESS_DENIED, {}, errors.UpstreamAuth, None, None),
        (404, NO_DEPLOYMENT, {}, errors.UpstreamModelNotFound, "DeploymentNotFound", None),
        (
            429,
            TOO_MANY,
            {"retry-after-ms": "5800", "retry-after": "6", "x-ratelimit-remaining-tokens": "0"},
            errors.UpstreamRateLimited,
            None,
            5.8,
        ),
    ],
    ids=["content-filter", "auth", "deployment", "rate-limit"],
)
async def test_azure_errors_map_to_the_error_table(
    status: int,
    body: dict[str, Any],
    headers: dict[str, str],
    cls: type[errors.UpstreamError],
    code: str | None,
    retry: float | None,
) -> None:
    async with Upstream() as up, provider(up) as p:
        up.add(
            "POST",
            DEPLOYMENT_PATH,
            Reply(status, {**JSON_CT, "apim-request-id": "req-1", **headers}, json.dumps(body).encode()),
        )
        with pytest.raises(errors.UpstreamError) as info:
            await collect(p.stream(ChatRequest(model="gpt-4o", messages=[user()])))
    err = info.value
    assert type(err) is cls
    assert err.metadata.get("upstream_code") == code
    assert err.retry_after == pytest.approx(retry) if retry else err.retry_after is None
    assert err.metadata["upstream_request_id"] == "req-1"
    assert body["error"]["message"][:40] in err.message  # Azure's message is kept
    assert KEY not in err.message


async def test_embeddings_go_to_the_embedding_deployment() -> None:
    async with Upstream() as up, provider(up) as p:
        path = "/openai/deployments/emb-3/embeddings"
        up.add("POST", path, Reply(200, JSON_CT, fixture("openai/embeddings_base64.json")))
        result = await p.embed(EmbedRequest(model="embed", inputs=["This is an embedding test."], dimensions=1536))
        sent = up.last(path)
    assert sent.query == {"api-version": "2024-10-21"}
    assert sent.json() == {
        "model": "embed",
        "input": ["This is an embedding test."],
        "dimensions": 1536,
        "encoding_format": "base64",
    }
    assert len(unpack(result.vectors[0])) == 1536


async def test_v1_routes_carry_the_deployment_as_model_and_no_version() -> None:
    async with Upstream() as up, provider(up, api_version="v1") as p:
        up.add("POST", "/openai/v1/chat/completions", Reply(200, JSON_CT, fixture("openai/chat_text.json")))
        await p.chat(ChatRequest(model="gpt-4o", messages=[user()]))
        sent = up.last("/openai/v1/chat/completions")
    assert sent.query == {} and sent.json()["model"] == "prod-4o"


async def test_reasoning_deployments_get_max_completion_tokens() -> None:
    async with Upstream() as up, provider(up) as p:
        up.add(
            "POST",
            "/openai/deployments/o4-mini/chat/completions",
            Reply(200, JSON_CT, fixture("openai/chat_text.json")),
        )
        await p.chat(ChatRequest(model="o4-mini", messages=[user()], max_tokens=50))
        assert up.last().json()["max_completion_tokens"] == 50


async def test_health_probe_lists_models_with_the_api_version() -> None:
    async with Upstream() as up, provider(up) as p:
        up.add("GET", "/openai/models", Reply(200, JSON_CT, b'{"data": []}'))
        up.add("GET", "/openai/models", Reply(401, JSON_CT, json.dumps(ACCESS_DENIED).encode()))
        assert await p.health_check() is True
        assert up.last().query == {"api-version": "2024-10-21"}
        assert await p.health_check() is False


async def test_known_models_come_from_the_table_without_discovery() -> None:
    async with Upstream() as up, provider(up) as p:
        assert await p.discover_capabilities("gpt-4o") is None
        caps = p.known_capabilities("gpt-4o")
        assert up.received == []
    assert caps is not None and caps.context_window == 128000


def test_azure_needs_its_endpoint() -> None:
    with pytest.raises(ConfigError, match="resource endpoint"):
        registry.create(ProviderSettings(name="azure", kind="azure", api_key=KEY))


def test_environment_adds_azure_only_with_key_and_endpoint() -> None:
    assert not [p for p in registry.default_providers({"AZURE_OPENAI_API_KEY": KEY}) if p.kind == "azure"]
    env = {
        "AZURE_OPENAI_API_KEY": KEY,
        "AZURE_OPENAI_ENDPOINT": "https://r.openai.azure.com",
        "AZURE_OPENAI_DEPLOYMENT": "chat-prod",
        "OPENAI_API_VERSION": "2025-01-01-preview",
    }
    [azure] = [p for p in registry.default_providers(env) if p.kind == "azure"]
    assert azure.base_url == "https://r.openai.azure.com" and azure.default_model == "chat-prod"
    assert azure.options == {"api_version": "2025-01-01-preview"}


async def test_through_the_gateway_stream_and_error_status() -> None:
    config = {
        "providers": [
            {
                "name": "azure",
                "kind": "azure",
                "api_key": KEY,
                "base_url": "",
                "models": ["gpt-4o"],
                "options": {"deployments": {"gpt-4o": "prod-4o"}},
            }
        ]
    }
    async with Upstream() as up:
        config["providers"][0]["base_url"] = up.url
        up.add("POST", DEPLOYMENT_PATH, Reply(200, SSE_CT, azure_stream(["Hi", "!"]), cut_every=7))
        up.always(
            "POST",
            "/openai/deployments/missing/chat/completions",
            Reply(404, JSON_CT, json.dumps(NO_DEPLOYMENT).encode()),
        )
        async with running_gateway(config) as gw:
            msg = t.Message(role=t.ROLE_USER, content="hi")
            chunks = [c async for c in gw.stub.StreamChat(pb.ChatRequest(provider="azure", messages=[msg]))]
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await gw.stub.Chat(pb.ChatRequest(provider="azure", model="missing", messages=[msg]))
    assert "".join(c.content for c in chunks) == "Hi!"
    assert chunks[-1].final and chunks[-1].usage.total_token_count == 11
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    status = rpc_status.from_call(info.value)  # type: ignore[arg-type]
    assert status is not None
    reasons = []
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            error_info = error_details_pb2.ErrorInfo()
            detail.Unpack(error_info)
            reasons.append(error_info.reason)
    assert reasons == ["ERROR_REASON_UPSTREAM_MODEL_NOT_FOUND"]

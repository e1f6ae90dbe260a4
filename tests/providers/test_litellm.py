"""The optional LiteLLM bridge.

LiteLLM is not installed in the test environment, so the "not installed" path is tested
for real: configuring the provider fails at start-up, naming the install command, both
in-process and through `portico serve`. The installed path is covered through the
bridge's pure conversion functions (request arguments, responses, stream chunks,
exceptions, model table), fed with data shaped as LiteLLM returns it.
"""

from __future__ import annotations

import asyncio
import importlib.util
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from portico_server import errors
from portico_server.app import Gateway
from portico_server.config import ConfigError, ProviderSettings, parse_config
from portico_server.domain import ChatRequest, Message, Role, Source, StopReason, ToolDefinition
from portico_server.providers import registry
from portico_server.providers.litellm_bridge import (
    INSTALL_HINT,
    LiteLLMOptions,
    capabilities_from_model_info,
    chunks_from_litellm,
    completion_from_litellm,
    completion_kwargs,
    embed_from_litellm,
    error_from_litellm,
)
from portico_server.providers.openai_compat import ChunkReader
from portico_server.vectors import unpack

KEY = "sk-ant-bridge-0123456789"
CONFIG = {"providers": [{"name": "bedrock", "kind": "litellm", "models": ["bedrock/anthropic.claude-3-haiku"]}]}


def test_litellm_is_really_absent_here() -> None:
    # The tests below exercise the missing-package path for real; they rely on this.
    assert importlib.util.find_spec("litellm") is None


def test_configuring_it_without_the_package_says_how_to_install() -> None:
    with pytest.raises(ConfigError) as info:
        registry.create(ProviderSettings(name="bedrock", kind="litellm"), "providers[0]")
    assert INSTALL_HINT in str(info.value) and "'bedrock'" in str(info.value)
    with pytest.raises(ConfigError, match=r"pip install 'portico\[litellm\]'"):
        Gateway(parse_config(CONFIG))


def test_portico_serve_refuses_to_start_and_names_the_install_command(tmp_path: Path) -> None:
    config = tmp_path / "portico.yaml"
    config.write_text("providers:\n  - name: bedrock\n    kind: litellm\n    models: [bedrock/x]\n")
    cli = Path(sys.executable).parent / "portico"
    done = subprocess.run(
        [str(cli), "serve", "--config", str(config), "--address", "127.0.0.1:0"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    assert "portico: listening" not in done.stdout
    assert INSTALL_HINT in done.stderr


# -- pure conversions -------------------------------------------------------------------------


def test_completion_kwargs_carry_the_openai_body_credentials_and_passthrough() -> None:
    settings = ProviderSettings(
        name="b", kind="litellm", api_key=KEY, base_url="http://proxy.local", headers={"x-team": "a"}
    )
    options = LiteLLMOptions(extra_kwargs={"aws_region_name": "eu-west-1"}, drop_params=True)
    request = ChatRequest(
        model="bedrock/anthropic.claude-3-haiku",
        messages=[Message(role=Role.USER, content="hi")],
        max_tokens=10,
        tools=[ToolDefinition(name="f", parameters={"type": "object"})],
        passthrough={"top_k": 5},
    )
    kwargs = completion_kwargs(request, settings, options, stream=True, timeout=12.5)
    assert kwargs["model"] == "bedrock/anthropic.claude-3-haiku"
    assert kwargs["messages"] == [{"role": "user", "content": "hi"}]
    assert kwargs["max_tokens"] == 10 and kwargs["top_k"] == 5
    assert kwargs["tools"] == [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    assert kwargs["stream"] is True and kwargs["stream_options"] == {"include_usage": True}
    assert kwargs["api_key"] == KEY and kwargs["api_base"] == "http://proxy.local"
    assert kwargs["extra_headers"] == {"x-team": "a"} and kwargs["aws_region_name"] == "eu-west-1"
    assert kwargs["timeout"] == 12.5 and kwargs["num_retries"] == 0 and kwargs["drop_params"] is True
    plain = completion_kwargs(
        request, ProviderSettings(name="b", kind="litellm", timeout=30), LiteLLMOptions(), stream=False
    )
    assert "api_key" not in plain and "stream_options" not in plain and plain["stream"] is False


class Dumpable:
    """Stands for LiteLLM's pydantic response objects: data behind `model_dump()`."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data

    def model_dump(self) -> dict[str, Any]:
        return self.data


def test_a_litellm_response_becomes_a_completion() -> None:
    response = Dumpable(
        {
            "id": "chatcmpl-1",
            "model": "claude-3-haiku",
            "object": "chat.completion",
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "tool_calls",
                    "message": {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [
                            {"id": "toolu_1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}
                        ],
                    },
                }
            ],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
        }
    )
    result = completion_from_litellm(response, provider="b", model="m", scrub=str)
    assert [(c.id, c.name, c.arguments) for c in result.tool_calls] == [("toolu_1", "f", '{"a": 1}')]
    assert result.stop_reason is StopReason.TOOL_CALLS and result.usage.total_tokens == 15


def stream_chunk(delta: dict[str, Any], finish: str | None = None, usage: dict[str, int] | None = None) -> Dumpable:
    data: dict[str, Any] = {
        "id": "c",
        "model": "claude-3-haiku",
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": {"content": None, "tool_calls": None, **delta}, "finish_reason": finish}],
    }
    if usage:
        data["usage"] = usage
    return Dumpable(data)


async def feed(items: list[Dumpable]) -> AsyncIterator[Dumpable]:
    for item in items:
        await asyncio.sleep(0)
        yield item


async def test_litellm_stream_chunks_become_domain_chunks() -> None:
    items = [
        stream_chunk({"role": "assistant", "reasoning_content": "hm"}),
        stream_chunk({"content": "Hel"}),
        stream_chunk({"content": "lo"}),
        stream_chunk({"tool_calls": [{"index": 0, "id": "t1", "function": {"name": "f", "arguments": '{"a"'}}]}),
        stream_chunk({"tool_calls": [{"index": 0, "function": {"arguments": ": 1}"}}]}),
        stream_chunk({}, "tool_calls"),
        stream_chunk({}, None, {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}),
    ]
    chunks = [c async for c in chunks_from_litellm(feed(items), ChunkReader("b", "m"))]
    final = chunks[-1]
    assert final.is_final and not any(c.is_final for c in chunks[:-1])
    assert "".join(c.content for c in chunks) == "Hello"
    assert "".join(c.reasoning_content for c in chunks) == "hm"
    assert [(c.id, c.name, c.arguments) for c in final.tool_calls] == [("t1", "f", '{"a": 1}')]
    assert final.usage is not None and final.usage.total_tokens == 7
    assert final.stop_reason is StopReason.TOOL_CALLS and final.provider == "b"


async def test_a_litellm_stream_without_a_finish_reason_is_cut_off() -> None:
    chunks = chunks_from_litellm(feed([stream_chunk({"content": "Hel"})]), ChunkReader("b", "m"))
    with pytest.raises(errors.UpstreamProtocol, match="without a finish reason"):
        _ = [c async for c in chunks]


def test_embeddings_come_back_in_input_order() -> None:
    response = Dumpable(
        {
            "model": "cohere/embed",
            "data": [
                {"object": "embedding", "index": 1, "embedding": [0.5, 0.5]},
                {"object": "embedding", "index": 0, "embedding": [1.0, 0.0]},
            ],
            "usage": {"prompt_tokens": 4, "total_tokens": 4},
        }
    )
    result = embed_from_litellm(response, 2, provider="b", model="m")
    assert [unpack(v) for v in result.vectors] == [[1.0, 0.0], [0.5, 0.5]] and result.usage.prompt_tokens == 4
    with pytest.raises(errors.UpstreamProtocol):
        embed_from_litellm(response, 3, provider="b", model="m")


class FakeResponse:
    def __init__(self, headers: dict[str, str]) -> None:
        self.headers = headers


def litellm_error(name: str, status: int | None, message: str, headers: dict[str, str] | None = None) -> Exception:
    """An exception shaped as LiteLLM raises them: its class name, `status_code`,
    `message`, and the vendor's HTTP response."""
    cls = type(name, (Exception,), {})
    exc = cls(message)
    exc.status_code = status  # type: ignore[attr-defined]
    exc.message = message  # type: ignore[attr-defined]
    exc.response = FakeResponse(headers or {})  # type: ignore[attr-defined]
    return exc


@pytest.mark.parametrize(
    ("name", "status", "message", "headers", "cls", "retry"),
    [
        ("AuthenticationError", 401, f"AnthropicException - invalid x-api-key {KEY}", None, errors.UpstreamAuth, None),
        ("RateLimitError", 429, "rate limited", {"retry-after": "3"}, errors.UpstreamRateLimited, 3.0),
        (
            "RateLimitError",
            429,
            "You exceeded your current quota (insufficient_quota)",
            None,
            errors.UpstreamQuotaExceeded,
            None,
        ),
        ("ContextWindowExceededError", 400, "prompt is too long", None, errors.ContextLengthExceeded, None),
        ("BadRequestError", 400, "bad field", None, errors.UpstreamBadRequest, None),
        ("NotFoundError", 404, "no such model", None, errors.UpstreamModelNotFound, None),
        ("ServiceUnavailableError", 503, "down", None, errors.UpstreamUnavailable, None),
        ("InternalServerError", 529, "Overloaded", None, errors.UpstreamOverloaded, None),
        ("Timeout", 408, "timed out", None, errors.UpstreamTimeout, None),
        ("APIConnectionError", 500, "connection refused", None, errors.UpstreamConnection, None),
        ("APIError", None, "something odd", None, errors.UpstreamUnavailable, None),
    ],
)
def test_litellm_exceptions_map_to_the_error_table(
    name: str,
    status: int | None,
    message: str,
    headers: dict[str, str] | None,
    cls: type[errors.UpstreamError],
    retry: float | None,
) -> None:
    err = error_from_litellm(litellm_error(name, status, message, headers), "b", lambda s: s.replace(KEY, "[redacted]"))
    assert type(err) is cls
    assert err.retry_after == retry
    assert KEY not in err.message and err.metadata["provider"] == "b"


def test_litellm_model_table_becomes_built_in_capabilities() -> None:
    caps = capabilities_from_model_info(
        "bedrock/anthropic.claude-3-haiku",
        {
            "max_tokens": 4096,
            "max_input_tokens": 200000,
            "max_output_tokens": 4096,
            "mode": "chat",
            "supports_function_calling": True,
            "supports_vision": True,
            "supports_response_schema": True,
        },
    )
    assert (caps.context_window, caps.max_output_tokens) == (200000, 4096)
    assert caps.supports_tools and caps.supports_vision and caps.supports_response_format
    assert caps.source is Source.BUILT_IN and caps.supports_streaming and not caps.supports_embeddings
    embed = capabilities_from_model_info("cohere/embed-english-v3.0", {"max_input_tokens": 512, "mode": "embedding"})
    assert embed.supports_embeddings and not embed.supports_streaming and not embed.supports_tools

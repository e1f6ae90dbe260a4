"""Fault injection at the network edge: OpenAI-compatible upstreams that fail on cue, and
readers for the attempt-trace trailers."""

from __future__ import annotations

import json
from typing import Any

import grpc
from portico.v1 import types_pb2 as t
from upstream import Reply, Upstream

JSON = {"content-type": "application/json"}
SSE = {"content-type": "text/event-stream"}
CHAT_PATH = "/v1/chat/completions"
USER = t.Message(role=t.ROLE_USER, content="hello")
#: Backoff short enough for tests; the waits themselves are not what they check.
QUICK_RETRY = {"backoff_initial": 0.01, "backoff_max": 0.05}


def openai_provider(name: str, up: Upstream, **settings: Any) -> dict[str, Any]:
    return {"name": name, "kind": "openai", "api_key": f"sk-test-{name}-0123456789",
            "base_url": f"{up.url}/v1", "models": ["gpt-4o"], **settings}


def completion(text: str) -> Reply:
    body = {"id": "chatcmpl-1", "object": "chat.completion", "model": "gpt-4o",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}}
    return Reply(200, JSON, json.dumps(body).encode())


def sse_events(pieces: list[str]) -> list[bytes]:
    """One SSE event per text piece, then the finish event and [DONE]."""
    def event(delta: dict[str, Any], finish: str | None = None) -> bytes:
        data = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": "gpt-4o",
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
        return b"data: " + json.dumps(data).encode() + b"\n\n"

    events = [event({"role": "assistant", "content": pieces[0]})]
    events += [event({"content": piece}) for piece in pieces[1:]]
    events.append(event({}, "stop"))
    events.append(b"data: [DONE]\n\n")
    return events


def stream_reply(pieces: list[str], *, drop_after: int | None = None) -> Reply:
    """A streamed answer; `drop_after`: the connection is cut after that many text events."""
    events = sse_events(pieces)
    body = b"".join(events)
    if drop_after is None:
        return Reply(200, SSE, body)
    return Reply(200, SSE, body, reset_after=len(b"".join(events[:drop_after])))


def error(status: int, code: str = "server_error", headers: dict[str, str] | None = None) -> Reply:
    body = {"error": {"message": f"upstream says {status}", "type": code, "code": code}}
    return Reply(status, {**JSON, **(headers or {})}, json.dumps(body).encode())


def attempts_of(trailers: Any) -> list[dict[str, Any]]:
    """The `portico-attempts` trailer, decoded."""
    found = [v for k, v in trailers or () if k == "portico-attempts"]
    assert len(found) == 1, f"expected one portico-attempts trailer, got {trailers}"
    return json.loads(found[0])


def overhead_of(trailers: Any) -> float:
    return float(next(v for k, v in trailers or () if k == "portico-overhead-ms"))


def error_trailers(err: grpc.aio.AioRpcError) -> Any:
    return err.trailing_metadata()

"""One recorded answer per HTTP dialect, for tests that run the same fault against each:
where the dialect's chat and stream requests go, and what a good answer looks like."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from upstream import Reply, Upstream, fixture

JSON = {"content-type": "application/json"}
SSE = {"content-type": "text/event-stream"}
NDJSON = {"content-type": "application/x-ndjson"}


@dataclass(frozen=True)
class Dialect:
    name: str
    kind: str
    model: str
    chat_path: str
    stream_path: str
    chat_fixture: str
    stream_fixture: str
    stream_headers: dict[str, str]

    def chat_reply(self, **fields: Any) -> Reply:
        return Reply(200, dict(JSON), fixture(self.chat_fixture), **fields)

    def stream_reply(self, **fields: Any) -> Reply:
        return Reply(200, dict(self.stream_headers), fixture(self.stream_fixture), **fields)

    def held_stream_reply(self) -> Reply:
        """The first half or so of the recorded stream (some text chunks in it), after
        which the upstream keeps the response open without sending more."""
        body = fixture(self.stream_fixture)
        separator = b"\n" if self.stream_headers is NDJSON else b"\n\n"
        if b"\r\n" in body:
            separator = separator.replace(b"\n", b"\r\n")
        cut = 0
        for _ in range(body.count(separator) // 2 + 1):
            cut = body.index(separator, cut) + len(separator)
        return Reply(200, dict(self.stream_headers), body, hang_after=cut)

    def path(self, stream: bool) -> str:
        return self.stream_path if stream else self.chat_path

    def provider_config(self, up: Upstream, **settings: Any) -> dict[str, Any]:
        """A provider entry of a config tree (name "p") pointing at `up`. Retries are off:
        these tests script one upstream exchange per call (tests/resilience retries)."""
        return {"name": "p", "kind": self.kind, "base_url": up.url, "api_key": "test-key-0123456789",
                "models": [self.model], "default_model": self.model, "retry": {"enabled": False}, **settings}


DIALECTS = [
    Dialect("openai", "openai_compat", "gpt-4o-mini", "/chat/completions", "/chat/completions",
            "openai/chat_text.json", "openai/stream_text_short.sse", SSE),
    Dialect("anthropic", "anthropic", "claude-sonnet-4-5", "/v1/messages", "/v1/messages",
            "anthropic/messages_text.json", "anthropic/stream_text_minimal.sse", SSE),
    Dialect("gemini", "gemini", "gemini-2.5-flash", "/v1beta/models/gemini-2.5-flash:generateContent",
            "/v1beta/models/gemini-2.5-flash:streamGenerateContent",
            "gemini/generate_content_text.json", "gemini/stream_text.sse", SSE),
    Dialect("ollama", "ollama", "llama3.2", "/api/chat", "/api/chat",
            "ollama/chat_nonstream.json", "ollama/chat_stream_thinking.ndjson", NDJSON),
]
BY_NAME = {d.name: d for d in DIALECTS}

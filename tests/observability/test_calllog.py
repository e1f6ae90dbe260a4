"""The gateway's one line per call: JSON when its log goes to a file or a collector,
plain text when a person watches it on a terminal."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from harness import PORTICO_BIN, eventually, spawned_gateway
from portico.v1 import llm_service_pb2 as pb
from portico.v1 import llm_service_pb2_grpc
from portico.v1 import types_pb2 as t

USER = [t.Message(role=t.ROLE_USER, content="write me a line")]
FAKE = {"name": "fk", "kind": "fake", "models": ["m1"], "default_model": "m1",
        "options": {"replies": [{}, {}, {"error": {"reason": "UPSTREAM_UNAVAILABLE"}}]},
        "retry": {"enabled": False}}


def gateway_log(tmp_path: Path) -> str:
    return next(tmp_path.glob("gateway-*/serve.log")).read_text()


def call_lines(log: str) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in log.splitlines()]
    return [line for line in lines if line["logger"] == "portico.call"]


async def make_calls(address: str) -> str:
    """A chat with a request id and tags, a stream, a failed chat and a refused one;
    returns the chat's request id."""
    request_id = "2b0d6a1e-5f3c-4c1e-9a57-0c3e2f1d4b6a"
    async with grpc.aio.insecure_channel(address) as channel:
        stub = llm_service_pb2_grpc.LLMServiceStub(channel)
        await stub.Chat(pb.ChatRequest(model="m1", messages=USER, tags={"team": "search"}),
                        metadata=(("x-request-id", request_id),))
        async for _ in stub.StreamChat(pb.ChatRequest(model="m1", messages=USER)):
            pass
        with pytest.raises(grpc.aio.AioRpcError):
            await stub.Chat(pb.ChatRequest(model="m1", messages=USER))
        with pytest.raises(grpc.aio.AioRpcError):
            await stub.Chat(pb.ChatRequest(model="m1"))  # no messages: INVALID_ARGUMENT
    return request_id


async def test_one_json_line_per_call_with_what_an_operator_asks_first(tmp_path: Path) -> None:
    config = {"server": {"health_probe_interval": 0, "workers": 1}, "providers": [FAKE]}
    with spawned_gateway(yaml.safe_dump(config), tmp_path) as (_, address):
        request_id = await make_calls(address)
        # A call's line is written once its status is sent, so it may trail the answer.
        await eventually(lambda: gateway_log(tmp_path).count('"logger":"portico.call"') == 4,
                         "a line for each of the 4 calls")
        log = gateway_log(tmp_path)
    chat, stream, failed, refused = call_lines(log)
    assert chat["request_id"] == request_id
    assert (chat["method"], chat["status"], chat["level"]) == ("Chat", "OK", "INFO")
    assert chat["tags"] == {"team": "search"}
    assert chat["caller"] == ""  # the gateway is open
    assert (chat["provider"], chat["request_model"], chat["attempts"], chat["retries"]) == ("fk", "m1", 1, 0)
    assert chat["input_tokens"] > 0 and chat["output_tokens"] > 0
    assert chat["duration_ms"] >= chat["upstream_ms"] >= 0 and chat["overhead_ms"] >= 0
    assert (stream["method"], stream["status"]) == ("StreamChat", "OK")
    assert stream["chunks"] >= 2 and 0 <= stream["first_chunk_ms"] <= stream["duration_ms"]
    assert stream["output_tokens"] > 0
    assert len({chat["request_id"], stream["request_id"], failed["request_id"]}) == 3
    # A provider's failure is a warning; the caller's own mistake is not.
    assert (failed["status"], failed["reason"], failed["level"]) == (
        "UNAVAILABLE", "ERROR_REASON_UPSTREAM_UNAVAILABLE", "WARNING")
    assert (failed["provider"], failed["attempts"]) == ("fk", 1)
    assert (refused["status"], refused["level"], refused["attempts"]) == ("INVALID_ARGUMENT", "INFO", 0)


async def test_call_lines_can_be_turned_off(tmp_path: Path) -> None:
    config = {"server": {"health_probe_interval": 0, "workers": 1}, "providers": [FAKE],
              "logging": {"calls": False}}
    with spawned_gateway(yaml.safe_dump(config), tmp_path) as (_, address):
        await make_calls(address)
        log = gateway_log(tmp_path)
    assert call_lines(log) == []
    assert "providers: fk" in log  # the rest of the log is there


@pytest.fixture
def gateway_on_a_terminal(tmp_path: Path) -> Iterator[tuple[str, int]]:
    """`portico serve` whose stderr is a pseudo-terminal; yields (address, the terminal's reading end)."""
    config_file = tmp_path / "portico.yaml"
    config_file.write_text(yaml.safe_dump({"server": {"health_probe_interval": 0, "workers": 1},
                                           "providers": [FAKE]}))
    reader, terminal = pty.openpty()
    process = subprocess.Popen([PORTICO_BIN, "serve", "--address", "127.0.0.1:0", "--config", str(config_file)],
                               stdout=subprocess.PIPE, stderr=terminal, text=True)
    os.close(terminal)
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], 30)
        line = process.stdout.readline() if ready else ""
        assert line.startswith("portico: listening on "), line
        yield line.removeprefix("portico: listening on ").strip(), reader
    finally:
        process.kill()
        process.wait(10)
        os.close(reader)


def read_until(reader: int, needle: str) -> str:
    """What the terminal showed up to `needle` (bounded: 30 s)."""
    seen = ""
    deadline = time.monotonic() + 30
    while needle not in seen:
        ready, _, _ = select.select([reader], [], [], max(0.0, deadline - time.monotonic()))
        assert ready, f"the terminal never showed {needle!r}; it showed:\n{seen}"
        seen += os.read(reader, 65536).decode(errors="replace")
    return seen


async def test_plain_text_on_a_terminal(gateway_on_a_terminal: tuple[str, int]) -> None:
    address, reader = gateway_on_a_terminal
    request_id = await make_calls(address)
    shown = read_until(reader, "INVALID_ARGUMENT")
    lines = [line for line in shown.splitlines() if " portico.call: " in line]
    assert len(lines) == 4, shown
    assert not any(line.lstrip().startswith("{") for line in shown.splitlines())
    chat = lines[0]
    assert " INFO portico.call: Chat OK " in chat
    assert f"request_id={request_id}" in chat
    assert "tags=team=search" in chat and "provider=fk" in chat and "attempts=1" in chat
    assert " WARNING portico.call: Chat UNAVAILABLE " in lines[2]

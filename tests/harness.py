"""Start a real Portico gateway on an ephemeral loopback port for a test."""

from __future__ import annotations

import asyncio
import contextlib
import select
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from portico.v1 import llm_service_pb2_grpc
from portico_server.app import Gateway
from portico_server.config import GatewayConfig, parse_config
from portico_server.providers.base import Provider


@dataclass
class RunningGateway:
    gateway: Gateway
    address: str
    channel: grpc.aio.Channel
    stub: llm_service_pb2_grpc.LLMServiceStub

    def provider(self, name: str) -> Provider:
        return self.gateway.providers[name]


@contextlib.asynccontextmanager
async def running_gateway(config: dict[str, Any] | GatewayConfig) -> AsyncIterator[RunningGateway]:
    """`config` is a config tree as in the YAML file (server.address defaults to port 0)."""
    if isinstance(config, dict):
        tree = dict(config)
        tree.setdefault("server", {})
        tree["server"] = {"address": "127.0.0.1:0", "health_probe_interval": 0, **tree["server"]}
        config = parse_config(tree, "test config")
    gateway = Gateway(config)
    await gateway.start()
    channel = grpc.aio.insecure_channel(gateway.address)
    try:
        yield RunningGateway(gateway, gateway.address, channel, llm_service_pb2_grpc.LLMServiceStub(channel))
    finally:
        await channel.close()
        await gateway.stop(grace=0)


def rpc_details(err: grpc.aio.AioRpcError | grpc.RpcError) -> dict[str, Any]:
    """The google.rpc details of a failed call: reason, metadata, retry delay, violations."""
    from google.rpc import error_details_pb2
    from grpc_status import rpc_status

    status = rpc_status.from_call(err)  # type: ignore[arg-type]
    out: dict[str, Any] = {"reason": None, "metadata": {}, "retry_delay": None, "violations": []}
    if status is None:
        return out
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            out["reason"], out["domain"], out["metadata"] = info.reason, info.domain, dict(info.metadata)
        elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            retry = error_details_pb2.RetryInfo()
            detail.Unpack(retry)
            out["retry_delay"] = retry.retry_delay.ToTimedelta().total_seconds()
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            out["violations"] = [(v.field, v.description) for v in bad.field_violations]
    return out

PORTICO_BIN = str(Path(sys.executable).parent / "portico")


@contextlib.contextmanager
def spawned_gateway(config_text: str | None, tmp_path: Path, *args: str,
                    ready_seconds: float = 30) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """Run `portico serve` on an ephemeral port as a separate process; yields (process, address)
    once it says it listens (within `ready_seconds`)."""
    run_dir = Path(tempfile.mkdtemp(dir=tmp_path, prefix="gateway-"))
    command = [PORTICO_BIN, "serve", "--address", "127.0.0.1:0", *args]
    if config_text is not None:
        (run_dir / "portico.yaml").write_text(config_text)
        command += ["--config", str(run_dir / "portico.yaml")]
    # The log goes to a file: a pipe nobody reads would block the gateway once full.
    with (run_dir / "serve.log").open("w") as log:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log, text=True)
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], ready_seconds)
        line = process.stdout.readline() if ready else ""
        assert line.startswith("portico: listening on "), f"{line!r}\n{(run_dir / 'serve.log').read_text()}"
        yield process, line.removeprefix("portico: listening on ").strip()
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(10)


async def collect(stream: Any) -> tuple[list[Any], Any]:
    """Drain a provider's stream: (every chunk before the final one, the final chunk).
    Fails unless there is exactly one final chunk and it comes last."""
    chunks = [c async for c in stream]
    finals = [c for c in chunks if c.is_final]
    assert len(finals) == 1 and chunks[-1] is finals[0], "exactly one final chunk, and it comes last"
    return chunks[:-1], finals[0]


async def eventually(predicate: Callable[[], bool], what: str) -> None:
    """Wait for a state of the gateway (bounded: a hang fails the test, it does not stall it)."""
    for _ in range(2000):
        if predicate():
            return
        await asyncio.sleep(0.005)
    pytest.fail(f"never happened: {what}")

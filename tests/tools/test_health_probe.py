"""grpc_health_probe against a real gateway, as Kubernetes or an operator would run it.

Exit codes of the probe: 0 SERVING, 2 connection failed, 3 the RPC failed (for example an
unknown service name), 4 NOT_SERVING. The pinned binary comes from
scripts/install-go-tools.sh into tools/bin/.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from harness import running_gateway

REPO = Path(__file__).resolve().parents[2]
PROBE = REPO / "tools" / "bin" / "grpc_health_probe"

SERVING, NOT_SERVING, RPC_FAILED, CONNECTION_FAILED = 0, 4, 3, 2

CONFIG = {
    # Short, so that the provider probe has run within moments of start-up.
    "server": {"health_probe_interval": 0.2},
    "providers": [
        {"name": "fake", "kind": "fake", "models": ["fake-chat"]},
        {"name": "down", "kind": "fake", "models": ["down-chat"], "options": {"healthy": False}},
    ],
}


def probe_binary() -> str:
    if not os.access(PROBE, os.X_OK):
        pytest.fail(f"{PROBE.relative_to(REPO)} is missing: run scripts/install-go-tools.sh", pytrace=False)
    return str(PROBE)


async def probe(address: str, service: str | None = None) -> tuple[int, str]:
    """Run grpc_health_probe; returns (exit code, stdout and stderr together)."""
    command = [probe_binary(), "-addr", address, "-connect-timeout", "5s", "-rpc-timeout", "5s"]
    if service is not None:
        command += ["-service", service]
    proc = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), 20)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise AssertionError(f"grpc_health_probe for {service!r} did not finish in 20 s") from None
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def wait_until_not_serving(channel, service: str) -> None:
    """Follow the entry with Watch until it says NOT_SERVING: an event, not a sleep."""
    stub = health_pb2_grpc.HealthStub(channel)
    request = health_pb2.HealthCheckRequest(service=service)
    async for update in stub.Watch(request, timeout=10):
        if update.status == health_pb2.HealthCheckResponse.NOT_SERVING:
            return


@pytest.mark.parametrize("service", [None, "", "portico.v1.LLMService", "portico.provider.fake"])
async def test_serving_entries(service):
    async with running_gateway(CONFIG) as gw:
        await wait_until_not_serving(gw.channel, "portico.provider.down")
        code, out = await probe(gw.address, service)
    assert code == SERVING, out
    assert "status: SERVING" in out


async def test_a_provider_whose_probe_fails_is_not_serving():
    async with running_gateway(CONFIG) as gw:
        await wait_until_not_serving(gw.channel, "portico.provider.down")
        code, out = await probe(gw.address, "portico.provider.down")
        # One provider's outage leaves the process entries alone.
        overall, _ = await probe(gw.address)
    assert code == NOT_SERVING, out
    assert "NOT_SERVING" in out
    assert overall == SERVING


async def test_an_unknown_entry_fails_the_probe():
    async with running_gateway(CONFIG) as gw:
        code, out = await probe(gw.address, "portico.provider.nope")
    assert code == RPC_FAILED, out
    assert "NotFound" in out


async def test_a_gateway_that_is_shutting_down_is_not_serving():
    async with running_gateway(CONFIG) as gw:
        # The first step of Gateway.stop (what SIGTERM runs): every entry goes
        # NOT_SERVING while the server still answers, so load balancers drain it
        # before it refuses calls.
        await gw.gateway.health.shutdown()
        overall, overall_out = await probe(gw.address)
        service, service_out = await probe(gw.address, "portico.v1.LLMService")
    assert overall == NOT_SERVING, overall_out
    assert service == NOT_SERVING, service_out


async def test_a_stopped_gateway_fails_the_probe():
    async with running_gateway(CONFIG) as gw:
        address = gw.address
    code, out = await probe(address)
    assert code == CONNECTION_FAILED, out

"""grpc_health_probe and grpcurl against a gateway that serves TLS and mutual TLS, as a
Kubernetes probe or an operator would run them: health and reflection work over TLS,
and a client without a certificate is refused when one is required."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from harness import running_gateway
from tls_certs import Authority

from tools.test_grpcurl import grpcurl_binary, json_documents
from tools.test_health_probe import CONNECTION_FAILED, SERVING, probe_binary

PROVIDERS = [{"name": "fake", "kind": "fake", "models": ["fake-chat"], "default_model": "fake-chat"}]


def tls_config(directory: Path, *, mutual: bool) -> dict[str, Any]:
    ca = Authority()
    ca.server().write(directory)
    (directory / "ca.crt").write_bytes(ca.pem)
    ca.client("probe", "Portico").write(directory, "client.crt", "client.key")
    tls: dict[str, Any] = {"cert_file": str(directory / "tls.crt"), "key_file": str(directory / "tls.key")}
    if mutual:
        tls |= {"client_ca_file": str(directory / "ca.crt"), "require_client_cert": True}
    return {"server": {"tls": tls}, "providers": PROVIDERS}


async def run(*command: str) -> tuple[int, str, str]:
    """Run a tool without blocking the event loop the gateway serves on."""
    proc = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 30)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise AssertionError(f"{' '.join(command)} did not finish in 30 s") from None
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def localhost(address: str) -> str:
    """The address by the name the test certificate is issued for."""
    return "localhost:" + address.rpartition(":")[2]


async def test_health_probe_over_tls(tmp_path: Path) -> None:
    async with running_gateway(tls_config(tmp_path, mutual=False)) as gw:
        tls = ["-tls", "-tls-ca-cert", str(tmp_path / "ca.crt")]
        code, out, err = await run(probe_binary(), "-addr", localhost(gw.address), *tls, "-connect-timeout", "5s")
        plain, _, plain_err = await run(probe_binary(), "-addr", gw.address, "-connect-timeout", "5s")
    # The probe reports on stderr.
    assert (code, err.strip()) == (SERVING, "status: SERVING"), out
    assert plain == CONNECTION_FAILED, plain_err


async def test_health_probe_with_a_client_certificate(tmp_path: Path) -> None:
    async with running_gateway(tls_config(tmp_path, mutual=True)) as gw:
        tls = ["-addr", localhost(gw.address), "-connect-timeout", "5s"]
        tls += ["-tls", "-tls-ca-cert", str(tmp_path / "ca.crt")]
        client = ["-tls-client-cert", str(tmp_path / "client.crt"), "-tls-client-key", str(tmp_path / "client.key")]
        code, out, err = await run(probe_binary(), *tls, *client, "-service", "portico.v1.LLMService")
        without, _, without_err = await run(probe_binary(), *tls)
    assert (code, err.strip()) == (SERVING, "status: SERVING"), out
    assert without == CONNECTION_FAILED, without_err


async def test_grpcurl_reflection_health_and_a_call_over_mutual_tls(tmp_path: Path) -> None:
    async with running_gateway(tls_config(tmp_path, mutual=True)) as gw:
        grpcurl = [grpcurl_binary(), "-max-time", "20", "-cacert", str(tmp_path / "ca.crt")]
        client = ["-cert", str(tmp_path / "client.crt"), "-key", str(tmp_path / "client.key")]
        address = localhost(gw.address)
        listed = await run(*grpcurl, *client, address, "list")
        health = await run(*grpcurl, *client, "-d", "{}", address, "grpc.health.v1.Health/Check")
        body = json.dumps({"provider": "fake", "messages": [{"role": "ROLE_USER", "content": "over mTLS"}]})
        chat = await run(*grpcurl, *client, "-d", body, address, "portico.v1.LLMService/Chat")
        refused = await run(*grpcurl, address, "list")
    assert listed[0] == 0, listed[2]
    assert {"portico.v1.LLMService", "grpc.health.v1.Health"} <= set(listed[1].split())
    assert health[0] == 0, health[2]
    assert json_documents(health[1]) == [{"status": "SERVING"}]
    assert chat[0] == 0, chat[2]
    assert json_documents(chat[1])[0]["content"] == "over mTLS"
    assert refused[0] != 0
    assert "Failed to dial target host" in refused[2]


@pytest.mark.parametrize("mutual", [False, True])
async def test_grpcurl_in_clear_to_a_tls_port_fails(tmp_path: Path, mutual: bool) -> None:
    async with running_gateway(tls_config(tmp_path, mutual=mutual)) as gw:
        code, _, err = await run(grpcurl_binary(), "-plaintext", "-max-time", "10", gw.address, "list")
    assert code != 0
    assert f"Failed to dial target host \"{gw.address}\"" in err

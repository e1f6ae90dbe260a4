"""Start a real Portico gateway on an ephemeral loopback port for a test."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import grpc
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

"""A real gateway started from a configuration file, as `portico serve --config` does, so
that AdminService can reload it."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from portico.v1 import admin_service_pb2_grpc, llm_service_pb2_grpc
from portico_server.app import Gateway
from portico_server.config import load_config


@dataclass
class FileGateway:
    gateway: Gateway
    path: Path
    channel: grpc.aio.Channel
    stub: llm_service_pb2_grpc.LLMServiceStub
    admin: admin_service_pb2_grpc.AdminServiceStub

    def write(self, tree: dict[str, Any]) -> None:
        write_config(self.path, tree)


def write_config(path: Path, tree: dict[str, Any]) -> None:
    tree = {**tree, "server": {"address": "127.0.0.1:0", "health_probe_interval": 0, **tree.get("server", {})}}
    path.write_text(json.dumps(tree, indent=1))  # JSON is YAML


@contextlib.asynccontextmanager
async def gateway_from_file(path: Path, tree: dict[str, Any]) -> AsyncIterator[FileGateway]:
    write_config(path, tree)
    gateway = Gateway(load_config(path), config_path=str(path))
    await gateway.start()
    channel = grpc.aio.insecure_channel(gateway.address)
    try:
        yield FileGateway(gateway, path, channel, llm_service_pb2_grpc.LLMServiceStub(channel),
                          admin_service_pb2_grpc.AdminServiceStub(channel))
    finally:
        await channel.close()
        await gateway.stop(grace=0)

"""Builds and runs the gateway: providers from configuration, the grpc.aio server with
LLMService, health and reflection, and a graceful stop on SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from portico.v1 import llm_service_pb2

from . import intake
from .capabilities import CapabilityResolver
from .config import ConfigError, GatewayConfig, load_config
from .health import HealthReporter
from .intake import RequestDecoder
from .providers import registry
from .providers.base import Provider
from .redaction import install_log_redaction
from .resilience.limits import Limits
from .router import Router
from .servicer import LLMServicer, fail

log = logging.getLogger("portico")


class StartupError(Exception):
    """The gateway cannot start for a reason outside its configuration file (e.g. the port)."""


def _check_can_listen(address: str) -> None:
    """Bind `address` briefly to say in plain words why the server could not: grpc's own
    failure is a bare RuntimeError after a log line of its own on stderr."""
    host, _, port = address.rpartition(":")
    try:
        infos = socket.getaddrinfo(host.strip("[]") or None, int(port), type=socket.SOCK_STREAM)
    except (OSError, ValueError, UnicodeError):
        return  # grpc resolves it its own way and reports what it cannot
    if not infos or int(port) == 0:
        return
    family, kind, proto, _, sockaddr = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(sockaddr)
        except OSError as exc:
            raise StartupError(f"cannot listen on {address}: {exc.strerror or exc}") from None


class Gateway:
    """One gateway process: `await start()`, then `await stop()`."""

    def __init__(self, config: GatewayConfig) -> None:
        self.config = config
        self.providers: dict[str, Provider] = {
            p.name: registry.create(p, f"providers[{i}]") for i, p in enumerate(config.providers)
        }
        self.router = Router(self.providers, config.aliases)
        self.health = HealthReporter(self.providers)
        self.limits = Limits(config)
        self.servicer = LLMServicer(self.router, CapabilityResolver(), self.health, self.limits)
        self.decoder = RequestDecoder(config.server.limits, config.server.max_message_bytes)
        self.server: grpc.aio.Server | None = None
        self.address = ""

    async def start(self) -> None:
        settings = self.config.server
        # gRPC's own limit sits above ours so that an oversize request reaches the
        # servicer and gets INVALID_ARGUMENT with the limit named, not a bare status.
        transport_limit = settings.max_message_bytes * 2
        server = grpc.aio.server(options=[
            ("grpc.max_receive_message_length", transport_limit),
            ("grpc.max_send_message_length", transport_limit),
            ("grpc.so_reuseport", 0),
            # Let clients keep idle connections alive with pings every 10 s or more
            # instead of answering them with "too many pings".
            ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
            ("grpc.keepalive_permit_without_calls", 1),
        ])
        intake.add_to_server(self.servicer, server, self.decoder, fail)
        health_pb2_grpc.add_HealthServicer_to_server(self.health.servicer, server)
        if settings.reflection:
            reflection.enable_server_reflection([
                llm_service_pb2.DESCRIPTOR.services_by_name["LLMService"].full_name,
                health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                reflection.SERVICE_NAME,
            ], server)
        host, _, _ = settings.address.rpartition(":")
        _check_can_listen(settings.address)
        try:
            port = server.add_insecure_port(settings.address)
        except RuntimeError:  # grpc's way of saying the bind failed
            port = 0
        if port == 0:
            raise StartupError(
                f"cannot listen on {settings.address}: the port is in use or the address is not this host's")
        await server.start()
        self.server = server
        self.address = f"{host}:{port}"
        await self.health.start(settings.health_probe_interval)

    async def stop(self, grace: float | None = None) -> None:
        """Refuse new calls, give in-flight ones `grace` seconds, then close providers."""
        if grace is None:
            grace = self.config.server.shutdown_grace
        self.servicer.shutting_down = True
        await self.health.shutdown()
        if self.server is not None:
            await self.server.stop(grace)
        for provider in self.providers.values():
            with contextlib.suppress(Exception):
                await provider.close()


async def run(config: GatewayConfig) -> None:
    """Run until SIGTERM or SIGINT, then stop gracefully."""
    gateway = Gateway(config)
    await gateway.start()
    print(f"portico: listening on {gateway.address}", flush=True)
    log.info("providers: %s", ", ".join(gateway.providers) or "none")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down (grace %.1fs)", config.server.shutdown_grace)
    await gateway.stop()


def serve(config_path: str | None = None, address: str | None = None) -> int:
    """`portico serve`: blocking; returns the process exit code."""
    try:
        config = load_config(config_path)
        if address:
            config.server.address = address
    except ConfigError as exc:
        print(f"portico: configuration error:\n{exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=config.server.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # Before any provider exists: every record, at every level and from every library,
    # passes the filter that removes configured secrets.
    install_log_redaction()
    try:
        import uvloop
    except ImportError:
        runner = asyncio.run
    else:
        runner = uvloop.run
    try:
        runner(run(config))
    except ConfigError as exc:
        print(f"portico: configuration error:\n{exc}", file=sys.stderr)
        return 2
    except StartupError as exc:
        print(f"portico: {exc}", file=sys.stderr)
        return 2
    return 0

"""Builds and runs the gateway: providers from configuration, the grpc.aio server with
LLMService, VectorService, AdminService, health and reflection, a graceful stop on SIGTERM/SIGINT and a
configuration reload on SIGHUP. With several workers, `workers.supervise` runs one such
gateway per worker process."""

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
from portico.v1 import (
    admin_service_pb2,
    admin_service_pb2_grpc,
    llm_service_pb2,
    vector_service_pb2,
    vector_service_pb2_grpc,
)

from . import calllog, intake, metrics, tracing
from .admin import AdminServicer
from .admin_history import SIGHUP_REASON, AdminHistory, EventKind
from .auth import Authenticator, AuthInterceptor, describe, keyrings
from .callers import CallerPolicies
from .capabilities import CapabilityResolver
from .config import ConfigError, GatewayConfig, StartupError, expand_api_keys, load_config
from .connections import connection_options
from .errors import InvalidRequest, PorticoError, UnknownProvider
from .generation import Generations
from .health import HealthReporter
from .intake import RequestDecoder
from .providers import registry
from .providers.base import Provider
from .resilience.breaker import CircuitBreaker
from .resilience.dispatcher import Dispatcher
from .resilience.limits import Limits
from .router import Router
from .servicer import LLMServicer, fail
from .shedding import LoadShedder
from .tls import ServerCertificates
from .vectors import registry as vector_backends
from .vectors.model import VectorBackend
from .vectors.service import VectorServicer
from .workers import default_worker_count, supervise

log = logging.getLogger("portico")


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
    """One gateway process: `await start()`, then `await stop()`. `config_path` is the
    file `reload()` reads again (None: the configuration cannot be reloaded)."""

    def __init__(
        self, config: GatewayConfig, reuse_port: bool = False, config_path: str | None = None,
        worker: int = 1, workers: int = 1,
    ) -> None:
        self.config = config
        self.config_path = config_path
        #: Workers share one port (SO_REUSEPORT); a lone gateway must own its port, so
        #: that a second one started by mistake fails instead of silently sharing it.
        self.reuse_port = reuse_port
        self.providers, key_groups = _build_providers(config)
        self.health = HealthReporter(self.providers)
        self.dispatcher = Dispatcher(self.health, limits=Limits(config))
        # Routing orders targets by the dispatcher's live figures (latency, breakers, cooldowns).
        self.router = Router(self.providers, config.aliases, config.groups, key_groups, stats=self.dispatcher.stats)
        # Who may call (auth.py) and what each caller may do (callers.py).
        self.auth = Authenticator(keyrings(config.auth))
        self.callers = CallerPolicies(config.auth)
        #: This process's share (worker `worker` of `workers`) of the gateway-wide load caps.
        self.load = LoadShedder(config.server.load, worker, workers)
        self.servicer = LLMServicer(
            self.router, CapabilityResolver(), self.health, self.dispatcher, self.callers, self.load)
        #: The vector store's backend (None: `vectors.enabled` is false); it stays as it
        #: started across configuration reloads.
        self.vector_backend: VectorBackend | None = (
            vector_backends.create(config.vectors) if config.vectors.enabled else None)
        _name_metrics(config, self.providers, self.dispatcher)
        self.decoder = RequestDecoder(config.server.limits, config.server.max_message_bytes)
        self.generations = Generations(self.providers)
        self.history = AdminHistory()
        self._reloading = asyncio.Lock()
        self._signal_reloads: set[asyncio.Task[None]] = set()
        self.server: grpc.aio.Server | None = None
        #: The TLS certificates the port serves; None over plaintext.
        self.certificates: ServerCertificates | None = None
        self.address = ""

    # -- admin operations (admin.py converts; the state lives where it belongs) ----------------

    def reset_breaker(self, provider: str, reason: str) -> list[CircuitBreaker]:
        """Close the breakers of a provider (or of each key of a provider with several)."""
        members = self.router.key_groups.get(provider, [provider])
        if not all(name in self.providers for name in members):
            raise UnknownProvider(
                f"no provider named {provider!r}; configured: {', '.join(self.providers) or 'none'}",
                metadata={"field": "provider", "provider": provider},
            )
        breakers = [b for name in members for b in self.dispatcher.breakers.reset(name)]
        self.history.record(EventKind.BREAKER_RESET, provider, reason, True)
        return breakers

    def switch_route(self, route: str, target: str, reason: str) -> str:
        """Pin `route` to `target` (empty: restore it); returns the previous pin."""
        previous = self.router.switch(route, target)
        subject = f"{route} -> {target or '(configured)'}"
        self.history.record(EventKind.SWITCH, subject, reason, True, f"was {previous or '(configured)'}")
        log.warning("route %s switched to %s (%s)", route, target or "its configuration", reason or "no reason given")
        return previous

    async def reload(self, reason: str) -> list[str]:
        """Read the configuration file again and use it for new calls. The server section
        (address, workers, message limits, ...) stays as it started. Raises InvalidRequest
        when the file does not load; the running configuration then stays."""
        async with self._reloading:
            path = self.config_path
            try:
                if path is None:
                    raise ConfigError("the gateway started without a configuration file; there is none to reload")
                config = await asyncio.to_thread(load_config, path)
                config.server = self.config.server
                if config.server.require_auth and not config.auth.keys:
                    raise ConfigError(f"{path}: auth.keys is empty, and this gateway started with "
                                      "server.require_auth: true")
                rings = keyrings(config.auth)
                providers: dict[str, Provider] = {}
                try:
                    _, key_groups = _build_providers(config, into=providers)
                    router = Router(providers, config.aliases, config.groups, key_groups, stats=self.dispatcher.stats)
                except ConfigError:
                    await _close_all(providers)  # those made before the error
                    raise
            except ConfigError as exc:
                self.history.record(EventKind.RELOAD, path or "", reason, False, str(exc))
                log.error("configuration reload refused; the running configuration stays:\n%s", exc)
                raise InvalidRequest(
                    [("config", str(exc))],
                    f"the configuration was refused and the running one stays: {exc}",
                ) from None
            # One synchronous step, so a new call sees either the old set or the new one.
            self.config, self.providers, self.router = config, providers, router
            _name_metrics(config, providers, self.dispatcher)
            self.servicer.router = router
            self.auth.replace(rings)
            self.callers.update(config.auth)
            self.dispatcher.limits.update(config)  # in-flight calls stay counted; queues keep their order
            self.health.replace_providers(providers)
            self.generations.replace(providers)
            self.history.record(EventKind.RELOAD, path, reason, True, f"providers: {', '.join(providers) or 'none'}")
            log.warning("configuration reloaded from %s (%s); providers: %s",
                        path, reason or "no reason given", ", ".join(providers) or "none")
            return list(providers)

    def reload_on_signal(self) -> None:
        """SIGHUP: reload in the background; a refused file is logged and recorded."""
        async def reload() -> None:
            with contextlib.suppress(PorticoError):
                await self.reload(SIGHUP_REASON)

        task = asyncio.ensure_future(reload())
        self._signal_reloads.add(task)
        task.add_done_callback(self._signal_reloads.discard)

    async def start(self) -> None:
        settings = self.config.server
        # Before anything binds: a certificate that cannot be served stops start-up.
        certificates = ServerCertificates(settings.tls) if settings.tls is not None else None
        # gRPC's own limit sits above ours so that an oversize request reaches the
        # servicer and gets INVALID_ARGUMENT with the limit named, not a bare status.
        transport_limit = settings.max_message_bytes * 2
        # Tracing first, so that a call auth refuses still gets its server span.
        interceptors = [*tracing.server_interceptors(settings.address), AuthInterceptor(self.auth, fail)]
        server = grpc.aio.server(interceptors=interceptors, options=[
            ("grpc.max_receive_message_length", transport_limit),
            ("grpc.max_send_message_length", transport_limit),
            ("grpc.so_reuseport", 1 if self.reuse_port else 0),
            *connection_options(settings.connections),
        ])
        intake.add_to_server(self.servicer, server, self.decoder, fail, self.generations.call)
        services = [llm_service_pb2.DESCRIPTOR.services_by_name["LLMService"].full_name]
        if self.vector_backend is not None:
            vectors = VectorServicer(self.vector_backend, self.servicer, self.config.vectors.embed_batch)
            intake.add_to_server(vectors, server, self.decoder, fail, self.generations.call,
                                 register=vector_service_pb2_grpc.add_VectorServiceServicer_to_server)
            services.append(vector_service_pb2.DESCRIPTOR.services_by_name["VectorService"].full_name)
        admin_service_pb2_grpc.add_AdminServiceServicer_to_server(AdminServicer(self), server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health.servicer, server)
        if settings.reflection:
            reflection.enable_server_reflection([
                *services,
                admin_service_pb2.DESCRIPTOR.services_by_name["AdminService"].full_name,
                health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                reflection.SERVICE_NAME,
            ], server)
        host, _, _ = settings.address.rpartition(":")
        if not self.reuse_port:
            # A worker shares its port with its siblings; the supervisor checked it already.
            _check_can_listen(settings.address)
        try:
            if certificates is None:
                port = server.add_insecure_port(settings.address)
            else:
                port = server.add_secure_port(settings.address, certificates.credentials())
        except RuntimeError:  # grpc's way of saying the bind failed
            port = 0
        if port == 0:
            raise StartupError(
                f"cannot listen on {settings.address}: the port is in use or the address is not this host's")
        await server.start()
        self.server = server
        self.address = f"{host}:{port}"
        self.certificates = certificates
        if certificates is not None:
            log.info("%s", certificates.describe())
        await self.health.start(settings.health_probe_interval, services)

    async def stop(self, grace: float | None = None) -> None:
        """Refuse new calls, give in-flight ones `grace` seconds, then close providers."""
        if grace is None:
            grace = self.config.server.shutdown_grace
        self.servicer.shutting_down = True
        await self.health.shutdown()
        self.dispatcher.close()
        if self.server is not None:
            await self.server.stop(grace)
        for generation in self.generations.draining:
            await generation.drained()
        await _close_all(self.providers)
        if self.vector_backend is not None:
            await self.vector_backend.close()


def _build_providers(
    config: GatewayConfig, into: dict[str, Provider] | None = None
) -> tuple[dict[str, Provider], dict[str, list[str]]]:
    """The provider instances of a configuration (added to `into`, so that a caller can
    close those made before a ConfigError), and its key groups: a provider with several
    `api_keys` becomes one instance per key, grouped under its name."""
    providers: dict[str, Provider] = {} if into is None else into
    key_groups: dict[str, list[str]] = {}
    for i, settings in enumerate(config.providers):
        instances = expand_api_keys(settings)
        for instance in instances:
            providers[instance.name] = registry.create(instance, f"providers[{i}]")
        if settings.api_keys:
            key_groups[settings.name] = [instance.name for instance in instances]
    return providers, key_groups


def _name_metrics(config: GatewayConfig, providers: dict[str, Provider], dispatcher: Dispatcher) -> None:
    """The names the metrics' model label may take (the configuration's), and each
    provider's breaker state as it is now (after a reload, a kept breaker stays open)."""
    metrics.configure(config.aliases, config.groups, (
        metrics.ProviderModels(name, (*provider.models(), provider.default_model(), provider.embedding_model()))
        for name, provider in providers.items()))
    for name in providers:
        metrics.breaker_changed(name, dispatcher.breakers.state(name).value)


async def _close_all(providers: dict[str, Provider]) -> None:
    for provider in providers.values():
        with contextlib.suppress(Exception):
            await provider.close()


#: Health entry a worker answers SERVING for (`portico.worker.2`): which worker a
#: connection landed on, without any other API.
WORKER_HEALTH_PREFIX = "portico.worker."


async def run(
    config: GatewayConfig, worker: int | None = None, config_path: str | None = None, workers: int = 1
) -> None:
    """Run until SIGTERM or SIGINT, then stop gracefully; reload `config_path` on SIGHUP."""
    gateway = Gateway(config, reuse_port=worker is not None, config_path=config_path,
                      worker=worker or 1, workers=workers)
    loop = asyncio.get_running_loop()
    # Before "listening" is printed: a supervisor forwards SIGHUP only after that line.
    loop.add_signal_handler(signal.SIGHUP, gateway.reload_on_signal)
    if worker is not None:
        # Before the port opens: the first connection a new worker takes can already ask.
        await gateway.health.servicer.set(f"{WORKER_HEALTH_PREFIX}{worker}", health_pb2.HealthCheckResponse.SERVING)
    # A worker's figures are served by its supervisor, which merges every worker's.
    endpoint = metrics.start(config.metrics) if worker is None else None
    try:
        await gateway.start()
        # Before "listening": whoever waits for that line can rely on this one being there.
        log.log(*describe(gateway.auth.rings, gateway.address))
        print(f"portico: listening on {gateway.address}", flush=True)
        if endpoint is not None:
            print(f"portico: metrics on {endpoint.url}", flush=True)
        log.info("providers: %s", ", ".join(gateway.providers) or "none")
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        log.info("shutting down (grace %.1fs)", config.server.shutdown_grace)
        await gateway.stop()
    finally:
        if endpoint is not None:
            endpoint.close()


def serve(config_path: str | None = None, address: str | None = None, workers: int | None = None) -> int:
    """`portico serve`: blocking; returns the process exit code."""
    try:
        config = load_config(config_path)
        if address:
            config.server.address = address
        if workers is not None:
            config.server.workers = workers
        keyrings(config.auth)  # an unset key variable stops the supervisor, not each worker
    except ConfigError as exc:
        return _cannot_start(exc)
    _configure_logging(config, None)
    count = config.server.workers or default_worker_count()
    if count > 1:
        if config.vectors.enabled and config.vectors.backend == "memory":
            log.warning("vectors.backend is memory: each of the %d workers keeps its own collections, so a "
                        "client on another connection may not see them; use --workers 1 or a shared backend",
                        count)
        try:
            if config.server.tls is not None:
                # Checked once here, so that a bad file is reported once, not by a worker.
                ServerCertificates(config.server.tls)
            return supervise(config, config_path, count)
        except (ConfigError, StartupError) as exc:
            return _cannot_start(exc)
    return _run_gateway(config, None, config_path)


def serve_worker(config_path: str | None, address: str, worker: int, workers: int = 1) -> int:
    """One worker process of `portico serve --workers N` on the address its supervisor chose."""
    try:
        config = load_config(config_path)
        config.server.address = address
    except ConfigError as exc:
        return _cannot_start(exc)
    _configure_logging(config, worker)
    return _run_gateway(config, worker, config_path, workers)


def _configure_logging(config: GatewayConfig, worker: int | None) -> None:
    calllog.configure(config.logging, config.logging.level or config.server.log_level, worker)


def _run_gateway(config: GatewayConfig, worker: int | None, config_path: str | None, workers: int = 1) -> int:
    try:
        import uvloop
    except ImportError:
        runner = asyncio.run
    else:
        runner = uvloop.run
    try:
        # Each process (each worker) exports its own spans; off unless OTEL_* asks for them.
        tracing.setup(worker)
    except tracing.TracingConfigError as exc:
        return _cannot_start(StartupError(str(exc)))
    try:
        runner(run(config, worker, config_path, workers))
    except (ConfigError, StartupError) as exc:
        return _cannot_start(exc)
    finally:
        tracing.shutdown()  # exports the spans still buffered
    return 0


def _cannot_start(exc: ConfigError | StartupError) -> int:
    """Say in one line (a configuration error: with the file and key) why the gateway
    cannot start; the exit code is 2."""
    if isinstance(exc, ConfigError):
        print(f"portico: configuration error:\n{exc}", file=sys.stderr)
    else:
        print(f"portico: {exc}", file=sys.stderr)
    return 2

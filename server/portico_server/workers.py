"""Several gateway processes on one port: `portico serve --workers N`.

The parent process never runs gRPC. It reserves the port, starts N worker processes
that each run a whole gateway bound to that port with SO_REUSEPORT (the kernel spreads
new connections over them), restarts a worker that dies, and on SIGTERM/SIGINT forwards
the signal and waits for every worker to drain. SIGHUP is forwarded to every worker, each
of which reloads the configuration file (admin calls, by contrast, reach only the worker
their connection landed on).

Port 0 with several workers: the parent binds a socket with SO_REUSEPORT to learn a free
port and keeps it (bound, never listening, so it receives no connections) for as long as
it runs, so the port cannot be taken by anyone else between start-ups and restarts.

Metrics: the parent serves `/metrics` for all of them. Before it starts any worker it
creates a fresh directory for prometheus-client's multiprocess mode (named in the
environment the workers inherit), each worker writes its figures there, and the
parent's endpoint merges them; the directory is removed when the gateway stops.

Start-up: the first worker starts alone. If it exits before it listens, nothing else is
started and the gateway exits with its exit code (2 for a configuration error), so an
error is reported once, not N times. The others then start together.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass, field

from . import metrics
from .config import ConfigError, GatewayConfig, StartupError

log = logging.getLogger("portico.workers")

#: The environment variable that tells a worker process which worker it is.
WORKER_ENV = "PORTICO_WORKER"
#: A worker that dies is restarted after 0.5 s, doubling per consecutive failure up to 30 s.
FIRST_RESTART_DELAY = 0.5
MAX_RESTART_DELAY = 30.0
#: A worker that ran this long before dying counts as healthy: its next restart is quick again.
STABLE_AFTER = 30.0
#: Time for a worker to start listening before it counts as failed.
START_TIMEOUT = 60.0


def default_worker_count() -> int:
    """One per core this process may run on; 1 where the kernel does not spread
    connections over SO_REUSEPORT listeners (everywhere but Linux)."""
    if not sys.platform.startswith("linux"):
        return 1
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def split_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"server.address: several workers need host:port with a numeric port, not {address!r}")
    return host, int(port)


def reserve_port(address: str) -> tuple[socket.socket, str]:
    """Bind the address the workers will share; returns the held socket and "host:port".

    A fixed port that something already listens on is refused here, before any worker
    starts: without this check the workers would silently join another gateway's
    SO_REUSEPORT group on the same port.
    """
    if not hasattr(socket, "SO_REUSEPORT"):
        raise ConfigError("server.workers: several workers need SO_REUSEPORT, which this system lacks; use 1")
    host, port = split_address(address)
    lookup_host = host.strip("[]")
    try:
        family, kind, proto, _, sockaddr = socket.getaddrinfo(
            lookup_host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        raise ConfigError(f"server.address: cannot resolve {host!r}: {exc.strerror}") from None
    if port != 0:
        probe = socket.socket(family, kind, proto)
        try:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(sockaddr)
            probe.listen(1)
        except OSError as exc:
            raise StartupError(f"cannot listen on {address}: {exc.strerror}") from None
        finally:
            probe.close()
    held = socket.socket(family, kind, proto)
    try:
        held.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        held.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        held.bind(sockaddr)
    except OSError as exc:
        held.close()
        raise StartupError(f"cannot listen on {address}: {exc.strerror}") from None
    return held, f"{host}:{held.getsockname()[1]}"


@dataclass
class Worker:
    index: int
    process: asyncio.subprocess.Process | None = None
    started_at: float = 0.0
    failures: int = 0
    #: It printed its "listening" line, so its SIGHUP handler (a reload) is in place.
    listening: bool = False
    pumps: list[asyncio.Task[None]] = field(default_factory=list)

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def restart_delay(self) -> float:
        return float(min(MAX_RESTART_DELAY, FIRST_RESTART_DELAY * 2 ** max(0, self.failures - 1)))


class Supervisor:
    """Starts, watches and stops the worker processes of one gateway."""

    def __init__(
        self, config: GatewayConfig, config_path: str | None, count: int, address: str, metrics_url: str = ""
    ) -> None:
        self.config = config
        self.metrics_url = metrics_url
        self.config_path = config_path
        self.address = address
        self.workers = [Worker(i + 1) for i in range(count)]
        self.stopping = asyncio.Event()

    def _command(self) -> list[str]:
        # The count lets each worker take its share of the gateway-wide load caps.
        command = [sys.executable, "-m", "portico_server.worker_main", "--address", self.address,
                   "--workers", str(len(self.workers))]
        if self.config_path is not None:
            command += ["--config", self.config_path]
        return command

    async def _start(self, worker: Worker) -> bool:
        """Start one worker and wait until it listens; False if it exited first."""
        env = {**os.environ, WORKER_ENV: f"{worker.index}:{os.getpid()}"}
        # The worker inherits stderr (its log); stdout is read for the "listening" line.
        process = await asyncio.create_subprocess_exec(
            *self._command(), stdout=asyncio.subprocess.PIPE, env=env
        )
        worker.process, worker.started_at, worker.listening = process, time.monotonic(), False
        assert process.stdout is not None
        try:
            line = await asyncio.wait_for(process.stdout.readline(), START_TIMEOUT)
        except TimeoutError:
            _signal(process, signal.SIGKILL)  # hung at start-up
            line = b""
        if not line.startswith(b"portico: listening on "):
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:  # closed its stdout yet lives on
                _signal(process, signal.SIGKILL)
                await process.wait()
            return False
        log.info("worker %d listening (pid %d)", worker.index, process.pid)
        worker.listening = True
        worker.pumps = [asyncio.create_task(_forward(process.stdout), name=f"worker-{worker.index}-stdout")]
        return True

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stopping.set)
        loop.add_signal_handler(signal.SIGHUP, self.reload_all)
        first, *rest = self.workers
        if not await self._start(first):
            code = first.process.returncode if first.process else 1
            print(
                f"portico: error: worker 1 exited with code {code} before it listened; the gateway did not start",
                file=sys.stderr,
                flush=True,
            )
            return code if code and code > 0 else 1
        started = await asyncio.gather(*(self._start(w) for w in rest))
        # The same line as a single-process gateway's, so scripts that read it keep working.
        print(f"portico: listening on {self.address}", flush=True)
        if self.metrics_url:
            print(f"portico: metrics on {self.metrics_url}", flush=True)
        log.info("%d workers share %s", len(self.workers), self.address)
        watchers = [asyncio.create_task(self._watch(w, ok)) for w, ok in zip(rest, started, strict=True)]
        watchers.append(asyncio.create_task(self._watch(first, True)))
        await self.stopping.wait()
        # Only the workers alive now count: one that died earlier was already reported.
        alive = [w for w in self.workers if w.process is not None and w.process.returncode is None]
        log.info("shutting down %d workers (grace %.1fs)", len(alive), self.config.server.shutdown_grace)
        for w in alive:
            assert w.process is not None
            _signal(w.process, signal.SIGTERM)
        codes = await self._wait_all(alive, self.config.server.shutdown_grace + 10)
        for task in watchers:
            task.cancel()
        # -SIGTERM: a worker still starting, stopped before it installed its handler.
        return 0 if all(code in (0, -signal.SIGTERM) for code in codes) else 1

    def reload_all(self) -> None:
        """SIGHUP: every worker reloads its configuration file. A worker still starting
        is skipped (the signal would end it); it reads the file as it starts anyway."""
        live = [w for w in self.workers if w.listening and w.process is not None and w.process.returncode is None]
        log.info("reloading the configuration of %d workers", len(live))
        for w in live:
            assert w.process is not None
            _signal(w.process, signal.SIGHUP)

    async def _watch(self, worker: Worker, running: bool) -> None:
        """Restart `worker` whenever it dies, with a growing delay while it keeps dying."""
        while True:
            if running:
                assert worker.process is not None
                code = await worker.process.wait()
                for pump in worker.pumps:
                    await pump
                if worker.pid is not None:
                    metrics.worker_exited(worker.pid)
                if self.stopping.is_set():
                    return
                lived = time.monotonic() - worker.started_at
                worker.failures = 1 if lived >= STABLE_AFTER else worker.failures + 1
                log.warning("worker %d (pid %s) exited with %s", worker.index, worker.pid, _describe(code))
            else:
                worker.failures += 1
                log.warning("worker %d did not start", worker.index)
            delay = worker.restart_delay()
            log.warning("restarting worker %d in %.1fs", worker.index, delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), delay)
            if self.stopping.is_set():
                return
            running = await self._start(worker)

    async def _wait_all(self, workers: list[Worker], timeout: float) -> list[int]:
        async def wait(worker: Worker) -> int:
            if worker.process is None:
                return 0
            try:
                return await asyncio.wait_for(worker.process.wait(), timeout)
            except TimeoutError:
                log.error("worker %d did not stop within %.0fs; killing it", worker.index, timeout)
                _signal(worker.process, signal.SIGKILL)
                await worker.process.wait()
                return 1

        return await asyncio.gather(*(wait(w) for w in workers))


async def _forward(stream: asyncio.StreamReader) -> None:
    """Copy a worker's further stdout to ours, so nothing it prints blocks it."""
    while line := await stream.readline():
        sys.stdout.buffer.write(line)
        sys.stdout.flush()


def _signal(process: asyncio.subprocess.Process, sig: int) -> None:
    """Signal a worker without `Process.send_signal`, whose poll() reaps a worker that has
    just exited behind asyncio's child watcher, which then reports exit code 255."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(process.pid, sig)


def _describe(code: int) -> str:
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"signal {signal.Signals(-code).name}"
    return f"code {code}"


def supervise(config: GatewayConfig, config_path: str | None, count: int) -> int:
    """Run `count` workers until SIGTERM/SIGINT; returns the exit code."""
    held, address = reserve_port(config.server.address)
    try:
        with contextlib.ExitStack() as cleanup:
            url = ""
            if config.metrics is not None:
                # Set before any worker starts: each inherits the directory it writes to.
                directory = cleanup.enter_context(metrics.multiprocess_dir())
                endpoint = metrics.start(config.metrics, directory)
                assert endpoint is not None
                cleanup.callback(endpoint.close)
                url = endpoint.url
            return asyncio.run(Supervisor(config, config_path, count, address, url).run())
    finally:
        held.close()

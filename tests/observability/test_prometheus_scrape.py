"""A real Prometheus scrapes a running two-worker gateway: one scrape of the metrics port
sees the calls of both workers, the series read back through Prometheus's HTTP API, and
the alert rules load in it."""

from __future__ import annotations

import concurrent.futures
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc
from harness import PORTICO_BIN, spawned_gateway
from metrics_page import scrape
from portico.v1 import llm_service_pb2 as pb
from portico.v1 import llm_service_pb2_grpc
from portico.v1 import types_pb2 as t

ALERTS = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "alerts.yml"
CONFIG = {
    "server": {"health_probe_interval": 0},
    "metrics": {"host": "127.0.0.1", "port": 0},
    "providers": [{"name": "fake", "kind": "fake", "models": ["fake-chat"]}],
}
CHAT = pb.ChatRequest(model="fake-chat", messages=[t.Message(role=t.ROLE_USER, content="count me")])


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def metrics_url(process: subprocess.Popen[str]) -> str:
    """The supervisor prints where it serves the metrics right after it listens."""
    assert process.stdout is not None
    # Read in a thread: the line may already sit in the pipe reader's buffer, where
    # select() cannot see it.
    pool = concurrent.futures.ThreadPoolExecutor(1)
    try:
        line = pool.submit(process.stdout.readline).result(timeout=30)
    finally:
        pool.shutdown(wait=False)  # a reader still waiting ends when the gateway is killed
    assert line.startswith("portico: metrics on http://"), line
    return line.removeprefix("portico: metrics on ").strip()


def chat_on_a_fresh_connection(address: str) -> int:
    """One chat on a connection of its own; returns the worker that answered it."""
    with grpc.insecure_channel(address, options=[("grpc.use_local_subchannel_pool", 1)]) as channel:
        llm_service_pb2_grpc.LLMServiceStub(channel).Chat(CHAT, timeout=10)
        health = health_pb2_grpc.HealthStub(channel)
        for worker in (1, 2):
            try:
                health.Check(health_pb2.HealthCheckRequest(service=f"portico.worker.{worker}"), timeout=10)
                return worker
            except grpc.RpcError as err:
                assert err.code() == grpc.StatusCode.NOT_FOUND
    raise AssertionError("no worker answered for its health entry")


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[Callable[[str], tuple[str, Any]]]:
    """Starts Prometheus once `start(target)` is called with the host:port to scrape;
    returns (its API base URL, the process)."""
    binary = shutil.which("prometheus")
    assert binary, "prometheus is missing: scripts/install-debian-packages.sh installs it (Debian package prometheus)"
    processes: list[subprocess.Popen[bytes]] = []

    def start(target: str) -> tuple[str, Any]:
        config = tmp_path / "prometheus.yml"
        config.write_text(yaml.safe_dump({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(ALERTS)],
            "scrape_configs": [{"job_name": "portico", "static_configs": [{"targets": [target]}]}],
        }))
        port = free_port()
        with (tmp_path / "prometheus.log").open("wb") as log:
            process = subprocess.Popen(
                [binary, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'data'}",
                 f"--web.listen-address=127.0.0.1:{port}"], stdout=log, stderr=log)
        processes.append(process)
        return f"http://127.0.0.1:{port}", process

    yield start
    for process in processes:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def api(base: str, path: str, **params: str) -> Any:
    url = f"{base}{path}?{urllib.parse.urlencode(params)}" if params else f"{base}{path}"
    with urllib.request.urlopen(url, timeout=5) as response:
        body = json.loads(response.read())
    assert body["status"] == "success", body
    return body["data"]


def until(what: str, check: Callable[[], Any], timeout: float = 90) -> Any:
    """Poll `check` until it returns something true (its answer), at most `timeout` s.
    Prometheus scrapes every second: the answer comes within a few polls."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except OSError as exc:  # Prometheus still starting
            last = exc
        if last and not isinstance(last, Exception):
            return last
        time.sleep(0.25)  # the pause between polls, not a synchronisation
    pytest.fail(f"Prometheus never showed {what}; last answer: {last!r}")


def query(base: str, promql: str) -> dict[str, float]:
    """An instant query: {the series' labels as JSON: value}."""
    result = api(base, "/api/v1/query", query=promql)["result"]
    return {json.dumps(r["metric"], sort_keys=True): float(r["value"][1]) for r in result}


def test_prometheus_reads_the_calls_of_every_worker(tmp_path: Path, prometheus: Any) -> None:
    with spawned_gateway(yaml.safe_dump(CONFIG), tmp_path, "--workers", "2") as (process, address):
        url = metrics_url(process)
        workers: list[int] = []
        while set(workers) != {1, 2} and len(workers) < 60:  # connections are spread by a hash of their ports
            workers.append(chat_on_a_fresh_connection(address))
        assert set(workers) == {1, 2}
        calls = len(workers)

        # One scrape of the supervisor's port adds up both workers.
        page = scrape(url)
        assert page.value("portico_calls_total", method="Chat", code="OK") == calls
        assert page.value("portico_upstream_attempts_total", provider="fake", outcome="ok") == calls
        assert page.value("portico_calls_in_flight", method="Chat") == 0

        base, _ = prometheus(urllib.parse.urlsplit(url).netloc)
        ok_calls = 'sum(portico_calls_total{job="portico",method="Chat",code="OK"})'
        counted = until(f"{calls} calls", lambda: (query(base, ok_calls) or {}).get("{}") == calls)
        assert counted
        durations = query(base, 'gen_ai_client_operation_duration_seconds_count{gen_ai_operation_name="chat"}')
        assert sum(durations.values()) == calls
        assert all(json.loads(labels)["gen_ai_provider_name"] == "fake" for labels in durations)
        tokens = query(base, 'sum by (gen_ai_token_type) (gen_ai_client_token_usage_count)')
        assert tokens == {'{"gen_ai_token_type": "input"}': calls, '{"gen_ai_token_type": "output"}': calls}
        assert query(base, 'portico_breaker_state{provider="fake"}') != {}
        assert query(base, 'count(up{job="portico"} == 1)') == {"{}": 1.0}  # one target, scraped
        # The alert rules loaded, and none fires on a healthy gateway.
        groups = api(base, "/api/v1/rules")["groups"]
        assert {rule["name"] for group in groups for rule in group["rules"]} == {
            "PorticoHighErrorRate", "PorticoBreakerOpen", "PorticoCallerBudgetNearlySpent"}
        assert api(base, "/api/v1/alerts")["alerts"] == []


def multiprocess_dir_in(pid: int) -> Path | None:
    for entry in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
        name, _, value = entry.partition(b"=")
        if name == b"PROMETHEUS_MULTIPROC_DIR":
            return Path(value.decode())
    return None


def test_the_multiprocess_directory_is_removed_when_the_gateway_stops(tmp_path: Path) -> None:
    with spawned_gateway(yaml.safe_dump(CONFIG), tmp_path, "--workers", "2") as (process, address):
        metrics_url(process)
        chat_on_a_fresh_connection(address)
        # The supervisor names the directory in its workers' environment, not in its own start-up one.
        assert multiprocess_dir_in(process.pid) is None
        worker = next(int(pid) for task in Path(f"/proc/{process.pid}/task").iterdir()
                      for pid in (task / "children").read_text().split())
        directory = multiprocess_dir_in(worker)
        assert directory is not None
        assert any(directory.glob("*.db"))  # the workers write their figures there
        process.send_signal(2)  # SIGINT: a graceful stop
        assert process.wait(30) == 0
    assert not directory.exists()


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_metrics_port_in_use_stops_start_up_with_the_reason(tmp_path: Path, workers: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        config = tmp_path / "portico.yaml"
        config.write_text(yaml.safe_dump({**CONFIG, "metrics": {"host": "127.0.0.1", "port": port}}))
        done = subprocess.run([PORTICO_BIN, "serve", "--address", "127.0.0.1:0", "--workers", workers,
                               "--config", str(config)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert f"portico: cannot serve metrics on 127.0.0.1:{port}: Address already in use" in done.stderr
    assert "listening" not in done.stdout


def listening_ports(pid: int) -> set[int]:
    """The TCP ports the process itself listens on (its sockets, matched by inode)."""
    inodes = {os.readlink(fd).removeprefix("socket:[").removesuffix("]")
              for fd in Path(f"/proc/{pid}/fd").iterdir() if os.readlink(fd).startswith("socket:")}
    ports = set()
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def test_metrics_null_turns_the_endpoint_off(tmp_path: Path) -> None:
    with spawned_gateway(yaml.safe_dump(CONFIG), tmp_path, "--workers", "1") as (process, address):
        url = metrics_url(process)
        assert listening_ports(process.pid) == {int(address.rsplit(":", 1)[1]), urllib.parse.urlsplit(url).port}
    with spawned_gateway(yaml.safe_dump({**CONFIG, "metrics": None}), tmp_path, "--workers", "1") as (process, address):
        assert listening_ports(process.pid) == {int(address.rsplit(":", 1)[1])}

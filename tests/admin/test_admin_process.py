"""`portico serve` as a real process: SIGHUP reloads the configuration file (one worker,
and every worker of two), and the `portico admin` commands against it."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from harness import PORTICO_BIN, spawned_gateway
from portico.v1 import admin_service_pb2 as admin
from portico.v1 import admin_service_pb2_grpc, llm_service_pb2_grpc
from portico.v1 import llm_service_pb2 as pb
from portico.v1 import types_pb2 as t

CONFIG = """\
server: {health_probe_interval: 0}
providers:
  - {name: fake, kind: fake, models: [fake-chat], default_model: fake-chat}
  - {name: other, kind: fake, models: [other-chat], default_model: other-chat}
groups:
  chat: {deployments: [{provider: fake, model: fake-chat}]}
"""
WITH_EXTRA = CONFIG.replace("groups:", "  - {name: extra, kind: fake, models: [extra-chat]}\ngroups:")
SERVING = health_pb2.HealthCheckResponse.SERVING


def config_file(tmp_path: Path) -> Path:
    return next(tmp_path.glob("gateway-*/portico.yaml"))


def fresh_channel(address: str) -> grpc.Channel:
    # A TCP connection of its own: with several workers, each lands on one of them.
    return grpc.insecure_channel(address, options=[("grpc.use_local_subchannel_pool", 1)])


def wait_for_provider(channel: grpc.Channel, name: str) -> None:
    """Until the provider's health entry turns SERVING (it appears when a reload adds it)."""
    watch = health_pb2_grpc.HealthStub(channel).Watch(
        health_pb2.HealthCheckRequest(service=f"portico.provider.{name}"), timeout=20)
    for update in watch:
        if update.status == SERVING:
            watch.cancel()
            return
    raise AssertionError(f"the health entry of {name} never turned SERVING")


def worker_of(channel: grpc.Channel, count: int) -> int:
    health = health_pb2_grpc.HealthStub(channel)
    for index in range(1, count + 1):
        try:
            health.Check(health_pb2.HealthCheckRequest(service=f"portico.worker.{index}"), timeout=10)
            return index
        except grpc.RpcError as err:
            assert err.code() == grpc.StatusCode.NOT_FOUND
    raise AssertionError("no worker answered")


def providers_and_last_reload(channel: grpc.Channel) -> tuple[list[str], str]:
    listed = llm_service_pb2_grpc.LLMServiceStub(channel).ListProviders(pb.ListProvidersRequest(), timeout=10)
    events = admin_service_pb2_grpc.AdminServiceStub(channel).ListAdminEvents(
        admin.ListAdminEventsRequest(), timeout=10).events
    reloads = [e.reason for e in events if e.kind == admin.ADMIN_EVENT_KIND_RELOAD and e.ok]
    return [p.name for p in listed.providers], reloads[0] if reloads else ""


def test_sighup_reloads_the_file_of_a_single_worker_gateway(tmp_path: Path) -> None:
    with spawned_gateway(CONFIG, tmp_path, "--workers", "1") as (process, address):
        config_file(tmp_path).write_text(WITH_EXTRA)
        process.send_signal(signal.SIGHUP)
        with fresh_channel(address) as channel:
            wait_for_provider(channel, "extra")
            assert providers_and_last_reload(channel) == (["fake", "other", "extra"], "SIGHUP")
            # A broken file on SIGHUP: refused, recorded, and the gateway keeps serving.
            config_file(tmp_path).write_text("providers: [\n")
            process.send_signal(signal.SIGHUP)
            stub = admin_service_pb2_grpc.AdminServiceStub(channel)
            give_up = time.monotonic() + 20
            # A refusal changes no health entry to watch: ask until the signal's task recorded it.
            while (events := stub.ListAdminEvents(admin.ListAdminEventsRequest(), timeout=10).events)[0].ok:
                assert time.monotonic() < give_up, "the refused reload was never recorded"
            assert (events[0].reason, events[0].ok) == ("SIGHUP", False)
            assert providers_and_last_reload(channel)[0] == ["fake", "other", "extra"]
        assert process.poll() is None


def test_sighup_to_the_supervisor_reloads_every_worker(tmp_path: Path) -> None:
    with spawned_gateway(CONFIG, tmp_path, "--workers", "2") as (process, address):
        config_file(tmp_path).write_text(WITH_EXTRA)
        process.send_signal(signal.SIGHUP)
        reloaded: set[int] = set()
        for _ in range(50):  # new connections until both workers were seen
            with fresh_channel(address) as channel:
                wait_for_provider(channel, "extra")
                assert providers_and_last_reload(channel) == (["fake", "other", "extra"], "SIGHUP")
                reloaded.add(worker_of(channel, 2))
            if reloaded == {1, 2}:
                break
        assert reloaded == {1, 2}
        assert process.poll() is None


def portico(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PORTICO_BIN, *args], capture_output=True, text=True, timeout=60)


def test_the_admin_commands_against_a_running_gateway(tmp_path: Path) -> None:
    with spawned_gateway(CONFIG, tmp_path, "--workers", "1") as (_, address):
        at = ("--address", address)
        breakers = portico("admin", "breakers", *at)
        assert breakers.returncode == 0, breakers.stderr
        lines = breakers.stdout.splitlines()
        assert lines[0].split()[:2] == ["BREAKER", "STATE"]
        assert [line.split()[:3] for line in lines[1:]] == [["fake", "closed", "0"], ["other", "closed", "0"]]

        switched = portico("admin", "switch", "chat", "other/other-chat", "--reason", "maintenance", *at)
        assert switched.returncode == 0, switched.stderr
        assert switched.stdout == "route chat: other/other-chat (was its configured targets)\n"
        with grpc.insecure_channel(address) as channel:
            answer = llm_service_pb2_grpc.LLMServiceStub(channel).Chat(
                pb.ChatRequest(model="chat", messages=[t.Message(role=t.ROLE_USER, content="hi")]), timeout=10)
        assert answer.provider == "other"

        reset = portico("admin", "reset-breaker", "fake", *at)
        assert reset.returncode == 0, reset.stderr
        assert reset.stdout.startswith("reset the circuit breaker of fake\n")
        unknown = portico("admin", "reset-breaker", "nobody", *at)
        assert (unknown.returncode, unknown.stdout) == (1, "")
        assert unknown.stderr.startswith("portico: error: NOT_FOUND: no provider named 'nobody'")

        config_file(tmp_path).write_text("providers: [\n")
        broken = portico("admin", "reload", "--reason", "first try", *at)
        assert broken.returncode == 1
        assert broken.stderr.startswith("portico: error: INVALID_ARGUMENT: the configuration was refused")
        assert len(broken.stderr.splitlines()) == 1
        config_file(tmp_path).write_text(WITH_EXTRA)
        reloaded = portico("admin", "reload", "--reason", "second try", *at)
        assert reloaded.returncode == 0, reloaded.stderr
        assert reloaded.stdout == f"reloaded {config_file(tmp_path)}; providers: fake, other, extra\n"

        history = portico("admin", "history", *at)
        assert history.returncode == 0, history.stderr
        rows = history.stdout.splitlines()
        assert rows[0].split() == ["TIME", "KIND", "SUBJECT", "REASON", "RESULT", "DETAIL"]
        assert "reload" in rows[1] and "ok" in rows[1] and "second try" in rows[1]
        assert "refused" in rows[2] and "first try" in rows[2]
        assert "breaker reset" in rows[3]
        assert "switch" in rows[4] and "chat -> other/other-chat" in rows[4]
        newest = portico("admin", "history", "--limit", "1", *at)
        assert len(newest.stdout.splitlines()) == 2

    down = portico("admin", "breakers", "--address", "127.0.0.1:1", "--timeout", "2")
    assert down.returncode == 1
    assert down.stderr.startswith("portico: error: ")
    assert down.stderr.startswith("portico: error: cannot reach the gateway at 127.0.0.1:1")

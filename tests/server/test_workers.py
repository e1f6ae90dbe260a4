"""`portico serve --workers N`: several processes on one port, supervised.

Each worker answers SERVING for the health entry `portico.worker.<n>` and NOT_FOUND for
the others' entries, which is how a client sees which worker its connection landed on.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from harness import PORTICO_BIN, spawned_gateway
from portico.v1 import llm_service_pb2 as pb
from portico.v1 import llm_service_pb2_grpc
from portico.v1 import types_pb2 as t

TEXT = "twenty characters!!!"
FAKE = "providers:\n  - {name: fake, kind: fake, models: [fake-chat], options: {chunk_size: 1, chunk_delay: 0.02}}\n"
CHAT = pb.ChatRequest(model="fake-chat", messages=[t.Message(role=t.ROLE_USER, content=TEXT)])


def fresh_channel(address: str) -> grpc.Channel:
    # A channel of its own TCP connection: channels in one process otherwise share one.
    return grpc.insecure_channel(address, options=[("grpc.use_local_subchannel_pool", 1)])


def worker_of(channel: grpc.Channel, count: int) -> int:
    """The worker this channel's connection landed on."""
    health = health_pb2_grpc.HealthStub(channel)
    serving = []
    for index in range(1, count + 1):
        try:
            health.Check(health_pb2.HealthCheckRequest(service=f"portico.worker.{index}"), timeout=10)
            serving.append(index)
        except grpc.RpcError as err:
            assert err.code() == grpc.StatusCode.NOT_FOUND
    assert len(serving) == 1, serving
    return serving[0]


def children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        found.update(int(p) for p in (task / "children").read_text().split())
    return found


def worker_pid(parent: int, index: int) -> int:
    """The process of worker `index`, told by the environment its supervisor gave it."""
    for pid in children(parent):
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        if f"PORTICO_WORKER={index}:{parent}".encode() in environ:
            return pid
    raise AssertionError(f"no worker {index}")


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def chat_on_fresh_connection(address: str) -> tuple[str, int]:
    with fresh_channel(address) as channel:
        reply = llm_service_pb2_grpc.LLMServiceStub(channel).Chat(CHAT, timeout=10)
        return reply.content, worker_of(channel, 2)


def test_workers_from_config_share_one_port_and_each_answers(tmp_path):
    config = "server: {workers: 2}\n" + FAKE
    with spawned_gateway(config, tmp_path) as (proc, address):
        assert len(children(proc.pid)) == 2
        seen: set[int] = set()
        for _ in range(40):  # new connections are spread by a hash of their ports
            content, worker = chat_on_fresh_connection(address)
            assert content == TEXT
            seen.add(worker)
            if seen == {1, 2}:
                break
        assert seen == {1, 2}


def test_a_killed_worker_is_restarted_and_calls_keep_succeeding(tmp_path):
    with spawned_gateway(FAKE, tmp_path, "--workers", "2") as (proc, address):
        log = next(tmp_path.glob("gateway-*/serve.log"))
        victim = worker_pid(proc.pid, 1)
        os.kill(victim, signal.SIGKILL)
        # The supervisor reports the death once every thread of the worker is gone, and
        # with them its listening socket (connections queued on it are reset).
        deadline = time.monotonic() + 60
        while f"(pid {victim}) exited with signal SIGKILL" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.02)
        # From then on the survivor takes every new connection.
        for _ in range(10):
            assert chat_on_fresh_connection(address)[0] == TEXT
        while log.read_text().count("worker 1 listening") < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert worker_pid(proc.pid, 1) != victim, "the supervisor started a replacement"
        seen: set[int] = set()
        while seen != {1, 2} and time.monotonic() < deadline:
            content, worker = chat_on_fresh_connection(address)
            assert content == TEXT
            seen.add(worker)
        assert seen == {1, 2}, "both workers answer again"
        assert proc.poll() is None


def test_sigterm_drains_the_streams_of_every_worker_then_all_exit_0(tmp_path):
    with spawned_gateway(FAKE, tmp_path, "--workers", "2") as (proc, address):
        workers = children(proc.pid)
        channels, streams, on = [], [], set()
        while on != {1, 2} and len(channels) < 40:
            channel = fresh_channel(address)
            worker = worker_of(channel, 2)
            if worker in on:
                channel.close()
                continue
            on.add(worker)
            stream = llm_service_pb2_grpc.LLMServiceStub(channel).StreamChat(CHAT, timeout=20)
            channels.append(channel)
            streams.append((next(stream).content, stream))
        assert on == {1, 2}
        threading.Thread(target=proc.send_signal, args=(signal.SIGTERM,)).start()
        for first, rest in streams:
            chunks = list(rest)
            assert first + "".join(c.content for c in chunks) == TEXT
            assert chunks[-1].final
        for channel in channels:
            channel.close()
        assert proc.wait(20) == 0
        assert not any(alive(pid) for pid in workers)


def test_a_worker_that_cannot_start_stops_the_gateway_with_one_error(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text("providers:\n  - {name: fake, kind: fake, options: {chunk_size: 0}}\n")
    result = subprocess.run(
        [PORTICO_BIN, "serve", "--workers", "2", "--address", "127.0.0.1:0", "--config", str(config)],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2
    assert "chunk_size" in result.stderr
    assert result.stderr.count("portico: error: worker 1 exited with code 2 before it listened") == 1
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_a_port_in_use_is_refused_before_any_worker_starts(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [PORTICO_BIN, "serve", "--workers", "2", "--address", f"127.0.0.1:{port}"],
            capture_output=True, text=True, timeout=60,
        )
    assert result.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "worker" not in result.stderr


def test_one_worker_runs_in_process(tmp_path):
    with spawned_gateway(FAKE, tmp_path, "--workers", "1") as (proc, address):
        assert children(proc.pid) == set()
        with fresh_channel(address) as channel:
            assert llm_service_pb2_grpc.LLMServiceStub(channel).Chat(CHAT, timeout=10).content == TEXT
            with pytest.raises(grpc.RpcError) as err:
                health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(service="portico.worker.1"), timeout=10
                )
        assert err.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize("value", ["0", "two"])
def test_workers_must_be_a_positive_whole_number(value):
    result = subprocess.run([PORTICO_BIN, "serve", "--workers", value], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert "--workers" in result.stderr


def test_a_worker_that_keeps_dying_is_restarted_ever_more_slowly(tmp_path):
    with spawned_gateway(FAKE, tmp_path, "--workers", "2") as (proc, _):
        log = next(tmp_path.glob("gateway-*/serve.log"))
        deadline = time.monotonic() + 60
        for started in range(1, 4):
            os.kill(worker_pid(proc.pid, 2), signal.SIGKILL)
            # Wait until the supervisor logs that the replacement listens.
            while log.read_text().count("worker 2 listening") <= started and time.monotonic() < deadline:
                time.sleep(0.05)
    messages = [json.loads(line)["message"] for line in log.read_text().splitlines()]  # JSON lines: not a terminal
    delays = [m.rsplit(" in ", 1)[1] for m in messages if "restarting worker" in m]
    assert delays[:3] == ["0.5s", "1.0s", "2.0s"], delays

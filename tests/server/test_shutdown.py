"""Graceful shutdown: health goes NOT_SERVING, new calls are refused, in-flight streams
finish within the grace period."""

from __future__ import annotations

import asyncio
import signal
import threading

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from harness import running_gateway, spawned_gateway
from portico.v1 import llm_service_pb2 as pb
from portico.v1 import llm_service_pb2_grpc
from portico.v1 import types_pb2 as t

TEXT = "twenty characters!!!"
CONFIG = {"providers": [{"name": "fake", "kind": "fake", "models": ["fake-chat"],
                         "options": {"chunk_size": 1, "chunk_delay": 0.02}}]}


async def test_stop_lets_the_stream_in_flight_finish_and_refuses_new_calls():
    async with running_gateway(CONFIG) as gw:
        health = health_pb2_grpc.HealthStub(gw.channel)
        watch = health.Watch(health_pb2.HealthCheckRequest(service=""))
        assert (await watch.read()).status == health_pb2.HealthCheckResponse.SERVING
        request = pb.ChatRequest(model="fake-chat", messages=[t.Message(role=t.ROLE_USER, content=TEXT)])
        stream = gw.stub.StreamChat(request)
        received = [(await stream.read()).content]
        stopping = asyncio.create_task(gw.gateway.stop(grace=10))
        assert (await watch.read()).status == health_pb2.HealthCheckResponse.NOT_SERVING
        watch.cancel()
        try:
            await gw.stub.Chat(pb.ChatRequest(model="fake-chat", messages=[t.Message(role=t.ROLE_USER, content="x")]))
            refused = None
        except grpc.aio.AioRpcError as err:
            refused = err.code()
        assert refused == grpc.StatusCode.UNAVAILABLE
        while (chunk := await stream.read()) is not grpc.aio.EOF:
            received.append(chunk.content)
            final = chunk
        assert "".join(received) == TEXT
        assert final.final
        await asyncio.wait_for(stopping, 10)


def test_sigterm_drains_a_stream_then_exits_cleanly(tmp_path):
    config = (
        "providers:\n"
        "  - {name: fake, kind: fake, models: [fake-chat], options: {chunk_size: 1, chunk_delay: 0.02}}\n"
    )
    with spawned_gateway(config, tmp_path) as (proc, address):
        with grpc.insecure_channel(address) as channel:
            stub = llm_service_pb2_grpc.LLMServiceStub(channel)
            request = pb.ChatRequest(model="fake-chat", messages=[t.Message(role=t.ROLE_USER, content=TEXT)])
            chunks = stub.StreamChat(request, timeout=20)
            first = next(chunks)
            threading.Thread(target=proc.send_signal, args=(signal.SIGTERM,)).start()
            rest = list(chunks)
        assert first.content + "".join(c.content for c in rest) == TEXT
        assert rest[-1].final
        assert proc.wait(15) == 0


def test_an_open_health_watch_does_not_hold_the_process_for_the_grace_period(tmp_path):
    # The grace period is a minute; the process must leave as soon as the one real call
    # in flight has finished, telling the watcher NOT_SERVING and then ending its stream.
    config = (
        "server: {shutdown_grace: 60}\n"
        "providers:\n"
        "  - {name: fake, kind: fake, models: [fake-chat], options: {chunk_size: 1, chunk_delay: 0.02}}\n"
    )
    with spawned_gateway(config, tmp_path) as (proc, address), grpc.insecure_channel(address) as channel:
        watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(service=""), timeout=30)
        assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
        stub = llm_service_pb2_grpc.LLMServiceStub(channel)
        chunks = stub.StreamChat(
            pb.ChatRequest(model="fake-chat", messages=[t.Message(role=t.ROLE_USER, content=TEXT)]), timeout=30)
        first = next(chunks)
        proc.send_signal(signal.SIGTERM)
        after = [response.status for response in watch]  # returns when the server ends the stream
        rest = list(chunks)
        assert after == [health_pb2.HealthCheckResponse.NOT_SERVING]
        assert first.content + "".join(c.content for c in rest) == TEXT
        assert proc.wait(20) == 0

"""Reloading the configuration file of a running gateway: a good file takes effect for new
calls, a bad one is refused and the old configuration keeps serving, and calls in flight
(50 streams) finish on the providers they started with."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import grpc
import pytest
from faults import CHAT_PATH, SSE, USER, completion, error, openai_provider, sse_events
from file_gateway import gateway_from_file
from harness import rpc_details
from portico.v1 import admin_service_pb2 as admin
from portico.v1 import llm_service_pb2 as pb
from upstream import Reply, Upstream


def tree_with(*providers: dict[str, Any], **rest: Any) -> dict[str, Any]:
    return {"providers": list(providers), **rest}


async def provider_names(gw: Any) -> list[str]:
    listed = await gw.stub.ListProviders(pb.ListProvidersRequest())
    return [p.name for p in listed.providers]


async def test_a_valid_file_takes_effect_and_a_broken_one_is_refused(tmp_path: Path) -> None:
    async with Upstream() as a, Upstream() as b:
        a.always("POST", CHAT_PATH, completion("from a"))
        b.always("POST", CHAT_PATH, completion("from b"))
        async with gateway_from_file(tmp_path / "portico.yaml", tree_with(openai_provider("a", a))) as gw:
            assert await provider_names(gw) == ["a"]
            gw.write(tree_with(openai_provider("a", a), openai_provider("b", b, models=["b-model"])))
            reloaded = await gw.admin.ReloadConfig(admin.ReloadConfigRequest(reason="add b"))
            assert list(reloaded.providers) == ["a", "b"]
            assert reloaded.config_path == str(tmp_path / "portico.yaml")
            assert await provider_names(gw) == ["a", "b"]
            assert (await gw.stub.Chat(pb.ChatRequest(model="b-model", messages=[USER]))).content == "from b"

            # A file that does not validate, then one that is not YAML at all.
            gw.write(tree_with({"name": "c", "kind": "no-such-kind"}))
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await gw.admin.ReloadConfig(admin.ReloadConfigRequest(reason="typo"))
            assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "no-such-kind" in refused.value.details()
            assert "running one stays" in refused.value.details()
            assert rpc_details(refused.value)["violations"][0][0] == "config"
            gw.path.write_text("providers: [\n")
            with pytest.raises(grpc.aio.AioRpcError) as garbled:
                await gw.admin.ReloadConfig(admin.ReloadConfigRequest())
            assert garbled.value.code() == grpc.StatusCode.INVALID_ARGUMENT

            # The configuration in force is still the last good one.
            assert await provider_names(gw) == ["a", "b"]
            assert (await gw.stub.Chat(pb.ChatRequest(model="b-model", messages=[USER]))).content == "from b"
            events = (await gw.admin.ListAdminEvents(admin.ListAdminEventsRequest())).events
            assert [(e.kind, e.reason, e.ok) for e in events] == [
                (admin.ADMIN_EVENT_KIND_RELOAD, "", False),
                (admin.ADMIN_EVENT_KIND_RELOAD, "typo", False),
                (admin.ADMIN_EVENT_KIND_RELOAD, "add b", True),
            ]
            assert "no-such-kind" in events[1].detail

            # A provider the new file drops is gone from the list and from routing.
            gw.write(tree_with(openai_provider("b", b, models=["b-model"])))
            await gw.admin.ReloadConfig(admin.ReloadConfigRequest())
            assert await provider_names(gw) == ["b"]
            with pytest.raises(grpc.aio.AioRpcError) as gone:
                await gw.stub.Chat(pb.ChatRequest(provider="a", messages=[USER]))
            assert gone.value.code() == grpc.StatusCode.NOT_FOUND


STREAMS = 50
PIECES = ["one ", "two ", "three"]


async def test_reload_and_switch_while_50_streams_are_in_flight_fail_none(tmp_path: Path) -> None:
    release = asyncio.Event()
    events = sse_events(PIECES)
    held = Reply(200, SSE, b"".join(events), hang_after=len(events[0]), release=release)
    async with Upstream() as old, Upstream() as new:
        old.always("POST", CHAT_PATH, held)
        new.always("POST", CHAT_PATH, completion("from new"))
        tree = tree_with(openai_provider("old", old), openai_provider("new", new),
                         groups={"main": {"deployments": [{"provider": "old", "model": "gpt-4o"}]}})
        async with gateway_from_file(tmp_path / "portico.yaml", tree) as gw:
            request = pb.ChatRequest(model="main", messages=[USER])
            calls = [gw.stub.StreamChat(request) for _ in range(STREAMS)]
            # Every stream has its first chunk: all 50 are in flight on the upstream.
            firsts = await asyncio.gather(*(call.read() for call in calls))
            assert [c.content for c in firsts] == ["one "] * STREAMS
            old_provider = gw.gateway.providers["old"]

            switched = await gw.admin.SwitchRoute(admin.SwitchRouteRequest(route="main", target="new"))
            assert switched.target == "new"
            assert (await gw.stub.Chat(request)).content == "from new"
            tree["groups"]["main"]["deployments"] = [{"provider": "new", "model": "gpt-4o"}]
            gw.write(tree)
            await gw.admin.ReloadConfig(admin.ReloadConfigRequest(reason="move main to new"))
            assert gw.gateway.providers["old"] is not old_provider  # new calls get new providers
            assert (await gw.stub.Chat(request)).content == "from new"
            retired = gw.gateway.generations.draining[-1]
            assert retired.calls == STREAMS  # the old providers stay open for the streams

            release.set()

            async def rest(call: Any) -> tuple[str, grpc.StatusCode]:
                text = ""
                while (chunk := await call.read()) is not grpc.aio.EOF:
                    text += chunk.content
                return text, await call.code()

            finished = await asyncio.wait_for(asyncio.gather(*(rest(c) for c in calls)), 30)
            assert finished == [("two three", grpc.StatusCode.OK)] * STREAMS
            await asyncio.wait_for(retired.drained(), 10)  # then they are closed
            assert retired.calls == 0


async def test_a_reload_applies_new_breaker_settings_to_a_provider_that_stays(tmp_path: Path) -> None:
    async with Upstream() as up:
        up.always("POST", CHAT_PATH, error(503))

        def tree(failures: int) -> dict[str, Any]:
            return tree_with(openai_provider("openai", up, retry={"enabled": False},
                                             breaker={"failures": failures, "recovery": 60}))

        async with gateway_from_file(tmp_path / "portico.yaml", tree(5)) as gw:
            request = pb.ChatRequest(provider="openai", messages=[USER])
            for _ in range(2):
                with pytest.raises(grpc.aio.AioRpcError):
                    await gw.stub.Chat(request)
            gw.write(tree(3))
            await gw.admin.ReloadConfig(admin.ReloadConfigRequest(reason="tighter breaker"))
            (kept,) = (await gw.admin.ListBreakers(admin.ListBreakersRequest())).breakers
            assert (kept.state, kept.consecutive_failures) == (pb.BREAKER_STATE_CLOSED, 2)  # the tally stays
            with pytest.raises(grpc.aio.AioRpcError):
                await gw.stub.Chat(request)  # the third failure opens it under the new threshold
            (opened,) = (await gw.admin.ListBreakers(admin.ListBreakersRequest())).breakers
            assert opened.state == pb.BREAKER_STATE_OPEN

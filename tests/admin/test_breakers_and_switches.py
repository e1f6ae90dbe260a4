"""AdminService against a real gateway and loopback upstreams: breaker figures and reset,
route switches, and the history of both."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from faults import CHAT_PATH, USER, completion, error, openai_provider
from file_gateway import gateway_from_file
from grpc_health.v1 import health_pb2, health_pb2_grpc
from harness import rpc_details
from portico.v1 import admin_service_pb2 as admin
from portico.v1 import llm_service_pb2 as pb
from upstream import Upstream

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


async def test_breaker_figures_after_failures_and_a_reset_closes_it(tmp_path: Path) -> None:
    async with Upstream() as up, Upstream() as idle:
        up.always("POST", CHAT_PATH, error(503))
        tree = {"providers": [
            openai_provider("openai", up, retry={"enabled": False}, breaker={"failures": 2, "recovery": 60}),
            openai_provider("spare", idle, models=["spare-model"]),
        ]}
        async with gateway_from_file(tmp_path / "portico.yaml", tree) as gw:
            request = pb.ChatRequest(provider="openai", messages=[USER])
            for _ in range(2):
                with pytest.raises(grpc.aio.AioRpcError):
                    await gw.stub.Chat(request)
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await gw.stub.Chat(request)
            assert rpc_details(refused.value)["reason"] == "ERROR_REASON_CIRCUIT_OPEN"

            listed = {b.key: b for b in (await gw.admin.ListBreakers(admin.ListBreakersRequest())).breakers}
            assert set(listed) == {"openai", "spare"}
            broken = listed["openai"]
            assert broken.state == pb.BREAKER_STATE_OPEN
            assert (broken.consecutive_failures, broken.failures, broken.rejections) == (2, 2, 1)
            assert (broken.times_opened, broken.successes) == (1, 0)
            assert broken.opened_at.seconds > 0
            assert broken.next_trial_at.ToSeconds() - broken.opened_at.ToSeconds() == pytest.approx(60, abs=0.01)
            untouched = listed["spare"]  # no call yet: listed closed, nothing counted
            assert untouched.state == pb.BREAKER_STATE_CLOSED and untouched.failures == 0

            health = health_pb2_grpc.HealthStub(gw.channel)
            entry = health_pb2.HealthCheckRequest(service="portico.provider.openai")
            assert (await health.Check(entry)).status == NOT_SERVING

            reset = await gw.admin.ResetBreaker(admin.ResetBreakerRequest(provider="openai", reason="upstream fixed"))
            assert [(b.key, b.state, b.consecutive_failures) for b in reset.breakers] == [
                ("openai", pb.BREAKER_STATE_CLOSED, 0)]
            assert (await health.Check(entry)).status == SERVING
            up.always("POST", CHAT_PATH, completion("served again"))
            assert (await gw.stub.Chat(request)).content == "served again"
            assert len(up.received) == 3  # the refused call never reached the upstream

            events = (await gw.admin.ListAdminEvents(admin.ListAdminEventsRequest())).events
            assert [(e.kind, e.subject, e.reason, e.ok) for e in events] == [
                (admin.ADMIN_EVENT_KIND_BREAKER_RESET, "openai", "upstream fixed", True)]

            with pytest.raises(grpc.aio.AioRpcError) as unknown:
                await gw.admin.ResetBreaker(admin.ResetBreakerRequest(provider="nobody"))
            assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
            assert "nobody" in unknown.value.details()
            with pytest.raises(grpc.aio.AioRpcError) as empty:
                await gw.admin.ResetBreaker(admin.ResetBreakerRequest())
            assert empty.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert rpc_details(empty.value)["violations"] == [("provider", "is required")]


async def test_switching_a_group_and_the_default_route_moves_calls_and_is_recorded(tmp_path: Path) -> None:
    async with Upstream() as a, Upstream() as b:
        a.always("POST", CHAT_PATH, completion("from a"))
        b.always("POST", CHAT_PATH, completion("from b"))
        tree = {
            "providers": [openai_provider("a", a), openai_provider("b", b, models=["gpt-4o", "gpt-4o-mini"])],
            "groups": {"smart": {"deployments": [{"provider": "a", "model": "gpt-4o"}]}},
        }
        async with gateway_from_file(tmp_path / "portico.yaml", tree) as gw:
            smart = pb.ChatRequest(model="smart", messages=[USER])
            unnamed = pb.ChatRequest(messages=[USER])
            assert (await gw.stub.Chat(smart)).content == "from a"
            assert (await gw.stub.Chat(unnamed)).content == "from a"

            switched = await gw.admin.SwitchRoute(
                admin.SwitchRouteRequest(route="smart", target="b/gpt-4o-mini", reason="a is slow today"))
            assert (switched.route, switched.target, switched.previous_target) == ("smart", "b/gpt-4o-mini", "")
            for _ in range(3):
                answer = await gw.stub.Chat(smart)
                assert (answer.content, answer.provider) == ("from b", "b")
            assert b.last(CHAT_PATH).json()["model"] == "gpt-4o-mini"
            assert (await gw.stub.Chat(unnamed)).content == "from a"  # only the group moved

            await gw.admin.SwitchRoute(admin.SwitchRouteRequest(route="default", target="b", reason="drain a"))
            assert (await gw.stub.Chat(unnamed)).content == "from b"

            restored = await gw.admin.SwitchRoute(admin.SwitchRouteRequest(route="smart", reason="a recovered"))
            assert (restored.target, restored.previous_target) == ("", "b/gpt-4o-mini")
            assert (await gw.stub.Chat(smart)).content == "from a"

            events = (await gw.admin.ListAdminEvents(admin.ListAdminEventsRequest())).events
            assert [(e.kind, e.subject, e.reason) for e in events] == [
                (admin.ADMIN_EVENT_KIND_SWITCH, "smart -> (configured)", "a recovered"),
                (admin.ADMIN_EVENT_KIND_SWITCH, "default -> b", "drain a"),
                (admin.ADMIN_EVENT_KIND_SWITCH, "smart -> b/gpt-4o-mini", "a is slow today"),
            ]
            assert events[0].time.ToSeconds() >= events[2].time.ToSeconds() > 0
            newest = await gw.admin.ListAdminEvents(admin.ListAdminEventsRequest(page_size=1))
            assert [e.reason for e in newest.events] == ["a recovered"]

            with pytest.raises(grpc.aio.AioRpcError) as no_route:
                await gw.admin.SwitchRoute(admin.SwitchRouteRequest(route="dumb", target="b"))
            assert no_route.value.code() == grpc.StatusCode.NOT_FOUND
            assert "smart" in no_route.value.details()  # names the routes there are
            with pytest.raises(grpc.aio.AioRpcError) as no_target:
                await gw.admin.SwitchRoute(admin.SwitchRouteRequest(route="smart", target="c/gpt-4o"))
            assert no_target.value.code() == grpc.StatusCode.NOT_FOUND
            assert rpc_details(no_target.value)["reason"] == "ERROR_REASON_UNKNOWN_PROVIDER"
            assert (await gw.stub.Chat(smart)).content == "from a"  # a refused switch changes nothing

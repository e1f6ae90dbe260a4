"""Caller keys over real gRPC: missing, wrong and valid keys (both metadata forms, a key
from an environment variable), allow lists, admin keys, health and reflection left open,
keys replaced by a reload, and a gateway that must not start without keys."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import subprocess
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf.descriptor_pool import DescriptorPool
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase
from harness import PORTICO_BIN, rpc_details, running_gateway, spawned_gateway
from portico.v1 import admin_service_pb2 as admin
from portico.v1 import admin_service_pb2_grpc
from portico.v1 import llm_service_pb2 as pb
from portico.v1 import types_pb2 as t
from portico_server.app import Gateway
from portico_server.config import ConfigError, parse_config

BILLING = "pk-billing-5f1c0a9e3d"
SEARCH = "pk-search-77b2e41c08"
OPS = "pk-ops-admin-c3e9a1f4"
STRANGER = "pk-stranger-000000000"


def sha(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


FAKE = {"name": "fake", "kind": "fake", "models": ["fake-chat", "fake-large"], "retry": {"enabled": False}}


def gateway_config(**auth: Any) -> dict[str, Any]:
    return {"providers": [FAKE], "auth": auth}


KEYS = gateway_config(
    keys=[{"name": "billing", "sha256": sha(BILLING)},
          {"name": "search", "sha256": sha(SEARCH), "allow": {"models": ["fake-chat"]}}],
    admin_keys=[{"name": "ops", "sha256": sha(OPS)}],
)


def chat(model: str = "fake-chat", text: str = "hello") -> pb.ChatRequest:
    return pb.ChatRequest(model=model, messages=[t.Message(role=t.ROLE_USER, content=text)])


def bearer(key: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {key}"),)


async def refused(call: Any) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    return info.value


def assert_no_key_in(err: grpc.aio.AioRpcError, *keys: str) -> None:
    shown = f"{err.details()} {err.debug_error_string()} {err.trailing_metadata()}"
    for key in keys:
        assert key not in shown and sha(key) not in shown


async def test_a_call_without_a_key_is_unauthenticated_and_says_how_to_send_one() -> None:
    async with running_gateway(KEYS) as gw:
        err = await refused(gw.stub.Chat(chat()))
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED
    assert rpc_details(err)["reason"] == "ERROR_REASON_UNAUTHENTICATED"
    assert "authorization: Bearer <key>" in err.details()
    assert dict(err.trailing_metadata() or ()).get("x-request-id")


async def test_a_wrong_key_is_unauthenticated_and_never_echoed() -> None:
    async with running_gateway(KEYS) as gw:
        wrong = await refused(gw.stub.Chat(chat(), metadata=bearer(STRANGER)))
        other_scheme = await refused(gw.stub.Chat(chat(), metadata=(("authorization", f"Basic {BILLING}"),)))
        stream = gw.stub.StreamChat(chat(), metadata=bearer(STRANGER))
        streamed = await refused(stream.read())
    for err in (wrong, other_scheme, streamed):
        assert err.code() == grpc.StatusCode.UNAUTHENTICATED
        assert_no_key_in(err, STRANGER, BILLING)
    assert "the key sent is not known as a caller key" in wrong.details()
    assert "Bearer <key>" in other_scheme.details()


async def test_a_known_key_calls_with_either_metadata_form() -> None:
    async with running_gateway(KEYS) as gw:
        by_bearer = await gw.stub.Chat(chat(text="one"), metadata=bearer(BILLING))
        by_header = await gw.stub.Chat(chat(text="two"), metadata=(("x-api-key", BILLING),))
        lower_scheme = await gw.stub.Chat(chat(text="three"), metadata=(("authorization", f"bearer {BILLING}"),))
        chunks = [c async for c in gw.stub.StreamChat(chat(text="four"), metadata=bearer(BILLING))]
    assert (by_bearer.content, by_header.content, lower_scheme.content) == ("one", "two", "three")
    assert "".join(c.content for c in chunks) == "four"


async def test_a_key_read_from_an_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORTICO_TEST_KEY_BATCH", "pk-batch-from-env-9a8b7c")
    config = gateway_config(keys=[{"name": "batch", "env": "PORTICO_TEST_KEY_BATCH"}])
    async with running_gateway(config) as gw:
        answer = await gw.stub.Chat(chat(), metadata=bearer("pk-batch-from-env-9a8b7c"))
        err = await refused(gw.stub.Chat(chat(), metadata=bearer("pk-batch-from-env-9a8b7")))
    assert answer.content == "hello"
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED


def test_a_key_variable_that_is_not_set_stops_the_gateway_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PORTICO_TEST_KEY_MISSING", raising=False)
    config = parse_config(gateway_config(keys=[{"name": "batch", "env": "PORTICO_TEST_KEY_MISSING"}]))
    with pytest.raises(ConfigError, match=r"auth\.keys\[0\] \(batch\): environment variable PORTICO_TEST_KEY_MISSING"):
        Gateway(config)
    monkeypatch.setenv("PORTICO_TEST_KEY_MISSING", "pk-with-newline-123\n")
    with pytest.raises(ConfigError, match="trailing newline") as info:
        Gateway(config)
    assert "pk-with-newline" not in str(info.value)


async def test_a_model_the_key_may_not_use_is_permission_denied_naming_it() -> None:
    async with running_gateway(KEYS) as gw:
        allowed = await gw.stub.Chat(chat("fake-chat"), metadata=bearer(SEARCH))
        err = await refused(gw.stub.Chat(chat("fake-large"), metadata=bearer(SEARCH)))
        stream = gw.stub.StreamChat(chat("fake-large"), metadata=bearer(SEARCH))
        streamed = await refused(stream.read())
        other_caller = await gw.stub.Chat(chat("fake-large"), metadata=bearer(BILLING))
    assert allowed.content == "hello" and other_caller.content == "hello"
    for e in (err, streamed):
        assert e.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "fake-large" in e.details() and "search" in e.details()
        details = rpc_details(e)
        assert details["reason"] == "ERROR_REASON_PERMISSION_DENIED"
        assert details["metadata"]["model"] == "fake-large"


def fallback_config(allow: dict[str, list[str]]) -> dict[str, Any]:
    broken = {**FAKE, "name": "primary", "models": ["p-1"],
              "options": {"replies": [{"error": {"reason": "UPSTREAM_UNAVAILABLE"}}]}}
    spare = {**FAKE, "name": "spare", "models": ["s-1"]}
    return {
        "providers": [broken, spare],
        "groups": {"smart": {"deployments": ["primary/p-1"], "fallbacks": ["spare/s-1"]}},
        "auth": {"keys": [{"name": "narrow", "sha256": sha(SEARCH), "allow": allow},
                          {"name": "wide", "sha256": sha(BILLING)}]},
    }


async def test_a_fallback_outside_the_allow_list_is_never_tried() -> None:
    async with running_gateway(fallback_config({"groups": ["smart"]})) as gw:
        err = await refused(gw.stub.Chat(chat("smart"), metadata=bearer(SEARCH)))
    assert err.code() == grpc.StatusCode.UNAVAILABLE  # the primary's failure, not the spare's answer
    async with running_gateway(fallback_config({"groups": ["smart"], "providers": ["spare"]})) as gw:
        answer = await gw.stub.Chat(chat("smart"), metadata=bearer(SEARCH))
    assert answer.provider == "spare"


async def test_a_group_whose_every_target_is_outside_the_allow_list_is_denied() -> None:
    async with running_gateway(fallback_config({"models": ["unrelated"]})) as gw:
        err = await refused(gw.stub.Chat(chat("smart"), metadata=bearer(SEARCH)))
        wide = await gw.stub.Chat(chat("smart"), metadata=bearer(BILLING))
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED and "'smart'" in err.details()
    assert wide.provider == "spare"  # the primary failed; the key without a list may fall back


async def test_embeddings_and_capabilities_follow_the_allow_list() -> None:
    config = {"providers": [{**FAKE, "embedding_model": "fake-embed"}],
              "auth": {"keys": [{"name": "search", "sha256": sha(SEARCH), "allow": {"models": ["fake-chat"]}}]}}
    async with running_gateway(config) as gw:
        embed = await refused(gw.stub.Embed(pb.EmbedRequest(provider="fake", inputs=["x"]), metadata=bearer(SEARCH)))
        caps = await refused(gw.stub.GetCapabilities(
            pb.GetCapabilitiesRequest(model="fake-large"), metadata=bearer(SEARCH)))
        fine = await gw.stub.GetCapabilities(pb.GetCapabilitiesRequest(model="fake-chat"), metadata=bearer(SEARCH))
    assert embed.code() == caps.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "fake-embed" in embed.details()
    assert (fine.capabilities.provider, fine.capabilities.model) == ("fake", "fake-chat")


async def test_admin_service_needs_an_admin_key() -> None:
    async with running_gateway(KEYS) as gw:
        stub = admin_service_pb2_grpc.AdminServiceStub(gw.channel)
        missing = await refused(stub.ListBreakers(admin.ListBreakersRequest()))
        caller = await refused(stub.ListBreakers(admin.ListBreakersRequest(), metadata=bearer(BILLING)))
        listed = await stub.ListBreakers(admin.ListBreakersRequest(), metadata=bearer(OPS))
        admin_on_llm = await refused(gw.stub.Chat(chat(), metadata=bearer(OPS)))
    assert missing.code() == grpc.StatusCode.UNAUTHENTICATED
    assert caller.code() == grpc.StatusCode.PERMISSION_DENIED and "admin key" in caller.details()
    assert [b.provider for b in listed.breakers] == ["fake"]
    assert admin_on_llm.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_with_caller_keys_and_no_admin_keys_admin_service_is_closed() -> None:
    async with running_gateway(gateway_config(keys=[{"name": "billing", "sha256": sha(BILLING)}])) as gw:
        stub = admin_service_pb2_grpc.AdminServiceStub(gw.channel)
        err = await refused(stub.ListBreakers(admin.ListBreakersRequest(), metadata=bearer(BILLING)))
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_admin_keys_alone_close_only_admin_service() -> None:
    async with running_gateway(gateway_config(admin_keys=[{"name": "ops", "sha256": sha(OPS)}])) as gw:
        answer = await gw.stub.Chat(chat())
        stub = admin_service_pb2_grpc.AdminServiceStub(gw.channel)
        err = await refused(stub.ListBreakers(admin.ListBreakersRequest()))
        listed = await stub.ListBreakers(admin.ListBreakersRequest(), metadata=(("x-api-key", OPS),))
    assert answer.content == "hello"
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED
    assert listed.breakers


def reflected_services(address: str, metadata: tuple[tuple[str, str], ...] = ()) -> list[str]:
    channel = grpc.insecure_channel(address)
    if metadata:
        channel = grpc.intercept_channel(channel, _Metadata(metadata))
    with channel:
        db = ProtoReflectionDescriptorDatabase(channel)
        DescriptorPool(db).FindServiceByName("portico.v1.LLMService")
        return list(db.get_services())


class _Metadata(grpc.StreamStreamClientInterceptor):  # type: ignore[misc]
    """Adds metadata to the reflection client's calls, as `grpcurl -H` does."""

    def __init__(self, metadata: tuple[tuple[str, str], ...]) -> None:
        self.metadata = metadata

    def intercept_stream_stream(self, continuation: Any, details: Any, requests: Any) -> Any:
        details = details._replace(metadata=[*(details.metadata or ()), *self.metadata])
        return continuation(details, requests)


async def test_health_and_reflection_answer_without_a_key_by_default() -> None:
    async with running_gateway(KEYS) as gw:
        health = health_pb2_grpc.HealthStub(gw.channel)
        status = await health.Check(health_pb2.HealthCheckRequest(service=""))
        services = await asyncio.to_thread(reflected_services, gw.address)
    assert status.status == health_pb2.HealthCheckResponse.SERVING
    assert "portico.v1.LLMService" in services


async def test_health_and_reflection_can_need_a_key() -> None:
    config = {**KEYS, "auth": {**KEYS["auth"], "open_health": False, "open_reflection": False}}
    async with running_gateway(config) as gw:
        health = health_pb2_grpc.HealthStub(gw.channel)
        err = await refused(health.Check(health_pb2.HealthCheckRequest(service="")))
        by_caller = await health.Check(health_pb2.HealthCheckRequest(service=""), metadata=bearer(BILLING))
        by_admin = await health.Check(health_pb2.HealthCheckRequest(service=""), metadata=bearer(OPS))
        with pytest.raises(grpc.RpcError) as reflection_refused:
            await asyncio.to_thread(reflected_services, gw.address)
        services = await asyncio.to_thread(reflected_services, gw.address, bearer(BILLING))
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED
    assert by_caller.status == by_admin.status == health_pb2.HealthCheckResponse.SERVING
    assert reflection_refused.value.code() == grpc.StatusCode.UNAUTHENTICATED  # type: ignore[attr-defined]
    assert "portico.v1.AdminService" in services


async def test_a_reload_replaces_the_keys(tmp_path: Path) -> None:
    path = tmp_path / "portico.yaml"
    path.write_text(f"providers: [{{name: fake, kind: fake, models: [fake-chat]}}]\n"
                    f"auth: {{keys: [{{name: billing, sha256: {sha(BILLING)}}}]}}\n")
    config = parse_config({"server": {"address": "127.0.0.1:0", "health_probe_interval": 0},
                           "providers": [FAKE], "auth": {"keys": [{"name": "billing", "sha256": sha(BILLING)}]}})
    gateway = Gateway(config, config_path=str(path))
    await gateway.start()
    try:
        async with grpc.aio.insecure_channel(gateway.address) as channel:
            from portico.v1 import llm_service_pb2_grpc

            stub = llm_service_pb2_grpc.LLMServiceStub(channel)
            assert (await stub.Chat(chat(), metadata=bearer(BILLING))).content == "hello"
            path.write_text(f"providers: [{{name: fake, kind: fake, models: [fake-chat]}}]\n"
                            f"auth: {{keys: [{{name: search, sha256: {sha(SEARCH)}}}]}}\n")
            await gateway.reload("rotate keys")
            assert (await stub.Chat(chat(), metadata=bearer(SEARCH))).content == "hello"
            err = await refused(stub.Chat(chat(), metadata=bearer(BILLING)))
            assert err.code() == grpc.StatusCode.UNAUTHENTICATED
    finally:
        await gateway.stop(grace=0)


def test_require_auth_without_keys_refuses_to_start(tmp_path: Path) -> None:
    path = tmp_path / "portico.yaml"
    path.write_text("server: {require_auth: true}\nproviders: [{name: fake, kind: fake}]\n")
    done = subprocess.run([PORTICO_BIN, "serve", "--config", str(path), "--address", "127.0.0.1:0"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "server.require_auth is true but auth.keys is empty" in done.stderr
    assert "listening" not in done.stdout


def test_the_start_up_log_says_whether_the_gateway_is_open(tmp_path: Path) -> None:
    with spawned_gateway("providers: [{name: fake, kind: fake}]\n", tmp_path, "--workers", "1") as (process, _):
        process.terminate()
        process.wait(30)
    open_log = next(tmp_path.glob("gateway-*/serve.log")).read_text()
    assert "WARNING" in open_log and "access control is off: no caller keys are configured" in open_log
    closed = (f"server: {{require_auth: true}}\nproviders: [{{name: fake, kind: fake}}]\n"
              f"auth: {{keys: [{{name: billing, sha256: {sha(BILLING)}}}]}}\n")
    closed_dir = tmp_path / "closed"
    closed_dir.mkdir()
    with spawned_gateway(closed, closed_dir, "--workers", "1") as (process, _):
        process.terminate()
        process.wait(30)
    closed_log = next(closed_dir.glob("gateway-*/serve.log")).read_text()
    assert "access control is on: 1 caller key(s) (billing)" in closed_log
    assert sha(BILLING) not in closed_log and BILLING not in closed_log


async def test_keys_never_reach_the_log(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with running_gateway(KEYS) as gw:
        await gw.stub.Chat(chat(), metadata=bearer(BILLING))
        await refused(gw.stub.Chat(chat(), metadata=bearer(STRANGER)))
        await refused(gw.stub.Chat(chat("fake-large"), metadata=bearer(SEARCH)))
    for key in (BILLING, STRANGER, SEARCH, OPS):
        assert key not in caplog.text

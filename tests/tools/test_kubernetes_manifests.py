"""deploy/kubernetes/: the kustomize base and the production overlay, rendered by the
pinned kustomize (scripts/install-go-tools.sh, into tools/bin/) and validated offline
against the Kubernetes API schemas the `kubernetes-validate` package ships, then checked
for what a user relies on: probes, ports, security context, the drain, and a
configuration the gateway accepts — whose probes pass against a gateway started from it."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from harness import running_gateway
from portico.v1 import llm_service_pb2 as pb
from portico.v1 import types_pb2 as t
from portico_server.config import GatewayConfig, parse_config
from redis_server import RedisServer

REPO = Path(__file__).resolve().parents[2]
KUSTOMIZE = REPO / "tools" / "bin" / "kustomize"
PROBE = REPO / "tools" / "bin" / "grpc_health_probe"
#: The Kubernetes version the manifests are validated for (its schemas are in the package).
KUBERNETES_VERSION = "1.34.0"
VARIANTS = ["base", "overlays/production", "overlays/redis"]
#: What the Secret would hold: a config that names ${VAR} must find each one.
SECRET_ENV = {"OPENAI_API_KEY": "sk-test-0123456789", "ANTHROPIC_API_KEY": "sk-ant-test-0123456789"}


def render(variant: str) -> list[dict[str, Any]]:
    if not os.access(KUSTOMIZE, os.X_OK):
        pytest.fail(f"{KUSTOMIZE.relative_to(REPO)} is missing: run scripts/install-go-tools.sh", pytrace=False)
    done = subprocess.run([str(KUSTOMIZE), "build", str(REPO / "deploy" / "kubernetes" / variant)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def one(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    assert len(found) == 1, f"{len(found)} {kind} objects named {name or 'anything'}"
    return found[0]


def container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    containers = one(objects, "Deployment", "portico")["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["portico"]
    return dict(containers[0])


def gateway_config(objects: list[dict[str, Any]]) -> GatewayConfig:
    """The configuration the pods mount, as the gateway reads it."""
    deployment = one(objects, "Deployment", "portico")
    volume = next(v for v in deployment["spec"]["template"]["spec"]["volumes"] if v["name"] == "config")
    config_map = one(objects, "ConfigMap", volume["configMap"]["name"])
    mount = next(m for m in container(objects)["volumeMounts"] if m["name"] == "config")
    args = container(objects)["args"]
    path = Path(args[args.index("--config") + 1])
    assert path.parent == Path(mount["mountPath"]) and path.name in config_map["data"]
    return parse_config(yaml.safe_load(config_map["data"][path.name]), f"ConfigMap {path.name}", SECRET_ENV)


@pytest.fixture(scope="module", params=VARIANTS)
def rendered(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    return render(request.param)


def test_every_object_is_valid_for_the_pinned_kubernetes_version(rendered: list[dict[str, Any]]):
    for obj in rendered:
        # strict: a misspelt field is an error, not silently dropped by the API server.
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    kinds = {o["kind"] for o in rendered}
    assert {"Deployment", "Service", "ConfigMap", "HorizontalPodAutoscaler", "PodDisruptionBudget"} <= kinds


def test_a_broken_manifest_is_caught_by_the_validation():
    deployment = one(render("base"), "Deployment", "portico")
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["grpc"]["port"] = "grpc"
    with pytest.raises(kubernetes_validate.ValidationError, match="is not of type 'integer'"):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


def test_ports_and_grpc_probes(rendered: list[dict[str, Any]]):
    c = container(rendered)
    assert {p["name"]: p["containerPort"] for p in c["ports"]} == {"grpc": 50051, "metrics": 9464}
    assert c["readinessProbe"]["grpc"] == {"port": 50051, "service": ""}
    assert c["livenessProbe"]["grpc"] == {"port": 50051, "service": "portico.v1.LLMService"}
    assert c["startupProbe"]["grpc"]["port"] == 50051
    config = gateway_config(rendered)
    assert config.server.address.rpartition(":")[2] == "50051"
    # The metrics port the pod exposes (and Prometheus scrapes on the pod IP) is the one
    # the gateway listens on, on every interface.
    assert config.metrics is not None and (config.metrics.host, config.metrics.port) == ("0.0.0.0", 9464)
    service = one(rendered, "Service", "portico")
    assert {p["name"]: (p["port"], p["targetPort"]) for p in service["spec"]["ports"]} == {
        "grpc": (50051, "grpc"), "metrics": (9464, "metrics")}
    pod_labels = one(rendered, "Deployment", "portico")["spec"]["template"]["metadata"]["labels"]
    for selector in (service["spec"]["selector"],
                     one(rendered, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"]):
        assert selector.items() <= pod_labels.items()
    assert one(rendered, "HorizontalPodAutoscaler")["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1", "kind": "Deployment", "name": "portico"}


def test_security_context(rendered: list[dict[str, Any]]):
    pod = one(rendered, "Deployment", "portico")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001  # the Dockerfile's user
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    context = container(rendered)["securityContext"]
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}


def test_the_pod_outlives_the_gateways_drain(rendered: list[dict[str, Any]]):
    pod = one(rendered, "Deployment", "portico")["spec"]["template"]["spec"]
    c = container(rendered)
    drain = gateway_config(rendered).server.shutdown_grace
    pause = c["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert pause + drain < pod["terminationGracePeriodSeconds"], "SIGKILL would cut the drain short"
    live = c["livenessProbe"]
    assert live["periodSeconds"] * live["failureThreshold"] > drain, "liveness would restart a draining pod"


def test_the_base_puts_placeholder_keys_in_its_secret_and_the_overlay_none():
    base = render("base")
    secret = one(base, "Secret", "portico-provider-keys")
    assert set(secret["stringData"].values()) == {"replace-me"}
    assert container(base)["envFrom"] == [{"secretRef": {"name": "portico-provider-keys"}}]
    production = render("overlays/production")
    assert not [o for o in production if o["kind"] == "Secret"], "the overlay must not overwrite the real keys"
    assert {o["metadata"].get("namespace") for o in production if o["kind"] != "Namespace"} == {"portico"}


async def probe(address: str, service: str) -> int:
    if not os.access(PROBE, os.X_OK):
        pytest.fail(f"{PROBE.relative_to(REPO)} is missing: run scripts/install-go-tools.sh", pytrace=False)
    proc = await asyncio.create_subprocess_exec(
        str(PROBE), "-addr", address, "-service", service, "-connect-timeout", "5s", "-rpc-timeout", "5s",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    return await asyncio.wait_for(proc.wait(), 30)


async def test_the_manifests_probes_pass_against_a_gateway_running_its_configuration():
    objects = render("base")
    config = gateway_config(objects)
    config.server.address = "127.0.0.1:0"
    config.server.health_probe_interval = 0  # no provider probes: nothing leaves loopback
    c = container(objects)
    async with running_gateway(config) as gw:
        for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert await probe(gw.address, c[kind]["grpc"].get("service", "")) == 0, kind


def test_the_redis_overlay_points_every_replica_at_its_redis():
    objects = render("overlays/redis")
    config = gateway_config(objects)
    assert config.redis is not None and config.response_cache.backend == "redis"
    url = config.redis.url.get_secret_value()
    service = one(objects, "Service", "portico-redis")
    assert url == f"redis://{service['metadata']['name']}:{service['spec']['ports'][0]['port']}/0"
    redis = one(objects, "Deployment", "portico-redis")
    pod_labels = redis["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    # The gateway's Service must not send calls to the Redis pod.
    assert not one(objects, "Service", "portico")["spec"]["selector"].items() <= pod_labels.items()
    assert redis["spec"]["replicas"] == 1 and redis["spec"]["strategy"] == {"type": "Recreate"}
    assert one(objects, "HorizontalPodAutoscaler")["spec"]["minReplicas"] >= 3
    pod = redis["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["automountServiceAccountToken"] is False
    context = pod["containers"][0]["securityContext"]
    assert context["readOnlyRootFilesystem"] is True and context["capabilities"] == {"drop": ["ALL"]}


async def test_replicas_on_the_redis_overlays_configuration_share_cached_answers(redis_server: RedisServer):
    config = gateway_config(render("overlays/redis"))
    config.server.health_probe_interval = 0
    assert config.redis is not None
    config.redis.url = type(config.redis.url)(redis_server.url)  # the Service's address, here
    ask = pb.ChatRequest(model="fake-chat", provider="fake", temperature=0,
                         messages=[t.Message(role=t.ROLE_USER, content="shared?")])
    use = (("x-portico-cache", "use"),)
    replicas = [config.model_copy(deep=True) for _ in range(2)]
    for replica in replicas:
        replica.server.address = "127.0.0.1:0"
    async with running_gateway(replicas[0]) as first, running_gateway(replicas[1]) as second:
        answer = await first.stub.Chat(ask, metadata=use)
        call = second.stub.Chat(ask, metadata=use)
        assert await call == answer
        assert dict(await call.trailing_metadata())["portico-cache"] == "hit"

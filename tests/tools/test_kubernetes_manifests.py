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
from portico_server.config import GatewayConfig, parse_config

REPO = Path(__file__).resolve().parents[2]
KUSTOMIZE = REPO / "tools" / "bin" / "kustomize"
PROBE = REPO / "tools" / "bin" / "grpc_health_probe"
#: The Kubernetes version the manifests are validated for (its schemas are in the package).
KUBERNETES_VERSION = "1.34.0"
VARIANTS = ["base", "overlays/production"]
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
    containers = one(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["portico"]
    return dict(containers[0])


def gateway_config(objects: list[dict[str, Any]]) -> GatewayConfig:
    """The configuration the pods mount, as the gateway reads it."""
    deployment = one(objects, "Deployment")
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
    deployment = one(render("base"), "Deployment")
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
    pod_labels = one(rendered, "Deployment")["spec"]["template"]["metadata"]["labels"]
    for selector in (service["spec"]["selector"],
                     one(rendered, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"]):
        assert selector.items() <= pod_labels.items()
    assert one(rendered, "HorizontalPodAutoscaler")["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1", "kind": "Deployment", "name": "portico"}


def test_security_context(rendered: list[dict[str, Any]]):
    pod = one(rendered, "Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001  # the Dockerfile's user
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    context = container(rendered)["securityContext"]
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}


def test_the_pod_outlives_the_gateways_drain(rendered: list[dict[str, Any]]):
    pod = one(rendered, "Deployment")["spec"]["template"]["spec"]
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

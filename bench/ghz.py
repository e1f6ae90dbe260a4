"""The external load generator: ghz (pinned in scripts/install-go-tools.sh), driving a gRPC
target from outside Python for `duration` seconds and reporting its JSON summary."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from google.protobuf import json_format
from loadgen import Call

ROOT = Path(__file__).resolve().parent.parent
BINARY = ROOT / "tools" / "bin" / "ghz"
METHODS = {"chat": "Chat", "stream": "StreamChat", "embed": "Embed"}


@dataclass
class GhzResult:
    calls: int
    errors: int
    first_error: str
    rps: float
    p50_ms: float
    p99_ms: float
    elapsed: float


def available() -> bool:
    return BINARY.exists()


def run(address: str, call: Call, concurrency: int, duration: float, connections: int,
        on_start: Callable[[], None] | None = None, warmup: float = 0.3, calls: int | None = None) -> GhzResult:
    """`duration` seconds of load, or exactly `calls` calls when given (a run that short
    could otherwise end before ghz has connected)."""
    data = json_format.MessageToJson(call.grpc_request(), indent=None)
    command = [
        str(BINARY), "--insecure", "--proto", str(ROOT / "proto/portico/v1/llm_service.proto"),
        # third_party/googleapis holds field_behavior.proto (scripts/copy-googleapis-protos.sh).
        "--import-paths", f"{ROOT / 'proto'},{ROOT / 'third_party/googleapis'}",
        "--call", f"portico.v1.LLMService.{METHODS[call.kind]}",
        "-d", data, "-c", str(concurrency), "--connections", str(connections),
        "--timeout", "60s", "-O", "json", address,
    ]
    amount = ["-n", str(calls)] if calls else ["-z", f"{duration}s", "--duration-stop", "wait"]
    command[-1:-1] = amount
    if warmup > 0:
        # A short first run opens the connections and warms the target's code paths.
        warm = [*command]
        warm[warm.index(amount[0]) : warm.index(amount[0]) + len(amount)] = ["-z", f"{warmup}s"]
        subprocess.run(warm, capture_output=True, timeout=60, check=False)
    if on_start is not None:
        on_start()
    done = subprocess.run(command, capture_output=True, timeout=duration + 120, check=False)
    if done.returncode != 0 and not done.stdout.strip():
        raise RuntimeError(f"ghz failed: {done.stderr.decode(errors='replace').strip()[:200]}")
    report = json.loads(done.stdout)
    latencies = {d["percentage"]: d["latency"] / 1e6 for d in report.get("latencyDistribution") or []}
    codes = report.get("statusCodeDistribution") or {}
    errors = sum(n for code, n in codes.items() if code != "OK")
    first_error = next(iter(report.get("errorDistribution") or {}), "")
    return GhzResult(
        calls=report["count"] - errors, errors=errors, first_error=first_error[:200],
        rps=(report["count"] - errors) / (report["total"] / 1e9), p50_ms=latencies.get(50, float("nan")),
        p99_ms=latencies.get(99, float("nan")), elapsed=report["total"] / 1e9,
    )

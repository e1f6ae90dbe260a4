"""Portico beside the upstream called directly, a bare grpc.aio server and LiteLLM proxy.

One run starts every target (a loopback upstream speaking the OpenAI, Anthropic and
Gemini wire formats; a bare grpc.aio server; Portico with the fake provider and the three
dialects pointed at that upstream, with one worker and with two; LiteLLM proxy pointed at
the same upstream) and measures scenario by scenario, every target in turn, so that
whatever else the machine does falls on all of them alike. Load comes from ghz and from
the Python load generator. Results go to bench/RESULTS.md (with the machine) and stdout.

    make bench                   # the whole comparison (7 to 9 minutes on two cores)
    make bench ARGS=--quick      # shorter runs, smaller counts (about 3 minutes)
    python bench/run.py --smoke  # every target once, tiny; proves the benchmark still runs
    python bench/run.py --no-litellm
    python bench/run.py --quick --workers 4   # the multi-worker point with 4 workers

The multi-worker point runs the same unary load against one worker and against N
(`--workers`, default 2) in the same run, and reports the throughput of both and N's
speed-up over one.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import resource
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import ghz
import grpc
import litellm_proxy
import loadgen
import procs
import report
from loadgen import Call

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PORTICO = str(Path(sys.executable).parent / "portico")


@dataclass(frozen=True)
class Profile:
    duration: float
    warmup: int
    high: int  # the "concurrency 64" of the scenarios
    connections: int
    many_streams: int
    soak_first: int
    soak_total: int
    soak_budget: float
    ghz_warmup: float
    ghz_calls: int | None = None  # a fixed count instead of `duration`


PROFILES = {
    "full": Profile(3.0, 100, 64, 4, 1000, 10_000, 100_000, 90.0, 0.3),
    "quick": Profile(1.0, 40, 64, 4, 1000, 2_000, 20_000, 15.0, 0.2),
    "smoke": Profile(0.1, 2, 4, 2, 20, 50, 200, 3.0, 0.0, ghz_calls=8),
}


@dataclass
class Target:
    name: str
    protocol: str  # "grpc" or "http" (OpenAI wire format)
    server: procs.Server | None  # whose CPU and memory count; None: nothing in between
    provider: str = ""
    chat_model: str = ""
    embed_model: str | None = None
    #: Stopped (SIGSTOP) except while it is measured: for a server that is busy when idle.
    paused_between: bool = False


@dataclass(frozen=True)
class Scenario:
    name: str
    kind: str
    concurrency: int
    tokens: int = loadgen.UNARY_TOKENS
    ghz: bool = True


@dataclass
class Run:
    profile: Profile
    rows: list[report.Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    extras: dict[str, object] = field(default_factory=dict)


def scenarios(p: Profile) -> list[Scenario]:
    return [
        Scenario("unary Chat, c=1", "chat", 1),
        Scenario(f"unary Chat, c={p.high}", "chat", p.high),
        Scenario("StreamChat 20 chunks, c=1", "stream", 1, tokens=20, ghz=False),
        Scenario(f"StreamChat 20 chunks, c={p.high}", "stream", p.high, tokens=20),
        Scenario(f"StreamChat 200 chunks, c={p.high}", "stream", p.high, tokens=200),
        # ghz decodes replies through dynamic messages: 16 x 1,536 floats make it the
        # bottleneck (it drove the bare server at a sixth of the Python client's rate).
        Scenario(f"Embed 16 x 1,536, c={p.high}", "embed", p.high, ghz=False),
    ]


def gateway_config(upstream: str, workers: int) -> str:
    return f"""\
server: {{health_probe_interval: 0, log_level: WARNING, workers: {workers}}}
providers:
  - {{name: fake, kind: fake, models: [fake-chat, fake-embed], embedding_model: fake-embed,
     options: {{chunk_size: 4, embedding_dimensions: 1536}}}}
  - {{name: openai, kind: openai_compat, base_url: "http://{upstream}/v1", api_key: bench,
     models: [bench-chat, slow-stream], embedding_model: bench-embed}}
  - {{name: anthropic, kind: anthropic, base_url: "http://{upstream}", api_key: bench, models: [claude-bench]}}
  - {{name: gemini, kind: gemini, base_url: "http://{upstream}", api_key: bench,
     models: [gemini-bench], embedding_model: gemini-embedding-001}}
"""


def measure(run: Run, scenario: Scenario, target: Target, generator: str,
            connections: int | None = None, label: str | None = None) -> report.Row:
    p = run.profile
    model = target.embed_model if scenario.kind == "embed" else target.chat_model
    call = Call(scenario.kind, target.provider, model or "", scenario.tokens)
    conns = connections or (1 if scenario.concurrency == 1 else p.connections)
    address = str(target.server.address if target.server else run.extras["upstream_address"])
    pid = target.server.pid if target.server else None
    cpu_at_start = [0.0]

    def mark() -> None:
        if pid is not None:
            cpu_at_start[0] = procs.cpu_seconds(pid)

    row = report.Row(scenario=label or scenario.name, target=target.name, generator=generator)
    if target.paused_between and target.server is not None:
        target.server.resume()
    try:
        if generator == "ghz":
            result = ghz.run(address, call, scenario.concurrency, p.duration, conns, mark, p.ghz_warmup,
                             p.ghz_calls)
            row.calls, row.errors, row.first_error = result.calls, result.errors, result.first_error
            row.calls_per_s, row.p50_ms, row.p99_ms = result.rps, result.p50_ms, result.p99_ms
            if scenario.kind == "stream":
                row.chunks_per_s = result.rps * scenario.tokens
        elif target.protocol == "grpc":
            row.fill(asyncio.run(loadgen.grpc_load(address, call, scenario.concurrency, p.duration, conns,
                                                   p.warmup, on_start=mark)))
        else:
            row.fill(asyncio.run(loadgen.http_load(address, call, scenario.concurrency, p.duration, p.warmup,
                                                   on_start=mark)))
    except Exception as exc:  # one failing target is a row that says so, not a dead run
        row.first_error = f"{type(exc).__name__}: {exc}"[:200]
        row.errors = max(row.errors, 1)
    if pid is not None and row.calls:
        row.cpu_us_per_call = (procs.cpu_seconds(pid) - cpu_at_start[0]) / row.calls * 1e6
        row.rss_mib = procs.rss_mib(pid)
    if target.paused_between and target.server is not None:
        target.server.pause()
    run.rows.append(row)
    report.print_row(row)
    return row


def soak(run: Run, target: Target) -> None:
    """RSS after `soak_first` unary calls, then after up to `soak_total` (within a time budget)."""
    assert target.server is not None
    p = run.profile
    call = Call("chat", target.provider, target.chat_model)
    first = asyncio.run(loadgen.grpc_load(target.server.address, call, p.high, 3600, p.connections,
                                          warmup=0, max_calls=p.soak_first))
    after_first = procs.rss_mib(target.server.pid)
    rest = asyncio.run(loadgen.grpc_load(target.server.address, call, p.high, p.soak_budget, p.connections,
                                         warmup=0, max_calls=p.soak_total - p.soak_first))
    after_total = procs.rss_mib(target.server.pid)
    calls = first.calls + rest.calls
    run.extras["soak"] = {
        "target": target.name, "first_calls": first.calls, "rss_after_first_mib": after_first,
        "total_calls": calls, "rss_after_total_mib": after_total,
        "errors": first.errors + rest.errors, "first_error": first.first_error or rest.first_error,
        "planned_total": p.soak_total,
    }
    print(f"  soak: RSS {after_first:.1f} MiB after {first.calls:,} calls, {after_total:.1f} MiB after "
          f"{calls:,} calls", flush=True)


def many_streams(run: Run, target: Target) -> None:
    assert target.server is not None
    server = target.server
    result = asyncio.run(loadgen.many_streams(
        server.address, target.provider, "slow-stream", run.profile.many_streams, timeout=60,
        rss=lambda: procs.rss_mib(server.pid),
    ))
    run.extras["many_streams"] = {"target": target.name, **asdict(result)}
    print(f"  {result.streams} streams: {result.got_first} got a first chunk, {result.completed} finished, "
          f"peak RSS {result.peak_rss_mib:.1f} MiB, in {result.elapsed:.1f} s", flush=True)


def idle_cpu_share(server: procs.Server, seconds: float = 2.0) -> float:
    before = procs.cpu_seconds(server.pid)
    time.sleep(seconds)
    return (procs.cpu_seconds(server.pid) - before) / seconds


def machine() -> dict[str, str]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cores": f"{os.cpu_count()} ({usable} usable by this process)",
        "cpu": model or platform.processor() or "unknown",
        "kernel": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "grpcio": grpc.__version__,
    }


@contextlib.contextmanager
def servers(run: Run, log_dir: Path, want_litellm: bool, workers_n: int) -> Iterator[dict[str, Target]]:
    started: list[procs.Server] = []
    try:
        upstream = procs.start("upstream", [sys.executable, str(HERE / "upstream.py")], "listening on", log_dir)
        started.append(upstream)
        run.extras["upstream_address"] = upstream.address
        bare = procs.start("bare", [sys.executable, str(HERE / "bare_server.py")], "listening on", log_dir)
        started.append(bare)
        gateways = {}
        for workers in (1, workers_n):
            config = log_dir / f"portico-{workers}.yaml"
            config.write_text(gateway_config(upstream.address, workers))
            gateways[workers] = procs.start(
                f"portico-{workers}w", [PORTICO, "serve", "--config", str(config), "--address", "127.0.0.1:0"],
                "listening on", log_dir)
            started.append(gateways[workers])
        one = gateways[1]
        run.extras["idle_rss_mib"] = {
            "bare grpc.aio": procs.rss_mib(bare.pid), "portico (1 worker)": procs.rss_mib(one.pid),
            f"portico ({workers_n} workers, all + supervisor)": procs.rss_mib(gateways[workers_n].pid),
        }
        targets = {
            "direct upstream": Target("direct upstream", "http", None, "", "bench-chat", "bench-embed"),
            "bare grpc.aio": Target("bare grpc.aio", "grpc", bare, "", "bare", "bare"),
            "portico fake": Target("portico fake", "grpc", one, "fake", "fake-chat", "fake-embed"),
            "portico openai": Target("portico openai", "grpc", one, "openai", "bench-chat", "bench-embed"),
            "portico anthropic": Target("portico anthropic", "grpc", one, "anthropic", "claude-bench", None),
            "portico gemini": Target("portico gemini", "grpc", one, "gemini", "gemini-bench",
                                     "gemini-embedding-001"),
            many_workers(workers_n): Target(many_workers(workers_n), "grpc", gateways[workers_n], "openai",
                                            "bench-chat", "bench-embed"),
        }
        if want_litellm:
            why = litellm_proxy.ensure_venv(log_dir / "litellm-install.log")
            if why is None:
                try:
                    proxy = litellm_proxy.start(upstream.address, log_dir)
                except Exception as exc:
                    why = f"could not start: {exc}"[:300]
                else:
                    started.append(proxy)
                    run.extras["idle_rss_mib"]["litellm proxy"] = procs.rss_mib(proxy.pid)  # type: ignore[index]
                    idle = idle_cpu_share(proxy)
                    run.notes.append(
                        f"LiteLLM proxy used {idle:.0%} of a core in the 2 s after it started. It is stopped "
                        "(SIGSTOP) except while it is measured, so that no background work of its own "
                        "(it was seen busy at about 40% of a core between measurements once) slows the "
                        "other targets down.")
                    print(run.notes[-1], flush=True)
                    proxy.pause()
                    targets["litellm proxy"] = Target("litellm proxy", "http", proxy, "", "bench-chat",
                                                      "bench-embed", paused_between=True)
            if why is not None:
                run.notes.append(f"LiteLLM proxy: unavailable ({why})")
                print(f"litellm: unavailable: {why}", flush=True)
        else:
            run.notes.append("LiteLLM proxy: not part of this run (--no-litellm / --smoke)")
            print(run.notes[-1], flush=True)
        yield targets
    finally:
        for server in reversed(started):
            server.stop()


def many_workers(n: int) -> str:
    return f"portico openai, {n} workers"


def workers_point(run: Run, targets: dict[str, Target], generators: list[str], n: int) -> None:
    """Unary Chat at high concurrency over 8 connections (SO_REUSEPORT spreads
    connections, not calls) against one worker and against N, one after the other."""
    scenario = Scenario(f"unary Chat, c={run.profile.high}, 8 connections", "chat", run.profile.high)
    report.print_heading(f"workers: {scenario.name}, 1 and {n} workers")
    scaling: dict[str, dict[str, float]] = {}
    for generator in generators:
        rates = []
        for name in ("portico openai", many_workers(n)):
            row = measure(run, scenario, targets[name], generator, connections=min(8, scenario.concurrency),
                          label="workers")
            rates.append(row.calls_per_s)
        scaling[generator] = {"one_worker_calls_per_s": rates[0], "n_workers_calls_per_s": rates[1],
                              "speed_up": rates[1] / rates[0] if rates[0] else math.nan}
        print(f"workers ({generator}): 1 worker {report.number(rates[0])} calls/s, {n} workers "
              f"{report.number(rates[1])} calls/s, x{report.number(scaling[generator]['speed_up'], 2)}", flush=True)
    run.extras["workers_scaling"] = {"workers": n, "cores": os.cpu_count() or 0, "by_generator": scaling}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="shorter runs and smaller counts")
    mode.add_argument("--smoke", action="store_true", help="every target once, tiny, no LiteLLM")
    parser.add_argument("--no-litellm", action="store_true", help="leave LiteLLM proxy out")
    parser.add_argument("--workers", type=int, default=2, metavar="N",
                        help="worker processes of the multi-worker point, measured beside one worker (default 2)")
    parser.add_argument("--out", type=Path, help="write the Markdown results here and the raw ones beside it "
                        "as .json (default bench/RESULTS.md and bench/results/latest.json; --smoke writes "
                        "none unless given)")
    args = parser.parse_args()
    if args.workers < 2:
        parser.error("--workers: the multi-worker point needs at least 2")
    profile_name = "smoke" if args.smoke else "quick" if args.quick else "full"
    run = Run(PROFILES[profile_name])
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    # 1,000 streams hold 1,000 upstream connections in the gateway and in the upstream.
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))
    generators = ["python"]
    if ghz.available():
        generators.append("ghz")
    else:
        run.notes.append(f"ghz: unavailable ({ghz.BINARY.relative_to(ROOT)} missing; run scripts/install-go-tools.sh)")
        print(run.notes[-1], flush=True)
    began = time.monotonic()
    info = machine()
    print("machine: " + ", ".join(f"{k} {v}" for k, v in info.items()), flush=True)
    with tempfile.TemporaryDirectory(prefix="portico-bench-") as tmp, \
            servers(run, Path(tmp), not (args.no_litellm or args.smoke), args.workers) as targets:
        main_targets = [t for name, t in targets.items() if name != many_workers(args.workers)]
        for scenario in scenarios(run.profile):
            report.print_heading(scenario.name)
            for target in main_targets:
                if scenario.kind == "embed" and target.embed_model is None:
                    continue
                for generator in generators:
                    if generator == "ghz" and (target.protocol != "grpc" or not scenario.ghz):
                        continue
                    measure(run, scenario, target, generator)
        workers_point(run, targets, generators, args.workers)
        report.print_heading(f"{run.profile.many_streams:,} concurrent streams to one provider")
        many_streams(run, targets["portico openai"])
        report.print_heading("memory over many calls")
        soak(run, targets["portico openai"])
    run.extras["seconds"] = time.monotonic() - began
    text = report.markdown(run.rows, run.extras, run.notes, info, profile_name, generators)
    print()
    print(text)
    if args.out is not None:
        out, raw = args.out, args.out.with_suffix(".json")
    elif not args.smoke:
        out, raw = HERE / "RESULTS.md", HERE / "results" / "latest.json"
    else:
        out = raw = None
    if out is not None and raw is not None:
        out.write_text(text)
        raw.parent.mkdir(exist_ok=True)
        raw.write_text(json.dumps(
            {"machine": info, "profile": profile_name, "rows": [asdict(r) for r in run.rows],
             "extras": run.extras, "notes": run.notes}, indent=2, default=str))
        print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

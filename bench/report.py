"""Result rows, the lines printed while the benchmark runs, and bench/RESULTS.md."""

from __future__ import annotations

import datetime
import math
from dataclasses import dataclass
from typing import Any

from loadgen import Sample, percentile

TIMES = "\u00d7"  # the multiplication sign, spelled out so linters do not take it for an x
BARE = "bare grpc.aio"
DIRECT = "direct upstream"
OPENAI = "portico openai"


@dataclass
class Row:
    scenario: str
    target: str
    generator: str
    calls: int = 0
    errors: int = 0
    first_error: str = ""
    calls_per_s: float = math.nan
    p50_ms: float = math.nan
    p99_ms: float = math.nan
    ttfc_p50_ms: float = math.nan
    ttfc_p99_ms: float = math.nan
    chunks_per_s: float = math.nan
    cpu_us_per_call: float = math.nan
    rss_mib: float = math.nan

    def fill(self, sample: Sample) -> None:
        self.calls, self.errors, self.first_error = sample.calls, sample.errors, sample.first_error
        if sample.elapsed > 0:
            self.calls_per_s = sample.calls / sample.elapsed
        self.p50_ms = percentile(sample.latencies, 0.5) * 1000
        self.p99_ms = percentile(sample.latencies, 0.99) * 1000
        if sample.first_chunk:
            self.ttfc_p50_ms = percentile(sample.first_chunk, 0.5) * 1000
            self.ttfc_p99_ms = percentile(sample.first_chunk, 0.99) * 1000
            if sample.elapsed > 0:
                self.chunks_per_s = sample.chunks / sample.elapsed

    @property
    def throughput(self) -> float:
        """What the scenario is about: chunks/s for streams, calls/s otherwise."""
        return self.chunks_per_s if not math.isnan(self.chunks_per_s) else self.calls_per_s


def number(value: float, digits: int = 0) -> str:
    """A figure for the console: "—" when it was not measured."""
    return _n(value, digits)


def _n(value: float, digits: int = 0, suffix: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:,.{digits}f}{suffix}"


def _ratio(value: float, base: float | None) -> str:
    if base is None or math.isnan(value) or math.isnan(base) or base == 0:
        return "—"
    return f"{value / base:.2f}{TIMES}"


def _added(value: float, base: float | None) -> str:
    if base is None or math.isnan(value) or math.isnan(base):
        return "—"
    return f"{value - base:+.2f}"


def print_heading(title: str) -> None:
    print(f"\n{title}", flush=True)


def print_row(row: Row) -> None:
    extra = ""
    if not math.isnan(row.chunks_per_s):
        extra = f"  chunks/s {row.chunks_per_s:>9,.0f}  1st chunk p50 {_n(row.ttfc_p50_ms, 2)} ms"
    error = f"  errors {row.errors}: {row.first_error}" if row.errors else ""
    print(f"  {row.target:28} {row.generator:6} {_n(row.calls_per_s):>8} calls/s  p50 {_n(row.p50_ms, 2):>7} ms"
          f"  p99 {_n(row.p99_ms, 2):>7} ms  CPU/call {_n(row.cpu_us_per_call):>7} µs{extra}{error}", flush=True)


def _find(rows: list[Row], scenario: str, target: str, generator: str) -> Row | None:
    for row in rows:
        if row.scenario == scenario and row.target == target and row.generator == generator and row.calls:
            return row
    return None


def _scenario_table(rows: list[Row], scenario: str) -> list[str]:
    mine = [r for r in rows if r.scenario == scenario]
    streams = any(not math.isnan(r.chunks_per_s) for r in mine)
    head = ["target", "load", "calls/s", "p50 ms", "p99 ms"]
    if streams:
        head += ["1st chunk p50 ms", "1st chunk p99 ms", "chunks/s"]
    head += [f"{TIMES} bare", "added p50 ms vs direct"]
    if streams:
        head += ["added 1st chunk ms vs direct"]
    head += ["CPU µs/call", f"CPU {TIMES} bare", "RSS MiB", "errors"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in mine:
        bare = _find(rows, scenario, BARE, row.generator)
        direct = _find(rows, scenario, DIRECT, "python") if row.generator == "python" else None
        cells = [row.target, row.generator, _n(row.calls_per_s), _n(row.p50_ms, 2), _n(row.p99_ms, 2)]
        if streams:
            cells += [_n(row.ttfc_p50_ms, 2), _n(row.ttfc_p99_ms, 2), _n(row.chunks_per_s)]
        cells += [_ratio(row.throughput, bare.throughput if bare else None),
                  _added(row.p50_ms, direct.p50_ms if direct else None)]
        if streams:
            cells += [_added(row.ttfc_p50_ms, direct.ttfc_p50_ms if direct else None)]
        cells += [_n(row.cpu_us_per_call), _ratio(row.cpu_us_per_call, bare.cpu_us_per_call if bare else None),
                  _n(row.rss_mib, 1),
                  f"{row.errors}: {row.first_error}" if row.errors else "0"]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _goals(rows: list[Row], extras: dict[str, Any], generators: list[str]) -> list[str]:
    gen = "ghz" if "ghz" in generators else "python"
    scen = {r.scenario for r in rows}
    high = next((s for s in scen if s.startswith("unary Chat, c=") and not s.endswith("=1")), "")
    out = ["| goal | measured | met |", "|---|---|---|"]

    def goal(text: str, measured: str, ok: bool | None) -> None:
        out.append(f"| {text} | {measured} | {'—' if ok is None else 'yes' if ok else '**no**'} |")

    def ratio(scenario: str, target: str, base: str, g: str, attr: str = "throughput") -> float | None:
        a, b = _find(rows, scenario, target, g), _find(rows, scenario, base, g)
        if a is None or b is None:
            return None
        av, bv = getattr(a, attr), getattr(b, attr)
        return None if math.isnan(av) or math.isnan(bv) or bv == 0 else av / bv

    def show(value: float | None, fmt: str) -> str:
        return "not measured" if value is None else fmt.format(value)

    r = ratio(high, OPENAI, BARE, gen)
    goal(f"unary Chat via OpenAI-compatible, {high.split(', ')[-1]}: ≥ 50% of bare ({gen})",
         show(r, "{:.0%}"), None if r is None else r >= 0.5)
    r = ratio(high, OPENAI, BARE, gen, "cpu_us_per_call")
    goal(f"gateway CPU per upstream unary call ≤ 2{TIMES} bare's ({gen})", show(r, "{:.2f}" + TIMES),
         None if r is None else r <= 2)
    a, d = _find(rows, "unary Chat, c=1", OPENAI, "python"), _find(rows, "unary Chat, c=1", DIRECT, "python")
    added = None if a is None or d is None else a.p50_ms - d.p50_ms
    goal("added latency at c=1, p50 ≤ 1 ms", show(added, "{:+.2f} ms"), None if added is None else added <= 1)
    a = _find(rows, "StreamChat 20 chunks, c=1", OPENAI, "python")
    d = _find(rows, "StreamChat 20 chunks, c=1", DIRECT, "python")
    added = None if a is None or d is None else a.ttfc_p50_ms - d.ttfc_p50_ms
    goal("added time to first chunk at c=1, p50 ≤ 1 ms", show(added, "{:+.2f} ms"),
         None if added is None else added <= 1)
    for chunks in (20, 200):
        s = next((x for x in scen if x.startswith(f"StreamChat {chunks} chunks, c=") and not x.endswith("=1")), "")
        r = ratio(s, OPENAI, BARE, gen)
        goal(f"chunks relayed/s, {chunks}-chunk streams: ≥ 60% of bare ({gen})", show(r, "{:.0%}"),
             None if r is None else r >= 0.6)
    s = next((x for x in scen if x.startswith("Embed")), "")
    r = ratio(s, OPENAI, BARE, "python")
    goal(f"Embed 16 {TIMES} 1,536 via OpenAI-compatible: ≥ 30% of bare (python)", show(r, "{:.0%}"),
         None if r is None else r >= 0.3)
    n = int((extras.get("workers_scaling") or {}).get("workers", 2))
    one, two = _find(rows, "workers", OPENAI, gen), _find(rows, "workers", f"{OPENAI}, {n} workers", gen)
    r = None if one is None or two is None else two.calls_per_s / one.calls_per_s
    # The goal is for two workers on two cores; with more workers it is shown, not judged.
    goal(f"--workers {n}: unary throughput ≥ 1.5{TIMES} one worker ({gen})", show(r, "{:.2f}" + TIMES),
         None if r is None or n != 2 else r >= 1.5)
    many = extras.get("many_streams")
    if many:
        # The upstream sends the first chunk as soon as a request reaches it, so the time
        # from the call's start includes any wait for an upstream connection.
        late = max(many["first_chunk"], default=math.inf)
        every = many["got_first"] == many["streams"]
        goal(f"{many['streams']:,} concurrent streams: every first chunk within 2 s of the upstream sending it "
             "(measured from the call's start)",
             f"{many['got_first']:,}/{many['streams']:,} got one; the latest {_n(late, 2)} s after the call began",
             every and late <= 2)
        goal(f"{many['streams']:,} concurrent streams: gateway RSS < 300 MiB", f"{many['peak_rss_mib']:.0f} MiB",
             many["peak_rss_mib"] < 300)
    idle = extras.get("idle_rss_mib", {}).get("portico (1 worker)")
    goal("idle RSS < 100 MiB", show(idle, "{:.0f} MiB"), None if idle is None else idle < 100)
    soak = extras.get("soak")
    if soak:
        r = soak["rss_after_total_mib"] / soak["rss_after_first_mib"]
        goal(f"RSS after {soak['total_calls']:,} calls within 10% of after {soak['first_calls']:,}",
             f"{soak['rss_after_first_mib']:.1f} → {soak['rss_after_total_mib']:.1f} MiB ({r - 1:+.1%})",
             r <= 1.10)
    return out


def markdown(rows: list[Row], extras: dict[str, Any], notes: list[str], machine: dict[str, str],
             profile: str, generators: list[str]) -> str:
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Benchmark results",
        "",
        f"`bench/run.py` ({profile} profile), {now}, {extras.get('seconds', 0):.0f} s. "
        "Every target ran on this machine in this one run, scenario by scenario. "
        "Load generators: " + " and ".join(generators) + ". "
        f"`{TIMES} bare` compares with the bare grpc.aio server under the same load generator (chunks/s for "
        "streams, calls/s otherwise); `added … vs direct` subtracts the upstream called directly over "
        "HTTP by the Python load generator. CPU is user + system time of the server's processes (all "
        "workers and the supervisor) over the measured window, divided by the calls it answered; RSS "
        "is theirs at the end of the window.",
        "",
        "## Machine",
        "",
        *(f"- {k}: {v}" for k, v in machine.items()),
        "",
    ]
    if notes:
        lines += ["## Notes", "", *(f"- {n}" for n in notes), ""]
    lines += ["## Goals", "", *_goals(rows, extras, generators), ""]
    lines += ["## Side by side", ""]
    for scenario in dict.fromkeys(r.scenario for r in rows):
        scaling = extras.get("workers_scaling") or {}
        title = f"`--workers {scaling.get('workers', 2)}` against one worker, unary Chat via OpenAI-compatible" \
            if scenario == "workers" else scenario
        lines += [f"### {title}", "", *_scenario_table(rows, scenario), ""]
        if scenario == "workers" and scaling:
            lines += [f"Throughput with {scaling['workers']} workers on {scaling['cores']} cores, against one "
                      "worker, in the same run:", "",
                      "| generator | 1 worker calls/s | N workers calls/s | speed-up |", "|---|---|---|---|"]
            lines += [f"| {generator} | {_n(figures['one_worker_calls_per_s'], 0)} | "
                      f"{_n(figures['n_workers_calls_per_s'], 0)} | x{_n(figures['speed_up'], 2)} |"
                      for generator, figures in scaling["by_generator"].items()]
            lines += [""]
    many = extras.get("many_streams")
    if many:
        first = many["first_chunk"]
        after = many["first_chunk_after_upstream"]
        lines += [
            f"## {many['streams']:,} concurrent streams to one provider ({many['target']})",
            "",
            "The upstream sends 20 chunks 100 ms apart; the first carries the time it was sent.",
            "",
            "| streams | got a first chunk | finished | errors | first chunk p50 / p99 / max (s, from the call) "
            "| first chunk after the upstream sent it, p50 / max (s) | peak RSS MiB | wall time s |",
            "|---|---|---|---|---|---|---|---|",
            f"| {many['streams']:,} | {many['got_first']:,} | {many['completed']:,} | {many['errors']:,}"
            f"{': ' + many['first_error'] if many['errors'] else ''} | "
            f"{_n(percentile(first, 0.5), 2)} / {_n(percentile(first, 0.99), 2)} / "
            f"{_n(max(first, default=math.nan), 2)} | "
            f"{_n(percentile(after, 0.5), 3)} / {_n(max(after, default=math.nan), 2)} | "
            f"{many['peak_rss_mib']:.1f} | {many['elapsed']:.1f} |",
            "",
        ]
    lines += ["## Memory", "", "| process | idle RSS MiB |", "|---|---|"]
    lines += [f"| {name} | {value:.1f} |" for name, value in extras.get("idle_rss_mib", {}).items()]
    soak = extras.get("soak")
    if soak:
        lines += [
            "",
            f"Unary Chat via OpenAI-compatible ({soak['target']}): RSS {soak['rss_after_first_mib']:.1f} MiB after "
            f"{soak['first_calls']:,} calls, {soak['rss_after_total_mib']:.1f} MiB after {soak['total_calls']:,} "
            f"calls (planned {soak['planned_total']:,}; the run stops at its time budget), "
            f"{soak['errors']} errors{': ' + soak['first_error'] if soak['errors'] else ''}.",
        ]
    return "\n".join(lines) + "\n"

"""What the metrics and the call log cost per call: a tight loop over the hooks the
servicer runs (observe.CallRecord), with the metrics in memory (one process) and in
prometheus-client's multiprocess files (workers), with and without the JSON call line.
Figures are CPU time of the process, so other work on the machine does not inflate them.

    python bench/observe_cost.py            # both modes, a few seconds each
    python bench/observe_cost.py --calls 20000

Each mode runs in a fresh process, since prometheus-client picks its storage when it is
first imported.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import time


def measure(calls: int, call_lines: bool) -> dict[str, float]:
    from portico.v1 import llm_service_pb2 as pb
    from portico.v1 import types_pb2 as t
    from portico_server import calllog, metrics
    from portico_server.domain import StreamChunk, Usage
    from portico_server.observe import CallRecord
    from portico_server.resilience.trace import Trace

    handler = logging.StreamHandler(open(os.devnull, "w"))  # noqa: SIM115  # lives as long as the process
    handler.setFormatter(calllog.JsonFormatter())
    calllog.CALLS.handlers = [handler]
    calllog.CALLS.propagate = False
    calllog.CALLS.setLevel(logging.INFO if call_lines else logging.WARNING)
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False  # as calllog.configure does
    metrics.configure(["smart"], [], [metrics.ProviderModels("fake", ("m1",))])
    request = pb.ChatRequest(model="smart", messages=[t.Message(role=t.ROLE_USER, content="hi")], tags={"a": "b"})
    response = pb.CompletionResponse(content="hello", provider="fake", model="m1",
                                     usage=t.Usage(prompt_token_count=12, completion_token_count=30))

    def unary() -> None:
        trace = Trace.begin()
        trace.active = True
        record = CallRecord("Chat", request, "req-1", trace)
        trace.ok("fake", "m1", 0.001, 0.0)
        record.answered(response)
        record.end()

    chunk = StreamChunk(content="abcd", provider="fake", model="m1")
    final = StreamChunk(is_final=True, usage=Usage(prompt_tokens=12, completion_tokens=30), provider="fake")

    def stream(chunks: int) -> None:
        trace = Trace.begin()
        trace.active = True
        record = CallRecord("StreamChat", request, "req-2", trace)
        for _ in range(chunks):
            record.chunk(chunk)
        record.chunk(final)
        trace.ok("fake", "m1", 0.001, 0.0)
        record.end()

    for _ in range(200):  # warm up: label children, caches
        unary()
        stream(10)
    started = time.process_time()
    for _ in range(calls):
        unary()
    per_unary = (time.process_time() - started) / calls
    started = time.process_time()
    for _ in range(calls // 10):
        stream(100)
    per_stream = (time.process_time() - started) / (calls // 10)
    started = time.process_time()
    for _ in range(calls // 10):
        stream(0)
    per_empty_stream = (time.process_time() - started) / (calls // 10)
    return {"unary_us": per_unary * 1e6, "stream_call_us": per_empty_stream * 1e6,
            "per_chunk_us": (per_stream - per_empty_stream) / 100 * 1e6}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--child", choices=["lines", "nolines"])
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.calls, args.child == "lines")))
        return 0
    print(f"{'mode':<34} {'unary µs':>9} {'stream µs':>10} {'chunk µs':>9}")
    for mode, multiprocess in (("one process", False), ("workers (multiprocess files)", True)):
        for lines in ("nolines", "lines"):
            env = dict(os.environ)
            with tempfile.TemporaryDirectory(prefix="portico-bench-metrics-") as directory:
                if multiprocess:
                    env["PROMETHEUS_MULTIPROC_DIR"] = directory
                else:
                    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
                out = subprocess.run([sys.executable, __file__, "--child", lines, "--calls", str(args.calls)],
                                     env=env, capture_output=True, text=True, check=True).stdout
            figures = json.loads(out)
            label = f"{mode}, {'with' if lines == 'lines' else 'without'} call line"
            print(f"{label:<34} {figures['unary_us']:>9.1f} {figures['stream_call_us']:>10.1f} "
                  f"{figures['per_chunk_us']:>9.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`bench/run.py --smoke`: every benchmark target and scenario still runs end to end.

Numbers are not asserted (this machine runs other things); only that each target answered
each scenario without errors and that the report was written. LiteLLM is left out of the
smoke run: it lives in its own virtual environment, created only by `make bench`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
GHZ = REPO / "tools" / "bin" / "ghz"
GRPC_TARGETS = ["bare grpc.aio", "portico fake", "portico openai", "portico anthropic", "portico gemini"]
NO_EMBEDDINGS = {"portico anthropic"}
#: Time to first chunk needs the Python load generator (ghz reports whole calls only), and
#: ghz itself is the bottleneck on large Embed replies.
PYTHON_ONLY = {"StreamChat 20 chunks, c=1", "Embed 16 x 1,536, c=4"}


def test_every_target_answers_every_scenario_of_the_smoke_run(tmp_path: Path) -> None:
    if not os.access(GHZ, os.X_OK):
        pytest.fail(f"{GHZ.relative_to(REPO)} is missing: run scripts/install-go-tools.sh", pytrace=False)
    out = tmp_path / "RESULTS.md"
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "run.py"), "--smoke", "--out", str(out)],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "LiteLLM proxy: not part of this run" in done.stdout
    results = json.loads(out.with_suffix(".json").read_text())
    rows = {(r["scenario"], r["target"], r["generator"]): r for r in results["rows"]}
    scenarios = {r["scenario"] for r in results["rows"]} - {"workers"}
    assert len(scenarios) == 6
    expected = set()
    for scenario in scenarios:
        for target in ["direct upstream", *GRPC_TARGETS]:
            if scenario.startswith("Embed") and target in NO_EMBEDDINGS:
                continue
            expected.add((scenario, target, "python"))
            if target != "direct upstream" and scenario not in PYTHON_ONLY:
                expected.add((scenario, target, "ghz"))
    for target in ("portico openai", "portico openai, 2 workers"):
        expected |= {("workers", target, "python"), ("workers", target, "ghz")}
    assert expected <= set(rows), sorted(expected - set(rows))
    failed = {key: (row["calls"], row["errors"], row["first_error"]) for key, row in rows.items()
              if row["calls"] == 0 or row["errors"]}
    assert failed == {}
    many = results["extras"]["many_streams"]
    assert many["completed"] == many["streams"] and many["errors"] == 0, many["first_error"]
    assert results["extras"]["soak"]["errors"] == 0
    scaling = results["extras"]["workers_scaling"]
    assert scaling["workers"] == 2 and set(scaling["by_generator"]) == {"python", "ghz"}
    assert all(f["one_worker_calls_per_s"] > 0 and f["n_workers_calls_per_s"] > 0
               for f in scaling["by_generator"].values())
    report = out.read_text()
    assert "## Goals" in report and "## Machine" in report

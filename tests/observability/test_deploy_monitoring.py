"""The alert rules and the Grafana dashboard under deploy/: valid for Prometheus's own
checker, each alert acted out by `promtool test rules`, and every query about series the
gateway exposes."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import yaml
from portico_server import metrics
from prometheus_client.metrics import MetricWrapperBase

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
ALERT_TESTS = DEPLOY / "prometheus" / "alerts_test.yml"
DASHBOARD = DEPLOY / "grafana" / "portico-dashboard.json"
#: Set by the caller-key slice of the gateway (auth.py), not by metrics.py.
OTHER_MODULES = {"portico_caller_budget_used_ratio"}
_METRIC = re.compile(r"\b(?:gen_ai|portico)_[a-z_]+\b")
_SUFFIXES = ("_bucket", "_count", "_sum", "_total")


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("promtool")
    assert tool, "promtool is missing: scripts/install-debian-packages.sh installs it (Debian package prometheus)"
    return subprocess.run([tool, *args], capture_output=True, text=True, timeout=60, check=False)


def exposed_names() -> set[str]:
    return {m._name for m in vars(metrics).values() if isinstance(m, MetricWrapperBase)}


def label_names() -> set[str]:
    return {label for m in vars(metrics).values() if isinstance(m, MetricWrapperBase) for label in m._labelnames}


def base_name(series: str) -> str:
    for suffix in _SUFFIXES:
        if series.endswith(suffix) and series != "gen_ai_client_token_usage":
            return series.removesuffix(suffix)
    return series


def dashboard_queries() -> list[str]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [target["expr"] for panel in panels for target in panel.get("targets", [])]


def test_the_alert_rules_pass_promtool_check_rules() -> None:
    result = promtool("check", "rules", str(ALERTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 3 rules found" in result.stdout


def test_each_alert_fires_on_its_series_and_stays_quiet_otherwise() -> None:
    result = promtool("test", "rules", str(ALERT_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr
    tested = {case["alertname"] for test in yaml.safe_load(ALERT_TESTS.read_text())["tests"]
              for case in test["alert_rule_test"]}
    defined = {rule["alert"] for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]}
    assert tested == defined == {"PorticoHighErrorRate", "PorticoBreakerOpen", "PorticoCallerBudgetNearlySpent"}


def test_every_dashboard_query_is_valid_promql(tmp_path: Path) -> None:
    """Grafana's variables put in as Prometheus would see them, each query becomes a
    recording rule, and promtool parses them all."""
    queries = dashboard_queries()
    assert len(queries) >= 15
    rules = [{"record": f"portico:dashboard:query{i}",
              "expr": q.replace("$__rate_interval", "5m").replace("$job", ".*")} for i, q in enumerate(queries)]
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = promtool("check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_dashboard_and_alerts_show_exactly_the_series_the_gateway_exposes() -> None:
    labels = label_names()
    used = {base_name(name) for q in dashboard_queries() for name in _METRIC.findall(q) if name not in labels}
    alerted = {base_name(name) for name in _METRIC.findall(ALERTS.read_text())
               if not name.startswith("portico_upstream_attempts")}  # named in prose there
    exposed = exposed_names()
    assert used - OTHER_MODULES <= exposed, used - exposed
    assert alerted - OTHER_MODULES <= exposed, alerted - exposed
    assert exposed - used == set(), "a metric without a panel"

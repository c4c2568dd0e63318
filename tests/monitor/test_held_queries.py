"""The monitor's instant queries, evaluated by the real PromQL engine (`promtool test rules`,
`promql_expr_test`): the subquery that makes a breach count only once it held for the rule's `for:`."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from compiler.manifest.load import load_manifest
from compiler.manifest.quantities import parse_duration
from compiler.manifest.repo_config import Monitoring
from compiler.monitoring.metrics_source import held_query
from compiler.monitoring.rules import rollback_rules

REPO_ROOT = Path(__file__).resolve().parents[2]
PROMTOOL = shutil.which("promtool")
pytestmark = pytest.mark.skipif(PROMTOOL is None, reason="promtool is not installed (Debian package 'prometheus'; scripts/test installs it in CI)")


def _held(rule) -> str:
    return held_query(rule.query, rule.lower_breaches, parse_duration(rule.hold), Monitoring().monitor_step)


def _run(tmp_path: Path, series: list[dict], checks: list[dict]) -> subprocess.CompletedProcess:
    (tmp_path / "empty.rules.yaml").write_text("groups: []\n")
    test = {"rule_files": ["empty.rules.yaml"], "evaluation_interval": "1m",
            "tests": [{"interval": "1m", "input_series": series, "promql_expr_test": checks}]}
    with (tmp_path / "test.yaml").open("w") as handle:
        YAML(typ="safe", pure=True).dump(test, handle)
    return subprocess.run([PROMTOOL, "test", "rules", "test.yaml"], cwd=tmp_path, capture_output=True, text=True)


def test_held_queries_see_a_sustained_breach_and_ignore_a_short_spike(tmp_path):
    manifest = load_manifest(REPO_ROOT / "manifests" / "minilm-stsb.yaml").manifest
    rules = {r.name: r for r in rollback_rules(manifest, Monitoring())}
    sel = 'model="minilm-stsb"'
    series = [
        # quality: healthy 0.86 for 16 minutes, then 0.70 (a breach) for the last 4: shorter than for: 10m
        {"series": f"quantgate_model_quality{{{sel}}}", "values": "0.86x15 0.70x4"},
        # errors: 30 of 1000 requests a minute fail all along (0.03 > 0.02) -> held
        {"series": f"quantgate_requests_total{{{sel}}}", "values": "0+1000x20"},
        {"series": f"quantgate_requests_failed_total{{{sel}}}", "values": "0+30x20"},
        # latency: every request in the bucket le=0.2s (p95 = 190 ms > 150 ms) -> held
        {"series": f'quantgate_request_duration_seconds_bucket{{{sel},le="0.2"}}', "values": "0+100x20"},
        {"series": f'quantgate_request_duration_seconds_bucket{{{sel},le="+Inf"}}', "values": "0+100x20"},
    ]
    checks = [
        # The best quality in the last 10m is still the healthy 0.86: not (yet) a breach.
        {"expr": _held(rules["quality_floor"]), "eval_time": "19m", "exp_samples": [{"labels": f"{{{sel}}}", "value": 0.86}]},
        {"expr": _held(rules["error_rate_ceiling"]), "eval_time": "19m", "exp_samples": [{"labels": "{}", "value": 0.03}]},
        {"expr": _held(rules["latency_p95_ms"]), "eval_time": "19m", "exp_samples": [{"labels": "{}", "value": 190}]},
    ]
    done = _run(tmp_path, series, checks)
    assert done.returncode == 0, done.stdout + done.stderr
    assert rules["quality_floor"].breached(0.86) is False
    assert rules["error_rate_ceiling"].breached(0.03) and rules["latency_p95_ms"].breached(190)


def test_held_query_expectations_can_fail(tmp_path):
    """The harness is not vacuous: a wrong expected value fails promtool."""
    manifest = load_manifest(REPO_ROOT / "manifests" / "minilm-stsb.yaml").manifest
    rule = next(r for r in rollback_rules(manifest, Monitoring()) if r.name == "quality_floor")
    series = [{"series": 'quantgate_model_quality{model="minilm-stsb"}', "values": "0.70x20"}]
    checks = [{"expr": _held(rule), "eval_time": "19m", "exp_samples": [{"labels": '{model="minilm-stsb"}', "value": 0.86}]}]
    done = _run(tmp_path, series, checks)
    assert done.returncode != 0 and "got: {model=\"minilm-stsb\"} 7E-01" in done.stdout + done.stderr

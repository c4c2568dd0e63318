"""`quantgate monitor` against a Prometheus-API-shaped server on loopback and real git repositories."""

from __future__ import annotations

import json
import socket

import pytest

from compiler.cli import main
from compiler.clients.git import BOT_EMAIL, BOT_NAME
from compiler.monitoring.serving import read_serving

from .conftest import BREACH, git

RULES = ("quality_floor", "error_rate_ceiling", "latency_p95_ms")
THRESHOLDS = {"quality_floor": "0.78", "error_rate_ceiling": "0.02", "latency_p95_ms": "150"}


def commits(repo) -> int:
    return int(git(repo, "rev-list", "--count", "HEAD"))


def monitor(repo, *args: str) -> int:
    return main(["monitor", str(repo / "manifests" / "demo.yaml"), *args])


@pytest.mark.parametrize("rule", RULES)
def test_breach_of_each_rule_flips_the_flag_in_one_commit(deployed, prometheus, rule, capsys):
    prometheus.values[rule] = BREACH[rule]
    before = commits(deployed)
    assert monitor(deployed, "--prometheus", prometheus.url) == 1
    assert commits(deployed) == before + 1
    serving = read_serving(deployed / "manifests" / "demo.serving.yaml")
    assert serving["active"] == "full-precision"
    assert serving["rollback"]["rule"] == rule and serving["rollback"]["observed"] == BREACH[rule]
    assert serving["artifacts"]["quantized"]["sha256"] == "a" * 64  # the quantized artifact stays deployed
    message = git(deployed, "log", "-1", "--format=%B")
    subject = message.splitlines()[0]
    assert rule in subject and repr(BREACH[rule]).removesuffix(".0") in subject and THRESHOLDS[rule] in subject
    # Exactly the flag changed; the working tree is clean.
    assert git(deployed, "show", "--name-only", "--format=", "HEAD").splitlines() == ["manifests/demo.serving.yaml"]
    assert git(deployed, "status", "--porcelain") == ""
    assert "rolled-back" in capsys.readouterr().out
    # The one bot identity of every quantgate commit (compiler.clients.git), even where git has a user.
    assert git(deployed, "log", "-1", "--format=%an <%ae>|%cn <%ce>") == f"{BOT_NAME} <{BOT_EMAIL}>|{BOT_NAME} <{BOT_EMAIL}>"


def test_second_breach_report_makes_no_second_commit(deployed, prometheus):
    prometheus.values["latency_p95_ms"] = BREACH["latency_p95_ms"]
    assert monitor(deployed, "--prometheus", prometheus.url) == 1
    after_first = git(deployed, "rev-parse", "HEAD")
    prometheus.values["quality_floor"] = BREACH["quality_floor"]
    assert monitor(deployed, "--prometheus", prometheus.url) == 1
    assert git(deployed, "rev-parse", "HEAD") == after_first
    assert git(deployed, "status", "--porcelain") == ""


def test_healthy_metrics_change_nothing(deployed, prometheus, capsys):
    head = git(deployed, "rev-parse", "HEAD")
    assert monitor(deployed, "--prometheus", prometheus.url) == 0
    assert git(deployed, "rev-parse", "HEAD") == head and git(deployed, "status", "--porcelain") == ""
    assert "healthy" in capsys.readouterr().out
    assert len(prometheus.queries) == 3


def test_queries_require_the_breach_to_hold_for_its_for_duration(deployed, prometheus):
    monitor(deployed, "--prometheus", prometheus.url)
    quality = next(q for q in prometheus.queries if "quantgate_model_quality" in q)
    errors = next(q for q in prometheus.queries if "requests_failed" in q)
    # A floor breached for 10m: even the best value in the window was below it.
    assert quality == 'max_over_time((quantgate_model_quality{model="demo"})[600s:1m])'
    assert errors.startswith("min_over_time((sum(rate(") and errors.endswith(")[300s:1m])")


def test_worst_series_counts(deployed, prometheus):
    body = {"status": "success", "data": {"resultType": "vector", "result": [
        {"metric": {"pod": "a"}, "value": [1.0, "0.85"]},
        {"metric": {"pod": "b"}, "value": [1.0, "0.70"]},
        {"metric": {"pod": "c"}, "value": [1.0, "NaN"]},
    ]}}
    prometheus.raw["quality_floor"] = (200, json.dumps(body))
    assert monitor(deployed, "--prometheus", prometheus.url) == 1
    assert read_serving(deployed / "manifests" / "demo.serving.yaml")["rollback"]["observed"] == 0.7


def test_no_data_is_not_a_breach_unless_required(deployed, prometheus, capsys):
    prometheus.raw["latency_p95_ms"] = (200, json.dumps({"status": "success", "data": {"resultType": "vector", "result": []}}))
    head = git(deployed, "rev-parse", "HEAD")
    assert monitor(deployed, "--prometheus", prometheus.url) == 0
    assert "latency_p95_ms: no data" in capsys.readouterr().out
    assert monitor(deployed, "--prometheus", prometheus.url, "--require-data") == 3
    assert git(deployed, "rev-parse", "HEAD") == head


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unreachable_endpoint_changes_nothing_and_says_so(deployed, capsys):
    head = git(deployed, "rev-parse", "HEAD")
    before = (deployed / "manifests" / "demo.serving.yaml").read_bytes()
    assert monitor(deployed, "--prometheus", f"http://127.0.0.1:{_closed_port()}", "--timeout", "2") == 3
    err = capsys.readouterr().err
    assert "cannot reach Prometheus http://127.0.0.1:" in err and "Traceback" not in err
    assert git(deployed, "rev-parse", "HEAD") == head
    assert (deployed / "manifests" / "demo.serving.yaml").read_bytes() == before


MALFORMED = {
    "not json": (200, "<html>502 Bad Gateway</html>"),
    "prometheus error": (400, json.dumps({"status": "error", "errorType": "bad_data", "error": "parse error at char 7"})),
    "server error": (503, "service unavailable"),
    "range vector": (200, json.dumps({"status": "success", "data": {"resultType": "matrix", "result": [{"metric": {}, "values": [[1, "0.1"]]}]}})),
    "value not a number": (200, json.dumps({"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}, "value": [1, "lots"]}]}})),
    "value missing": (200, json.dumps({"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}}]}})),
    "no data object": (200, json.dumps({"status": "success"})),
    "not an API response": (200, json.dumps([0.5])),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_response_changes_nothing(deployed, prometheus, case, capsys):
    # The malformed answer comes last, after a breach was already seen: still no flip.
    prometheus.values["quality_floor"] = BREACH["quality_floor"]
    prometheus.raw["latency_p95_ms"] = MALFORMED[case]
    head = git(deployed, "rev-parse", "HEAD")
    assert monitor(deployed, "--prometheus", prometheus.url) == 3
    err = capsys.readouterr().err
    assert "latency_p95_ms" in err and "Traceback" not in err
    assert git(deployed, "rev-parse", "HEAD") == head and git(deployed, "status", "--porcelain") == ""


def test_prometheus_error_detail_is_shown(deployed, prometheus, capsys):
    prometheus.raw["quality_floor"] = MALFORMED["prometheus error"]
    assert monitor(deployed, "--prometheus", prometheus.url) == 3
    assert "HTTP 400: bad_data: parse error at char 7" in capsys.readouterr().err


def test_snapshot_breach_and_healthy(deployed, tmp_path):
    snapshot = tmp_path / "metrics.json"
    snapshot.write_text(json.dumps({"quality_floor": 0.9, "error_rate_ceiling": 0.001, "latency_p95_ms": None}))
    head = git(deployed, "rev-parse", "HEAD")
    assert monitor(deployed, "--snapshot", str(snapshot)) == 0
    assert git(deployed, "rev-parse", "HEAD") == head
    snapshot.write_text(json.dumps({"error_rate_ceiling": 0.05}))
    assert monitor(deployed, "--snapshot", str(snapshot)) == 1
    assert "error_rate_ceiling 0.05 > 0.02" in git(deployed, "log", "-1", "--format=%s")


@pytest.mark.parametrize("content", ['{"qualty_floor": 0.5}', "[1, 2]", "{not json", '{"latency_p95_ms": "fast"}'])
def test_malformed_snapshot_changes_nothing(deployed, tmp_path, content, capsys):
    snapshot = tmp_path / "metrics.json"
    snapshot.write_text(content)
    head = git(deployed, "rev-parse", "HEAD")
    assert monitor(deployed, "--snapshot", str(snapshot)) == 3
    assert "Traceback" not in capsys.readouterr().err
    assert git(deployed, "rev-parse", "HEAD") == head


def test_dry_run_reports_and_changes_nothing(deployed, prometheus):
    prometheus.values["quality_floor"] = BREACH["quality_floor"]
    head = git(deployed, "rev-parse", "HEAD")
    assert monitor(deployed, "--prometheus", prometheus.url, "--dry-run") == 1
    assert git(deployed, "rev-parse", "HEAD") == head and git(deployed, "status", "--porcelain") == ""


def test_other_staged_changes_stay_out_of_the_rollback_commit(deployed, prometheus):
    (deployed / "notes.txt").write_text("work in progress\n")
    git(deployed, "add", "notes.txt")
    prometheus.values["quality_floor"] = BREACH["quality_floor"]
    assert monitor(deployed, "--prometheus", prometheus.url) == 1
    assert git(deployed, "show", "--name-only", "--format=", "HEAD").splitlines() == ["manifests/demo.serving.yaml"]
    assert git(deployed, "diff", "--cached", "--name-only") == "notes.txt"


def test_missing_serving_file_is_built_from_the_lock_and_committed(deployed, prometheus):
    git(deployed, "rm", "--quiet", "manifests/demo.serving.yaml")
    git(deployed, "commit", "--quiet", "-m", "no flag yet")
    prometheus.values["error_rate_ceiling"] = BREACH["error_rate_ceiling"]
    assert monitor(deployed, "--prometheus", prometheus.url) == 1
    serving = read_serving(deployed / "manifests" / "demo.serving.yaml")
    assert serving["active"] == "full-precision" and serving["artifacts"]["quantized"]["sha256"] == "a" * 64
    assert git(deployed, "status", "--porcelain") == ""


def test_outside_a_git_repository_nothing_is_written(deployed, tmp_path):
    import shutil

    shutil.rmtree(deployed / ".git")
    snapshot = tmp_path / "metrics.json"
    snapshot.write_text(json.dumps({"quality_floor": 0.5}))
    before = (deployed / "manifests" / "demo.serving.yaml").read_bytes()
    assert monitor(deployed, "--snapshot", str(snapshot)) == 4
    assert (deployed / "manifests" / "demo.serving.yaml").read_bytes() == before

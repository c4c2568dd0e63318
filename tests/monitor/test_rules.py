"""Prometheus alerting rules compiled from rollback:, checked and unit-tested by the real promtool."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from compiler.cli import main
from compiler.discover import manifest_paths
from compiler.manifest.load import load_manifest
from compiler.manifest.repo_config import Monitoring
from compiler.monitoring import rules

from .conftest import git, manifest_text

REPO_ROOT = Path(__file__).resolve().parents[2]
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool is not installed (Debian package 'prometheus'; scripts/test installs it in CI)")
DEMOS = manifest_paths(REPO_ROOT)


def test_there_are_demo_manifests():
    assert any(p.name == "minilm-stsb.yaml" for p in DEMOS)


@needs_promtool
@pytest.mark.parametrize("manifest_path", DEMOS, ids=[p.stem for p in DEMOS])
def test_demo_rules_pass_promtool_check_and_test(manifest_path):
    manifest, monitoring, compiled = rules.build_rules(manifest_path, REPO_ROOT)
    tests = rules.synthetic_tests(manifest, compiled, monitoring)
    assert rules.promtool_check(rules.dump_rules(compiled), tests, PROMTOOL) == []
    # The synthetic series really exercise every rule the manifest sets.
    fired = [t["alertname"] for t in tests["tests"][0]["alert_rule_test"] if t["exp_alerts"]]
    assert len(fired) == len(rules.rollback_rules(manifest, monitoring)) == len(compiled["groups"][0]["rules"])


def test_one_alert_per_rule_with_owners_thresholds_and_for():
    manifest = load_manifest(REPO_ROOT / "manifests" / "minilm-stsb.yaml").manifest
    compiled = rules.compile_rules(manifest, Monitoring(), "https://example.com/lock", "manifests/minilm-stsb.yaml")
    (group,) = compiled["groups"]
    alerts = {a["labels"]["rollback_rule"]: a for a in group["rules"]}
    assert set(alerts) == {"quality_floor", "error_rate_ceiling", "latency_p95_ms"}
    assert alerts["quality_floor"]["expr"] == '(quantgate_model_quality{model="minilm-stsb"}) < 0.78'
    assert alerts["error_rate_ceiling"]["expr"].endswith(") > 0.02")
    assert alerts["latency_p95_ms"]["expr"].endswith(" * 1000) > 150")
    assert [alerts[r]["for"] for r in rules.RULES] == ["10m", "5m", "5m"]
    for alert in alerts.values():
        assert alert["labels"]["manifest"] == "minilm-stsb"
        assert alert["labels"]["on_call"] == "@acme/ml-oncall"
        assert alert["labels"]["product_owner"] == "@product-lead"
        assert alert["annotations"]["lock"] == "https://example.com/lock"


@needs_promtool
def test_promtool_test_catches_rules_that_do_not_match_the_manifest():
    """The synthetic test is not vacuous: rules compiled with a different threshold fail it."""
    manifest = load_manifest(REPO_ROOT / "manifests" / "minilm-stsb.yaml").manifest
    compiled = rules.compile_rules(manifest, Monitoring(), "l", "m")
    tests = rules.synthetic_tests(manifest, compiled)
    for alert in compiled["groups"][0]["rules"]:
        if alert["labels"]["rollback_rule"] == "latency_p95_ms":
            alert["expr"] = alert["expr"].replace("> 150", "> 1500")
    failures = rules.promtool_check(rules.dump_rules(compiled), tests, PROMTOOL)
    assert len(failures) == 1 and "QuantgateLatencyP95" in failures[0]


@needs_promtool
def test_promtool_check_rejects_bad_promql():
    failures = rules.promtool_check("groups:\n- name: x\n  rules:\n  - alert: A\n    expr: rate(x[5m]\n", None, PROMTOOL)
    assert failures and "check rules" in failures[0]


def _repo(tmp_path: Path, text: str, config: str | None = None) -> Path:
    repo = tmp_path / "repo"
    (repo / "manifests").mkdir(parents=True)
    git(repo, "init", "--quiet", "-b", "main")
    (repo / "manifests" / "demo.yaml").write_text(text)
    if config is not None:
        (repo / "quantgate.yaml").write_text(config)
    return repo


def test_write_rules_is_deterministic_and_writes_only_on_change(tmp_path, capsys):
    repo = _repo(tmp_path, manifest_text())
    manifest = repo / "manifests" / "demo.yaml"
    assert main(["rules", str(manifest)]) == 0
    target = repo / "manifests" / "demo.rules.yaml"
    first, mtime = target.read_bytes(), target.stat().st_mtime_ns
    assert main(["rules", str(manifest)]) == 0
    assert target.read_bytes() == first and target.stat().st_mtime_ns == mtime
    assert capsys.readouterr().out.splitlines()[-1].startswith("unchanged")
    manifest.write_text(manifest_text(rollback="rollback: {quality_floor: 0.8, for: {quality_floor: 30m}}"))
    assert main(["rules", str(manifest)]) == 0
    doc = YAML(typ="safe").load(target.read_text())
    (alert,) = doc["groups"][0]["rules"]
    assert alert["expr"].endswith("< 0.8") and alert["for"] == "30m"


def test_lower_is_better_quality_floor_breaches_upwards(tmp_path):
    text = manifest_text(rollback="rollback: {quality_floor: 25.0}", metric="pearson")
    text = text.replace("metric: pearson", "metric: perplexity").replace("task: sentence-similarity", "task: causal-lm")
    text = text.replace("columns: {score: 4, text_a: 5, text_b: 6}", "columns: {prompt: 5, completion: 6}")
    repo = _repo(tmp_path, text)
    manifest, monitoring, compiled = rules.build_rules(repo / "manifests" / "demo.yaml")
    (alert,) = compiled["groups"][0]["rules"]
    assert alert["expr"].endswith(") > 25")
    if PROMTOOL:
        assert rules.promtool_check(rules.dump_rules(compiled), rules.synthetic_tests(manifest, compiled), PROMTOOL) == []


def test_queries_selector_and_lock_link_come_from_repo_config(tmp_path):
    config = (
        "monitoring:\n"
        "  selector: 'service=\"$name\", env=\"prod\"'\n"
        "  quality_expr: avg(search_quality{$selector})\n"
        "  severity: ticket\n"
        "  repository_url: https://github.com/acme/models/\n"
    )
    repo = _repo(tmp_path, manifest_text(rollback="rollback: {quality_floor: 0.5}"), config)
    git(repo, "remote", "add", "origin", "git@example.com:other/clone.git")  # never used for links
    manifest, monitoring, compiled = rules.build_rules(repo / "manifests" / "demo.yaml")
    (alert,) = compiled["groups"][0]["rules"]
    assert alert["expr"] == '(avg(search_quality{service="demo", env="prod"})) < 0.5'
    assert alert["labels"]["severity"] == "ticket"
    assert alert["annotations"]["lock"] == "https://github.com/acme/models/blob/main/manifests/demo.lock.yaml"
    with pytest.raises(ValueError):
        rules.synthetic_tests(manifest, compiled, monitoring)


def test_bad_placeholder_in_repo_config_is_a_located_error(tmp_path, capsys):
    repo = _repo(tmp_path, manifest_text(), "monitoring:\n  quality_expr: q{$selectr}\n")
    assert main(["rules", str(repo / "manifests" / "demo.yaml")]) == 2
    err = capsys.readouterr().err
    assert "monitoring.quality_expr" in err and "$selector" in err
    assert not (repo / "manifests" / "demo.rules.yaml").exists()


@needs_promtool
def test_no_rollback_rules_gives_an_empty_group_promtool_accepts(tmp_path):
    repo = _repo(tmp_path, manifest_text(rollback="rollback: {}"))
    assert main(["rules", str(repo / "manifests" / "demo.yaml"), "--check"]) == 0
    doc = YAML(typ="safe").load((repo / "manifests" / "demo.rules.yaml").read_text())
    assert doc == {"groups": [{"name": "quantgate-demo", "rules": []}]}


@pytest.mark.parametrize("manifest_path", DEMOS, ids=[p.stem for p in DEMOS])
def test_committed_rules_are_up_to_date(manifest_path):
    """A rules file in the repository is what `quantgate rules` writes today (regenerate if not)."""
    target = manifest_path.with_name(manifest_path.name.rsplit(".", 1)[0] + ".rules.yaml")
    if not target.exists():
        pytest.skip(f"{target.name} not generated")
    _, _, compiled = rules.build_rules(manifest_path, REPO_ROOT)
    assert target.read_text() == rules.dump_rules(compiled), f"run: quantgate rules {manifest_path.relative_to(REPO_ROOT)}"

"""Checks beyond types, each reported at the key it is about: cross-field rules in the manifest
model, and repository rules (files, model directory, trust allowlist, unique names)."""

from __future__ import annotations

import os

import pytest
from manifest_support import validate, write


def _first(err: str) -> str:
    return err.splitlines()[0]


def _run(repo, capsys, text, name="m.yaml"):
    write(repo, text, name)
    return validate(capsys, "--root", str(repo), str(repo / "manifests" / name))


CROSS_FIELD = {
    "close-margin": (("close_margin: 0.03", "close_margin: 0.005"),
                     "manifests/m.yaml:48:17: gate.close_margin: 0.005 must be at least max_drop (0.01)"),
    "qat-justification": (("qat: {enabled: false}", "qat: {enabled: true}"),
                          "manifests/m.yaml:50:1: qat.justification: QAT is a training run: enabling it needs a written justification"),
    "qat-manager": (('  engineering_manager: ["@eng-manager"]\n', ""),
                    None),  # qat disabled: no manager needed -> valid
    "metric-task": (("metric: spearman", "metric: perplexity"),
                    "manifests/m.yaml:25:11: evaluation.metric: 'perplexity' does not apply to task 'sentence-similarity'; use one of spearman, pearson"),
    "columns-task": (("columns: {score: 4, text_a: 5, text_b: 6}\n  metric", "columns: {score: 4, text_a: 5}\n  metric"),
                     "manifests/m.yaml:24:14: evaluation.dataset.columns: task 'sentence-similarity' needs column text_b"),
    "column-role": (("columns: {score: 4, text_a: 5, text_b: 6}\n  metric", "columns: {score: 4, text_a: 5, text_b: 6, label: 1}\n  metric"),
                    "manifests/m.yaml:24:47: evaluation.dataset.columns.label: unknown column role 'label' for task 'sentence-similarity'; roles: score, text_a, text_b, id"),
    "stride-not-text": (("hardest_fraction: 0.10", "hardest_fraction: 0.10\n  stride: 64"),
                        "manifests/m.yaml:27:11: evaluation.stride: stride applies to causal-lm evaluation on format text only"),
    "ml-engineer": (('  ml_engineer: ["@ml-eng"]\n', "  ml_engineer: []\n"),
                    "manifests/m.yaml:10:16: owners.ml_engineer: needs at least one owner: ml_engineer signs baseline, ptq, gate, lock, mixed_precision"),
    "product-owner": (('  product_owner: ["@product-lead"]\n', ""),
                      "manifests/m.yaml:9:1: owners.product_owner: needs at least one owner: product_owner signs gate, lock, monitor"),
    "platform-lead": (('  platform_lead: ["@platform-eng"]\n', ""),
                      "manifests/m.yaml:9:1: owners.platform_lead: needs at least one owner: platform_lead signs envelope"),
    "on-call": (('  on_call: ["@acme/ml-oncall"]\n', ""),
                "manifests/m.yaml:9:1: owners.on_call: needs at least one owner: on_call signs monitor (rollback has rules)"),
    "owner-format": (('["@ml-eng"]', '["ml-eng"]'),
                     "manifests/m.yaml:10:17: owners.ml_engineer[0]: 'ml-eng' is not a GitHub login ('@alice') or team ('@org/team') (add the '@')"),
    "hub-without-revision": (("source: ./models/all-MiniLM-L6-v2", "source: sentence-transformers/all-MiniLM-L6-v2"),
                             "manifests/m.yaml:17:11: model.source: a hub model needs 'revision:' with a pinned 40-hex commit sha"),
    "hub-branch-revision": (("source: ./models/all-MiniLM-L6-v2", "source: sentence-transformers/all-MiniLM-L6-v2\n  revision: main"),
                            "manifests/m.yaml:18:13: model.revision: 'main' is not a full 40-hex commit sha (branch and tag names move)"),
    "absolute-data": (("path: data/stsb/sts-test.tsv", "path: /etc/passwd"),
                      "manifests/m.yaml:22:11: evaluation.dataset.path: '/etc/passwd' is absolute; use a path relative to the repository root"),
    "dotdot-data": (("path: data/stsb/sts-test.tsv", "path: data/../../secret.tsv"),
                    "manifests/m.yaml:22:11: evaluation.dataset.path: 'data/../../secret.tsv' leaves the repository ('..'); data and models must live inside it"),
    "dotdot-model": (("source: ./models/all-MiniLM-L6-v2", "source: ./../models"),
                     "manifests/m.yaml:17:11: model.source: '../models' leaves the repository ('..'); data and models must live inside it"),
    "glob": (("protected_layers: []", 'protected_layers: ["pooler.*", "encoder.layer.[0-"]'),
             "manifests/m.yaml:44:34: quantization.protected_layers[1]: 'encoder.layer.[0-': '[' is never closed"),
    "group-size": (("backend: auto", "backend: auto\n  group_size: 48"),
                   "manifests/m.yaml:38:15: quantization.group_size: 48 is not a power of two of at least 8 (e.g. 32, 64, 128)"),
    "duration": (("latency_p95_ms: 150}", "latency_p95_ms: 150, for: {quality_floor: 10 minutes}}"),
                 "manifests/m.yaml:51:101: rollback.for.quality_floor: '10 minutes' is not a duration like '5m', '1h30m' or '30s'"),
    "name": (("name: minilm-stsb", "name: MiniLM_STSB"),
             "manifests/m.yaml:7:9: metadata.name: 'MiniLM_STSB': a name is 1-63 lowercase letters, digits or '-', starting and ending with a letter or digit"),
}


@pytest.mark.parametrize("case", sorted(CROSS_FIELD))
def test_cross_field(case, repo, demo_text, capsys):
    (old, new), expected = CROSS_FIELD[case]
    assert old in demo_text
    code, _, err = _run(repo, capsys, demo_text.replace(old, new, 1))
    if expected is None:
        assert code == 0, err
    else:
        assert code == 2, err
        assert _first(err) == expected


def test_qat_enabled_needs_manager(repo, demo_text, capsys):
    text = demo_text.replace('  engineering_manager: ["@eng-manager"]\n', "").replace(
        "qat: {enabled: false}", "qat: {enabled: true, justification: 'Serves 2B requests a day'}")
    code, _, err = _run(repo, capsys, text)
    assert code == 2
    assert _first(err) == "manifests/m.yaml:9:1: owners.engineering_manager: needs at least one owner: engineering_manager signs qat (qat is enabled)"


def test_no_rollback_rules_no_on_call(repo, demo_text, capsys):
    text = demo_text.replace('  on_call: ["@acme/ml-oncall"]\n', "").replace(
        "rollback: {quality_floor: 0.78, error_rate_ceiling: 0.02, latency_p95_ms: 150}\n", "")
    code, out, err = _run(repo, capsys, text)
    assert code == 0, err


# ------------------------------------------------------------------------------ repository checks


def test_dataset_missing(repo, demo_text, capsys):
    code, _, err = _run(repo, capsys, demo_text.replace("sts-test.tsv", "sts-tset.tsv"))
    assert code == 2
    assert _first(err) == "manifests/m.yaml:22:11: evaluation.dataset.path: 'data/stsb/sts-tset.tsv' does not exist"


def test_dataset_is_a_directory(repo, demo_text, capsys):
    code, _, err = _run(repo, capsys, demo_text.replace("path: data/stsb/sts-train.tsv", "path: data/stsb"))
    assert code == 2
    assert _first(err) == "manifests/m.yaml:40:13: quantization.calibration.dataset.path: 'data/stsb' is not a file"


def test_dataset_symlink_escape(repo, demo_text, capsys, tmp_path_factory):
    outside = tmp_path_factory.mktemp("outside") / "secret.tsv"
    outside.write_text("x\n")
    os.symlink(outside, repo / "data" / "link.tsv")
    code, _, err = _run(repo, capsys, demo_text.replace("path: data/stsb/sts-test.tsv", "path: data/link.tsv"))
    assert code == 2
    assert _first(err) == "manifests/m.yaml:22:11: evaluation.dataset.path: 'data/link.tsv' resolves outside the repository (a symlink?)"


def test_model_directory_missing_is_a_warning(repo, demo_text, capsys):
    (repo / "models" / "all-MiniLM-L6-v2").rmdir()
    code, out, err = _run(repo, capsys, demo_text)
    assert code == 0
    assert _first(err) == ("manifests/m.yaml:17:11: warning: model.source: model directory './models/all-MiniLM-L6-v2' does not exist yet: "
                           "materialise it before `quantgate run` (validate and plan do not need it; in quantgate's own repository: scripts/setup)")
    assert "ok: 1 manifest valid, 1 warning" in out


def test_gguf_file_missing(repo, demo_text, capsys):
    text = demo_text.replace("  task: sentence-similarity\n", "  task: sentence-similarity\n  gguf_file: model.Q4.gguf\n")
    code, _, err = _run(repo, capsys, text)
    assert code == 2
    assert _first(err) == "manifests/m.yaml:19:14: model.gguf_file: 'model.Q4.gguf' is not a file in './models/all-MiniLM-L6-v2'"


def test_trust_remote_code_refused_then_allowlisted(repo, demo_text, capsys):
    text = demo_text.replace("trust_remote_code: false", "trust_remote_code: true")
    code, _, err = _run(repo, capsys, text)
    assert code == 2
    assert _first(err).startswith("manifests/m.yaml:19:22: model.trust_remote_code: refused: './models/all-MiniLM-L6-v2' is not in trusted_remote_code")
    (repo / "quantgate.yaml").write_text("trusted_remote_code: ['./models/all-MiniLM-L6-v2x']\n")
    code, _, err = _run(repo, capsys, text)
    assert code == 2, "allowlisting is by exact source"
    (repo / "quantgate.yaml").write_text("# reviewed by platform\ntrusted_remote_code: ['./models/all-MiniLM-L6-v2']\n")
    code, _, err = _run(repo, capsys, text)
    assert code == 0, err


def test_bad_repo_config_is_located(repo, demo_text, capsys):
    (repo / "quantgate.yaml").write_text("trusted_remote_cod: []\n")
    code, _, err = _run(repo, capsys, demo_text)
    assert code == 2
    assert _first(err) == "quantgate.yaml:1:1: trusted_remote_cod: unknown key 'trusted_remote_cod' (did you mean 'trusted_remote_code'?)"


def test_names_unique_across_manifests(repo, demo_text, capsys):
    write(repo, demo_text, "a.yaml")
    write(repo, demo_text, "b.yaml")
    code, _, err = validate(capsys, "--root", str(repo), str(repo / "manifests" / "a.yaml"))
    assert code == 2
    assert _first(err) == ("manifests/a.yaml:7:9: metadata.name: 'minilm-stsb' is also the name of manifests/b.yaml; "
                           "names must be unique across manifests/")


def test_tool_files_are_never_validated(repo, demo_text, capsys):
    write(repo, demo_text, "minilm-stsb.yaml")
    write(repo, "not: a manifest\n", "minilm-stsb.lock.yaml")
    write(repo, "groups: []\n", "minilm-stsb.rules.yaml")
    write(repo, "active: quantized\n", "minilm-stsb.serving.yaml")
    code, out, err = validate(capsys, "--root", str(repo))
    assert code == 0, err
    assert "ok: 1 manifest valid" in out
    code, out, err = validate(capsys, "--root", str(repo), str(repo / "manifests" / "minilm-stsb.lock.yaml"))
    assert code == 2 and "skipped (written by quantgate, not a manifest)" in err


def test_a_warning_does_not_need_the_slow_parse(repo, demo_text, capsys, monkeypatch):
    """A valid manifest with a warning is located with libyaml's positions, never the ruamel parse
    (200 manifests without weights on disk used to take 4x as long as with them)."""
    from compiler.manifest import load

    def refuse(source):
        raise AssertionError("ruamel parse on a valid manifest")

    monkeypatch.setattr(load, "parse_yaml", refuse)
    (repo / "models" / "all-MiniLM-L6-v2").rmdir()
    code, out, err = _run(repo, capsys, demo_text)
    assert code == 0, err
    assert _first(err).startswith("manifests/m.yaml:17:11: warning: model.source:")
    assert err.splitlines()[1:3] == ["      source: ./models/all-MiniLM-L6-v2", "              ^"]

"""``quantgate changed`` on a real git repository: direct manifest edits, referenced data and model
files, quantgate.yaml, deleted manifests, runner labels by device, the Actions output file."""

from __future__ import annotations

import json

from compiler.cli import main
from compiler.gitops.changed import changed, is_quantgate_file

from .conftest import demo_manifest_text, git


def run_changed(capsys, repo, *extra, base="main"):
    code = main(["changed", "--base", base, "--root", str(repo), *extra])
    out, err = capsys.readouterr()
    return code, json.loads(out), err


def add_gpu_manifest(demo_repo):
    text = demo_manifest_text(**{"name: minilm-stsb": "name: minilm-gpu", "device: cpu": "device: cuda",
                                 "data/stsb/sts-test.tsv": "data/gpu/eval.tsv", "data/stsb/sts-train.tsv": "data/gpu/calib.tsv"})
    demo_repo.write("manifests/minilm-gpu.yaml", text)
    demo_repo.write("data/gpu/eval.tsv", "x\n")
    demo_repo.write("data/gpu/calib.tsv", "x\n")


def test_nothing_changed_is_an_empty_matrix(demo_repo, capsys):
    code, matrix, _ = run_changed(capsys, demo_repo.work, "--head", "HEAD")
    assert code == 0 and matrix == {"include": []}


def test_direct_edit_and_runner_labels_by_device(demo_repo, capsys, tmp_path, monkeypatch):
    add_gpu_manifest(demo_repo)
    demo_repo.commit("add gpu manifest")
    output = tmp_path / "github_output"
    monkeypatch.setenv("GITHUB_OUTPUT", str(output))
    code, matrix, err = run_changed(capsys, demo_repo.work, "--head", "HEAD")
    assert matrix == {"include": [{"manifest": "manifests/minilm-gpu.yaml", "name": "minilm-gpu", "runs_on": ["self-hosted", "gpu"]}]}
    assert "touched manifests/minilm-gpu.yaml: manifest" in err
    lines = output.read_text().splitlines()
    assert lines[1] == "count=1" and json.loads(lines[0].split("=", 1)[1]) == matrix


def test_runner_labels_come_from_the_base_branch_not_the_pull_request(demo_repo, capsys):
    demo_repo.write("quantgate.yaml", "runner_labels:\n  cuda: [self-hosted, linux, h100]\n")
    demo_repo.commit("labels on main")
    git(demo_repo.work, "push", "-q", "origin", "HEAD:main")
    git(demo_repo.work, "fetch", "-q", "origin")
    add_gpu_manifest(demo_repo)
    # The attack: the pull request routes its own jobs to a runner of its choosing.
    demo_repo.write("quantgate.yaml", "runner_labels:\n  cuda: [self-hosted, attacker-box]\n")
    demo_repo.commit("gpu + the PR's own labels")
    _, matrix, _ = run_changed(capsys, demo_repo.work, "--head", "HEAD", base="origin/main")
    by_name = {row["name"]: row["runs_on"] for row in matrix["include"]}
    # quantgate.yaml changed, so every manifest is touched; the labels are the base branch's
    assert by_name == {"minilm-gpu": ["self-hosted", "linux", "h100"], "minilm-stsb": ["ubuntu-latest"]}


def test_referenced_data_file_touches_only_its_manifest(demo_repo, capsys):
    add_gpu_manifest(demo_repo)
    demo_repo.commit("gpu")
    git(demo_repo.work, "push", "-q", "origin", "HEAD:main")
    git(demo_repo.work, "fetch", "-q", "origin")
    demo_repo.write("data/stsb/sts-train.tsv", "changed calibration\n")  # calibration data of minilm-stsb
    demo_repo.commit("recalibrate")
    _, matrix, err = run_changed(capsys, demo_repo.work, "--head", "HEAD", base="origin/main")
    assert [row["name"] for row in matrix["include"]] == ["minilm-stsb"]
    assert "data/stsb/sts-train.tsv" in err


def test_model_directory_change_touches_its_manifest(demo_repo, capsys):
    demo_repo.write("models/all-MiniLM-L6-v2/config.json", '{"changed": true}\n')
    demo_repo.write("models/all-MiniLM-L6-v2-other/config.json", "{}\n")  # a prefix, not the directory
    demo_repo.commit("new weights")
    _, matrix, err = run_changed(capsys, demo_repo.work, "--head", "HEAD")
    assert [row["name"] for row in matrix["include"]] == ["minilm-stsb"]
    assert "models/all-MiniLM-L6-v2/config.json" in err and "-other" not in err


def test_unrelated_and_report_only_changes_touch_nothing(demo_repo, capsys):
    demo_repo.write("README.md", "docs only\n")
    demo_repo.write("reports/minilm-stsb/report.md", "# r\n")
    demo_repo.commit("docs and report")
    _, matrix, _ = run_changed(capsys, demo_repo.work, "--head", "HEAD")
    assert matrix == {"include": []}


def test_a_lock_only_commit_is_re_checked(demo_repo, capsys):
    # A hand-edited lock is untrusted input: CI must plan it again (with a store, re-run what the
    # store does not vouch for). Before, a lock-only commit gave an empty matrix and was never checked.
    demo_repo.write("manifests/minilm-stsb.lock.yaml", "schema_version: 1\n")
    demo_repo.commit("lock only")
    _, matrix, _ = run_changed(capsys, demo_repo.work, "--head", "HEAD")
    assert [row["manifest"] for row in matrix["include"]] == ["manifests/minilm-stsb.yaml"]


def test_deleted_manifest_is_reported_not_run(demo_repo, capsys):
    (demo_repo.work / "manifests/minilm-stsb.yaml").unlink()
    demo_repo.commit("retire")
    code, matrix, err = run_changed(capsys, demo_repo.work, "--head", "HEAD")
    assert code == 0 and matrix == {"include": []}
    assert "deleted manifests/minilm-stsb.yaml" in err


def test_renamed_manifest_runs_under_its_new_path(demo_repo, capsys):
    git(demo_repo.work, "mv", "manifests/minilm-stsb.yaml", "manifests/search.yaml")
    demo_repo.commit("rename")
    _, matrix, err = run_changed(capsys, demo_repo.work, "--head", "HEAD")
    assert [row["manifest"] for row in matrix["include"]] == ["manifests/search.yaml"]
    assert "deleted manifests/minilm-stsb.yaml" in err


def test_working_tree_and_merge_base(demo_repo):
    # main moves on after the branch was cut: its changes are not the PR's
    other = demo_repo.clone("mainline")
    (other / "data/stsb/sts-test.tsv").write_text("main moved\n")
    git(other, "commit", "-qam", "main moves")
    git(other, "push", "-q", "origin", "main")
    git(demo_repo.work, "fetch", "-q", "origin")
    assert changed(demo_repo.work, "origin/main", "HEAD").touched == ()
    demo_repo.write("manifests/minilm-stsb.yaml", demo_manifest_text() + "# edit\n")  # uncommitted
    assert [t.name for t in changed(demo_repo.work, "origin/main").touched] == ["minilm-stsb"]


def test_invalid_manifest_is_still_touched(demo_repo, capsys):
    demo_repo.write("manifests/broken.yaml", "metadata: [unclosed\n")
    demo_repo.commit("broken")
    _, matrix, _ = run_changed(capsys, demo_repo.work, "--head", "HEAD")
    assert matrix["include"] == [{"manifest": "manifests/broken.yaml", "name": "broken", "runs_on": ["ubuntu-latest"]}]


def test_unknown_base_is_invalid_input(demo_repo, capsys):
    assert main(["changed", "--base", "no-such-ref", "--root", str(demo_repo.work)]) == 2
    assert "fetch-depth" in capsys.readouterr().err


def test_quantgate_file_set():
    assert all(map(is_quantgate_file, ["manifests/a.lock.yaml", "manifests/a.rules.yaml", "manifests/a.serving.yaml",
                                       "reports/a/report.md", "./reports/a/x.png"]))
    assert not any(map(is_quantgate_file, ["manifests/a.yaml", "data/x.tsv", "reports.md", "models/reports/x",
                                           "manifests/a.lock.yaml.bak"]))

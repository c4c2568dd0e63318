"""``compiler.gitops.trust``: the publishing job's refusal of a changed workflow (naming the file and
the changed pin), of a changed action.yml where the workflow uses the local action, and the placing
of results that refuses symbolic links."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from compiler.cli import main
from compiler.gitops.trust import check_untrusted_run, place_results

from .harness import git

WF = ".github/workflows/quantgate-pr.yml"
PINNED = "jobs:\n  a:\n    steps:\n      - uses: acme/quantgate@" + "1" * 40 + " # quantgate\n"


def repo(tmp_path: Path, files: dict[str, str]) -> tuple[Path, str]:
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "base")
    return root, git(root, "rev-parse", "HEAD")


def change(root: Path, files: dict[str, str]) -> str:
    for rel, text in files.items():
        (root / rel).write_text(text)
    git(root, "commit", "-qam", "change")
    return git(root, "rev-parse", "HEAD")


def test_an_unchanged_workflow_passes_and_a_changed_pin_is_named(tmp_path):
    root, base = repo(tmp_path, {WF: PINNED, "README.md": "x\n"})
    head = change(root, {"README.md": "y\n"})
    assert check_untrusted_run(root, base, head, WF) == []
    assert check_untrusted_run(root, base, head, WF + "@refs/pull/7/merge") == []
    head = change(root, {WF: PINNED.replace("1" * 40, "2" * 40)})
    problems = check_untrusted_run(root, base, head, WF)
    assert len(problems) == 1 and problems[0].startswith(f"{WF}: the pull request changed it")
    assert "acme/quantgate@" + "2" * 40 in problems[0]


def test_the_local_action_is_compared_too(tmp_path):
    local = "jobs:\n  a:\n    steps:\n      - uses: ./ # quantgate\n"
    root, base = repo(tmp_path, {WF: local, "action.yml": "runs: {using: composite}\n"})
    head = change(root, {"action.yml": "runs: {using: composite, steps: []}\n"})
    assert [p.split(":")[0] for p in check_untrusted_run(root, base, head, WF)] == ["action.yml"]


@pytest.mark.parametrize("path", ["../etc/passwd.yml", ".github/workflows/../../x.yml", "action.yml", ".github/workflows/a/b.yml"])
def test_only_a_workflow_file_is_accepted(tmp_path, path):
    root, base = repo(tmp_path, {WF: PINNED})
    assert "not a workflow file" in check_untrusted_run(root, base, base, path)[0]


def test_a_workflow_the_base_does_not_have_is_refused(tmp_path):
    root, base = repo(tmp_path, {"README.md": "x\n"})
    (root / WF).parent.mkdir(parents=True)
    (root / WF).write_text(PINNED)
    git(root, "add", "-A")
    git(root, "commit", "-qm", "new workflow")
    assert "not on the base branch" in check_untrusted_run(root, base, git(root, "rev-parse", "HEAD"), WF)[0]


def test_the_command_exits_1_naming_the_file(tmp_path, capsys):
    root, base = repo(tmp_path, {WF: PINNED})
    head = change(root, {WF: PINNED + "# edit\n"})
    assert main(["check-run", "--root", str(root), "--base", base, "--head-sha", head, "--workflow-path", WF]) == 1
    assert f"refused: {WF}: the pull request changed it" in capsys.readouterr().err
    assert main(["check-run", "--root", str(root), "--base", "HEAD", "--head-sha", head, "--workflow-path", WF]) == 0


def test_placing_results_refuses_symbolic_links(tmp_path):
    root, _ = repo(tmp_path, {"manifests/m.yaml": "metadata: {name: m}\n"})
    results = tmp_path / "results"
    (results / "manifests").mkdir(parents=True)
    (results / "manifests" / "m.rules.yaml").write_text("groups: []\n")
    (results / "reports" / "m").mkdir(parents=True)
    (results / "reports" / "m" / "report.md").write_text("# m\n")
    assert place_results(results, root, ["manifests/m.yaml"]) == ["manifests/m.rules.yaml", "reports/m/report.md"]
    os.symlink("/etc/passwd", results / "reports" / "m" / "link.md")
    with pytest.raises(ValueError, match="symbolic link"):
        place_results(results, root, ["manifests/m.yaml"])
    (results / "reports" / "m" / "link.md").unlink()
    (root / "reports").rename(root / "elsewhere")
    os.symlink(root / "elsewhere", root / "reports")  # the pull request committed reports/ as a link
    with pytest.raises(ValueError, match="symbolic link"):
        place_results(results, root, ["manifests/m.yaml"])
    with pytest.raises(ValueError, match="not a manifest"):
        place_results(results, root, ["../m.yaml"])

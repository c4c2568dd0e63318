"""The workflows: this repository's .github/workflows and `quantgate init` output pass actionlint and
zizmor (offline, nothing above low), stay in sync, and keep the safety properties by construction."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from compiler.cli import main
from compiler.gitops.scaffold import ACTION_ENV, BLOCK_BEGIN, BLOCK_END, LOCAL_ACTION, workflow_files

from .conftest import REPO_ROOT, demo_manifest_text

BIN = Path(sys.executable).parent
WORKFLOWS = REPO_ROOT / ".github" / "workflows"
SEVERITY = {"Unknown": 0, "Informational": 1, "Low": 2, "Medium": 3, "High": 4}
SHA_PIN = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")
#: what the user-repository tests pin the quantgate action to (init --action / $QUANTGATE_ACTION)
PIN = "acme/quantgate@0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(autouse=True)
def _pinned(monkeypatch):
    """`init` pins the workflows to the running quantgate's commit; this checkout has no GitHub origin."""
    monkeypatch.setenv(ACTION_ENV, PIN)


def tool(name: str) -> str:
    path = BIN / name
    if not path.exists():
        found = shutil.which(name)
        if found is None:
            pytest.fail(f"{name} is not installed (pip install -e '.[test]')")
        return found
    return str(path)


@pytest.fixture(scope="module")
def init_output(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("userrepo")
    (root / "manifests").mkdir()
    (root / "manifests" / "minilm-stsb.yaml").write_text(demo_manifest_text())
    assert main(["init", "--root", str(root), "--admin", "@acme/platform", "--action", PIN]) == 0
    return root


def workflow_sets(init_output: Path) -> list[Path]:
    return [WORKFLOWS, init_output / ".github" / "workflows"]


@pytest.mark.parametrize("which", ["repository", "init"])
def test_actionlint_passes(which, init_output):
    folder = workflow_sets(init_output)[which == "init"]
    files = sorted(str(p) for p in folder.glob("*.yml"))
    assert files, folder
    done = subprocess.run([tool("actionlint"), "-no-color", *files], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("which", ["repository", "init", "action"])
def test_zizmor_finds_nothing_above_low(which, init_output):
    if which == "action":
        files = [str(REPO_ROOT / "action.yml")]
    else:
        folder = workflow_sets(init_output)[which == "init"]
        files = sorted(str(p) for p in folder.glob("*.yml"))
    done = subprocess.run([tool("zizmor"), "--offline", "--format", "json", *files], capture_output=True, text=True)
    findings = json.loads(done.stdout or "[]")
    above_low = [
        (f["ident"], f["determinations"]["severity"], f["locations"][0]["symbolic"]["key"])
        for f in findings
        if SEVERITY.get(f["determinations"]["severity"], 4) > SEVERITY["Low"] and not f.get("ignored")
    ]
    assert above_low == [], above_low


def test_zizmor_would_catch_an_unsafe_workflow(tmp_path):
    """The check above can fail: the same call flags a classic pull_request_target injection."""
    bad = tmp_path / "bad.yml"
    bad.write_text(
        "on: pull_request_target\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n"
        "      - uses: actions/checkout@v4\n      - run: echo \"${{ github.event.pull_request.title }}\"\n"
    )
    done = subprocess.run([tool("zizmor"), "--offline", "--format", "json", str(bad)], capture_output=True, text=True)
    idents = {f["ident"] for f in json.loads(done.stdout)}
    assert {"dangerous-triggers", "template-injection", "unpinned-uses"} <= idents


def test_init_output_equals_this_repositorys_workflows(init_output):
    """This repository's workflows are init's output with the local action (``uses: ./``); a user's
    are the same bytes with the action pinned to a commit."""
    generated = {p.name: p.read_text() for p in (init_output / ".github" / "workflows").glob("*.yml")}
    ours = {p.name: p.read_text() for p in WORKFLOWS.glob("quantgate-*.yml")}
    assert ours == workflow_files(LOCAL_ACTION), "write workflow_files('./') into .github/workflows (quantgate-*.yml) to resync"
    assert generated == workflow_files(PIN)
    assert {name: text.replace(f"uses: {PIN} ", f"uses: {LOCAL_ACTION} ") for name, text in generated.items()} == ours
    assert set(generated) == set(workflow_files())  # every template in the scaffold folder
    assert {"quantgate-pr.yml", "quantgate-signoff.yml"} <= set(generated)


def test_workflows_install_quantgate_only_through_the_pinned_action(init_output):
    for path in all_workflows(init_output):
        text = path.read_text()
        assert "QUANTGATE_PIP" not in text and "quantgate==" not in text and "pip install" not in text, path
    for path in sorted((init_output / ".github" / "workflows").glob("quantgate-*.yml")):
        assert f"uses: {PIN} # quantgate" in path.read_text(), path
    action = _load(REPO_ROOT / "action.yml")
    assert action["runs"]["using"] == "composite"
    assert {"command", "args", "python-version", "extras"} <= set(action["inputs"])
    install = next(step for step in action["runs"]["steps"] if step.get("name", "").startswith("Install quantgate"))
    assert install["env"]["QUANTGATE_SOURCE"] == "${{ github.action_path }}"
    assert 'pip install --disable-pip-version-check "$spec"' in install["run"]
    assert all("${{" not in step.get("run", "") for step in action["runs"]["steps"])
    for step in action["runs"]["steps"]:
        if "uses" in step:
            assert SHA_PIN.match(step["uses"]), step["uses"]


def test_action_installs_from_its_checkout_and_runs_the_command(tmp_path):
    """The action's shell, run for real against a fake pip: it installs the action's folder with the
    extras (torch first, from the CPU index), records the pin, then runs the command with the args."""
    action = _load(REPO_ROOT / "action.yml")
    install, command = [s for s in action["runs"]["steps"] if s.get("shell") == "bash"]
    source = tmp_path / "action"
    (source / "compiler").mkdir(parents=True)
    fake = tmp_path / "bin"
    fake.mkdir()
    log = tmp_path / "log"
    for name in ("python", "quantgate"):
        (fake / name).write_text(f'#!/bin/sh\necho "{name} $*" >> "{log}"\n')
        (fake / name).chmod(0o755)
    env = {"PATH": f"{fake}:/usr/bin:/bin", "QUANTGATE_SOURCE": str(source), "QUANTGATE_EXTRAS": "run",
           "TORCH_INDEX_URL": "https://download.pytorch.org/whl/cpu", "ACTION_REPOSITORY": "acme/quantgate",
           "ACTION_REF": PIN.split("@")[1], "QUANTGATE_COMMAND": "validate", "QUANTGATE_ARGS": "--format  github"}
    for step in (install, command):
        done = subprocess.run(["bash", "-c", step["run"]], env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    assert log.read_text().splitlines() == [
        "python -m pip install --disable-pip-version-check torch --index-url https://download.pytorch.org/whl/cpu",
        f"python -m pip install --disable-pip-version-check {source}[run]",
        "quantgate --version",
        "quantgate validate --format github",
    ]
    assert (source / "compiler" / "_source.txt").read_text() == PIN + "\n"


def test_the_pr_workflow_pushes_before_it_commits_the_lock_back():
    steps = _load(WORKFLOWS / "quantgate-pr.yml")["jobs"]["run"]["steps"]
    runs = [s.get("run", "") for s in steps]
    at = {cmd: next(i for i, r in enumerate(runs) if r.startswith(cmd)) for cmd in
          ("quantgate run", "quantgate push", "quantgate commit-back")}
    assert at["quantgate run"] < at["quantgate push"] < at["quantgate commit-back"]
    push = steps[at["quantgate push"]]
    assert push["id"] == "push" and push["run"] == 'quantgate push "$MANIFEST"' and "if" not in push  # only after a run that succeeded
    assert "steps.push.outcome != 'failure'" in steps[at["quantgate commit-back"]]["if"]


def _load(path: Path) -> dict:
    return YAML(typ="safe").load(path.read_text())


def all_workflows(init_output: Path) -> list[Path]:
    return sorted(WORKFLOWS.glob("*.yml")) + sorted((init_output / ".github" / "workflows").glob("*.yml"))


def test_safe_by_construction(init_output):
    for path in all_workflows(init_output):
        wf = _load(path)
        triggers = wf.get("on") or wf.get(True)  # YAML 1.1 reads a bare `on` as true
        assert "pull_request_target" not in triggers and "workflow_run" not in triggers, path
        assert wf.get("permissions") == {}, f"{path}: top-level permissions must be {{}}"
        for name, job in wf["jobs"].items():
            assert "permissions" in job, f"{path}: job {name} has no permissions"
            for step in job.get("steps", []):
                assert "${{" not in step.get("run", ""), f"{path}: {name}: expression inside run:"
                uses = step.get("uses")
                if uses:
                    local = uses == LOCAL_ACTION and path.parent == WORKFLOWS  # quantgate's own action, this commit
                    assert local or SHA_PIN.match(uses), f"{path}: {uses} is not pinned by full sha"
                    if uses.startswith("actions/checkout@"):
                        assert step["with"]["persist-credentials"] is False
        if "pull_request" in triggers or "pull_request_review" in triggers:
            if path.name.startswith("quantgate-"):
                assert "github.event.pull_request.number" in wf["concurrency"]["group"], path


def test_the_pr_workflow_has_every_stage(init_output):
    text = (WORKFLOWS / "quantgate-pr.yml").read_text()
    for command in ("quantgate validate --format github", "quantgate changed", "quantgate plan", "quantgate comment",
                    "quantgate run", "quantgate commit-back", "quantgate signoff"):
        assert command in text, command
    assert "fromJSON(needs.plan.outputs.matrix)" in text and "runs-on: ${{ matrix.runs_on }}" in text
    signoff = (WORKFLOWS / "quantgate-signoff.yml").read_text()
    assert "pull_request_review:" in signoff and "statuses: write" in signoff
    assert "quantgate commit-back" in signoff


def test_init_is_idempotent_and_keeps_user_codeowners(tmp_path, capsys):
    (tmp_path / ".github").mkdir()
    (tmp_path / ".github" / "CODEOWNERS").write_text("* @acme/everyone\n/docs/ @acme/writers\n")
    (tmp_path / "manifests").mkdir()
    (tmp_path / "manifests" / "minilm-stsb.yaml").write_text(demo_manifest_text())
    assert main(["init", "--root", str(tmp_path)]) == 0
    owners = (tmp_path / ".github" / "CODEOWNERS").read_text()
    assert owners.startswith("* @acme/everyone\n/docs/ @acme/writers\n")
    assert "/manifests/minilm-stsb.* @ml-eng @platform-eng @product-lead @eng-manager" in owners
    assert "ml-oncall" not in owners  # on_call is alerted, it does not review
    assert owners.count(BLOCK_BEGIN) == 1 and BLOCK_END in owners
    capsys.readouterr()
    assert main(["init", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    # workflows, CODEOWNERS, checklist, schema copy; quantgate.yaml is the user's once written
    assert "written" not in out and out.count("unchanged") == len(workflow_files()) + 3
    assert "kept quantgate.yaml" in out
    assert (tmp_path / ".github" / "CODEOWNERS").read_text() == owners


def test_init_refuses_to_overwrite_an_edited_workflow(tmp_path):
    assert main(["init", "--root", str(tmp_path)]) == 0
    edited = tmp_path / ".github" / "workflows" / "quantgate-pr.yml"
    edited.write_text(edited.read_text() + "# my edit\n")
    assert main(["init", "--root", str(tmp_path)]) == 1
    assert edited.read_text().endswith("# my edit\n")
    assert main(["init", "--root", str(tmp_path), "--force"]) == 0
    assert not edited.read_text().endswith("# my edit\n")
    assert main(["init", "--root", str(tmp_path), "--admin", "not an owner"]) == 2

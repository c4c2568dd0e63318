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
    assert {"quantgate-pr.yml", "quantgate-publish.yml", "quantgate-signoff.yml"} <= set(generated)


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


def test_the_publishing_workflow_checks_verifies_and_pushes_before_it_commits_the_lock_back():
    steps = _load(WORKFLOWS / "quantgate-publish.yml")["jobs"]["publish"]["steps"]
    runs = [s.get("run", "") for s in steps]
    text = "\n".join(runs)
    at = {cmd: text.index(cmd) for cmd in ("quantgate check-run", "quantgate verify", "quantgate push", "quantgate comment",
                                            "quantgate commit-back", "quantgate signoff")}
    assert list(at) == sorted(at, key=at.get), at
    assert text.index("quantgate ") == at["quantgate check-run"], "check-run is the first quantgate command"
    push = next(s for s in steps if "quantgate push" in s.get("run", ""))
    for flag, source in (("--run-id", "id"), ("--run-attempt", "run_attempt"), ("--commit-sha", "head_sha"),
                         ("--workflow", "path"), ("--repository", "repository.full_name")):
        assert flag in push["run"]
        var = push["run"].split(flag, 1)[1].split('"$', 1)[1].split('"', 1)[0]
        assert (push["env"].get(var) or _load(WORKFLOWS / "quantgate-publish.yml")["jobs"]["publish"]["env"].get(var)) \
            == f"${{{{ github.event.workflow_run.{source} }}}}", (flag, var)
    back = next(s for s in steps if "quantgate commit-back" in s.get("run", ""))
    assert "github.event.workflow_run.head_repository.full_name == github.repository" in back["if"]  # not for forks
    assert "verified.txt" in back["run"]  # only what verified and was pushed


def _load(path: Path) -> dict:
    return YAML(typ="safe").load(path.read_text())


def all_workflows(init_output: Path) -> list[Path]:
    return sorted(WORKFLOWS.glob("*.yml")) + sorted((init_output / ".github" / "workflows").glob("*.yml"))


def test_safe_by_construction(init_output):
    for path in all_workflows(init_output):
        wf = _load(path)
        triggers = wf.get("on") or wf.get(True)  # YAML 1.1 reads a bare `on` as true
        assert "pull_request_target" not in triggers, path
        if "workflow_run" in triggers:  # only the trusted publishing half, and only after the `quantgate` workflow
            assert path.name == "quantgate-publish.yml", path
            assert triggers["workflow_run"] == {"workflows": ["quantgate"], "types": ["completed"]}, path
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


def test_the_pr_workflows_have_every_stage(init_output):
    text = (WORKFLOWS / "quantgate-pr.yml").read_text()
    for command in ("quantgate validate --format github", "quantgate changed", "quantgate plan", "quantgate run",
                    "quantgate report", "actions/upload-artifact@"):
        assert command in text, command
    assert "fromJSON(needs.plan.outputs.matrix)" in text and "runs-on: ${{ matrix.runs_on }}" in text
    for command in ("quantgate push", "quantgate commit-back", "quantgate signoff", "secrets."):
        assert command not in text, f"{command} belongs to the trusted publishing workflow"
    publish = (WORKFLOWS / "quantgate-publish.yml").read_text()
    for command in ("quantgate check-run", "quantgate verify", "quantgate push", "quantgate comment",
                    "quantgate commit-back", "quantgate signoff", "actions/download-artifact@"):
        assert command in publish, command
    download = next(s for s in _load(WORKFLOWS / "quantgate-publish.yml")["jobs"]["publish"]["steps"]
                    if s.get("uses", "").startswith("actions/download-artifact@"))
    assert download["with"]["run-id"] == "${{ github.event.workflow_run.id }}"
    assert download["with"]["github-token"] == "${{ github.token }}"
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


#: GitHub's read-only permission values
READ_ONLY = {"read", "none"}
#: what a step may run in a checkout of the pull request's files, in a job that holds a write token
DATA_ONLY = re.compile(r"^(quantgate|git|while|done|status=\d|mapfile|if|else|fi|:|printf|exit|rm -f|cp|--[a-z-]+)(\s|$)")


def _checks_out_the_head(step: dict, trigger: set) -> bool:
    """Whether a checkout step materialises the pull request's files (its head, or the merge ref a
    pull_request event checks out by default)."""
    ref = str((step.get("with") or {}).get("ref", ""))
    if "pull_request" in trigger:
        return True  # with no ref: the merge commit, i.e. the pull request's code
    return "head" in ref


def test_no_job_that_runs_pull_request_code_holds_a_write_permission(init_output):
    """A job that runs the pull request's code holds only read permissions; a job with a write token
    installs quantgate from a checkout of the base branch (the workspace root) and keeps the pull
    request's head in a subfolder that its steps only read, through quantgate and git."""
    for path in all_workflows(init_output):
        if path.name == "ci.yml":
            continue
        wf = _load(path)
        triggers = set(wf.get("on") or wf.get(True))
        for name, job in wf["jobs"].items():
            perms = job.get("permissions") or {}
            writes = sorted(k for k, v in perms.items() if v not in READ_ONLY)
            steps = job.get("steps", [])
            checkouts = [s for s in steps if s.get("uses", "").startswith("actions/checkout@")]
            pr_code = [s for s in checkouts if _checks_out_the_head(s, triggers)]
            if "pull_request" in triggers:
                assert pr_code and not writes, f"{path.name}: {name} runs the pull request's code with {writes}"
                assert "secrets." not in json.dumps(job), f"{path.name}: {name} runs the pull request's code with a secret"
                continue
            if not writes:
                continue
            for step in pr_code:
                assert step["with"].get("path"), f"{path.name}: {name} checks the head out into the workspace it runs from"
            root = [s for s in checkouts if not (s.get("with") or {}).get("path")]
            assert root and not any(_checks_out_the_head(s, triggers) for s in root), f"{path.name}: {name}"
            install = next(i for i, s in enumerate(steps) if s.get("uses") and not s["uses"].startswith("actions/"))
            assert steps.index(root[0]) < install, f"{path.name}: {name} installs quantgate before the base checkout"
            for step in steps:
                if "run" not in step:
                    continue
                lines = [line.strip() for line in step["run"].splitlines() if line.strip() and not line.strip().startswith("#")]
                bad = [line for line in lines if not DATA_ONLY.match(line)]
                assert not bad, f"{path.name}: {name}: a write-token step runs {bad}"
                assert "QUANTGATE_SETUP" not in step["run"] and "bash -c" not in step["run"]


def test_the_permission_test_would_catch_the_old_run_job():
    """The old run job: the pull request's head checked out and run with contents/pull-requests/statuses: write."""
    old = {"on": {"pull_request": {}}, "permissions": {}, "jobs": {"run": {
        "permissions": {"contents": "write", "pull-requests": "write", "statuses": "write"},
        "steps": [{"uses": "actions/checkout@11bd71901bbe5b1630ceea73d27597364c9af683",
                   "with": {"ref": "${{ github.event.pull_request.head.sha }}", "persist-credentials": False}},
                  {"run": 'quantgate run "$MANIFEST"'}]}}}
    job = old["jobs"]["run"]
    writes = [k for k, v in job["permissions"].items() if v not in READ_ONLY]
    assert _checks_out_the_head(job["steps"][0], set(old["on"])) and writes

"""Run a GitHub Actions workflow's jobs on this machine, step by step, as the runner would.

Every ``run:`` step runs for real (``bash --noprofile --norc -eo pipefail``) in the job's workspace,
in order, with the GitHub environment set (``GITHUB_ACTIONS``, ``GITHUB_REPOSITORY``,
``GITHUB_EVENT_PATH`` with the event's payload, ``GITHUB_OUTPUT``, ``GITHUB_STEP_SUMMARY``,
``GITHUB_API_URL`` = the loopback GitHub, ``GITHUB_SHA``/``GITHUB_REF``/``GITHUB_HEAD_REF``,
``RUNNER_TEMP``, ...), its ``env:`` (workflow, job, step) and ``if:`` evaluated by
``tests/workflows/expressions.py``. Each job gets a fresh virtualenv whose python is first on PATH
and which holds only what the job's own steps install. ``uses:`` steps are emulated:

- ``actions/checkout@<pin>``: ``git init`` + ``git fetch`` of the commit (``ref``, else the event's
  ``github.sha``) from the named repository's bare remote (``repository``, else ``github.repository``),
  all branches with ``fetch-depth: 0``, into ``path`` (``persist-credentials: false`` is required);
- ``actions/setup-python@<pin>``: nothing (the job's fresh virtualenv is the Python);
- ``actions/upload-artifact@<pin>``: the ``path`` folder copied to ``<artifacts>/<run id>/<name>``;
- ``actions/download-artifact@<pin>``: needs ``run-id`` and the job's ``github-token``; artifacts of
  that run matching ``pattern`` copied into ``path`` (``merge-multiple``);
- the quantgate action (``uses: ./`` or ``OWNER/quantgate@<sha>``): ``action.yml``'s composite steps
  run with its inputs (defaults + ``with:``) from the action's folder: the workspace for ``./``, a
  fresh export of that commit of the quantgate repository for a pin (``github.action_path``).

Any other ``uses:`` fails the job loudly. Matrices (``strategy.matrix`` with ``include``), ``needs``
and job ``outputs`` are honoured; jobs run one after another in ``needs`` order.
"""

from __future__ import annotations

import fnmatch
import json
import os
import shutil
import subprocess
import sys
import venv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from .expressions import ExpressionError, condition, interpolate, to_string

CHECKOUT = "actions/checkout@11bd71901bbe5b1630ceea73d27597364c9af683"
SETUP_PYTHON = "actions/setup-python@a26af69be951a213d495a4c3e4e4022e16d87065"
UPLOAD = "actions/upload-artifact@ea165f8d65b6e75b540449e92b4886f43607fa02"
DOWNLOAD = "actions/download-artifact@d3f86a106a0bac45b974a628896c90dbdf5c8093"
TOKEN = "ghs_loopbacktoken0123456789"


def load_yaml(path_or_text: Path | str) -> dict:
    text = path_or_text.read_text() if isinstance(path_or_text, Path) else path_or_text
    return YAML(typ="safe").load(text)


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"git {' '.join(args)} in {cwd}: {done.stderr.strip()}")
    return done.stdout.strip()


@dataclass
class World:
    """Everything outside the runner: bare remotes by ``owner/name``, the quantgate repository the
    pinned action is checked out from, the loopback GitHub, repository variables and secrets, and
    where uploaded artifacts live."""

    tmp: Path
    api_url: str
    remotes: dict[str, Path] = field(default_factory=dict)
    variables: dict[str, str] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)
    python: str = sys.executable  # only used to create the fresh virtualenvs
    base_env: dict[str, str] = field(default_factory=dict)  # GIT_CONFIG_GLOBAL, HOME, offline flags
    next_run: int = 4000

    @property
    def artifacts(self) -> Path:
        return self.tmp / "artifacts"


@dataclass
class StepResult:
    name: str
    outcome: str  # success | failure | skipped
    output: str = ""
    outputs: dict[str, str] = field(default_factory=dict)


@dataclass
class JobResult:
    name: str
    result: str  # success | failure | skipped
    steps: list[StepResult] = field(default_factory=list)
    outputs: dict[str, str] = field(default_factory=dict)
    venv: Path | None = None
    workspace: Path | None = None

    def log(self) -> str:
        return "\n".join(f"--- {s.name}: {s.outcome}\n{s.output}" for s in self.steps)


@dataclass
class WorkflowRun:
    run_id: int
    jobs: dict[str, list[JobResult]] = field(default_factory=dict)

    @property
    def conclusion(self) -> str:
        results = [j.result for js in self.jobs.values() for j in js]
        return "failure" if "failure" in results else "success"

    def job(self, name: str, index: int = 0) -> JobResult:
        return self.jobs[name][index]

    def log(self) -> str:
        return "\n".join(f"=== {j.name}: {j.result}\n{j.log()}" for js in self.jobs.values() for j in js)


def _job_order(jobs: dict[str, dict]) -> list[str]:
    order: list[str] = []
    while len(order) < len(jobs):
        ready = [n for n, j in jobs.items() if n not in order and all(d in order for d in _needs(j))]
        if not ready:
            raise RuntimeError("a cycle in needs:")
        order += ready
    return order


def _needs(job: dict) -> list[str]:
    needs = job.get("needs") or []
    return [needs] if isinstance(needs, str) else list(needs)


class Runner:
    def __init__(self, world: World, workflow: Path, event_name: str, payload: dict, *, repository: str, sha: str,
                 ref: str, head_ref: str = ""):
        self.world, self.workflow = world, workflow
        self.spec = load_yaml(workflow)
        self.event_name, self.payload = event_name, payload
        self.repository, self.sha, self.ref, self.head_ref = repository, sha, ref, head_ref
        world.next_run += 1
        self.run = WorkflowRun(world.next_run)
        self.home = world.tmp / "runs" / str(self.run.run_id)
        self.home.mkdir(parents=True)
        self.event_path = self.home / "event.json"
        self.event_path.write_text(json.dumps(payload))

    # contexts ---------------------------------------------------------------------------------
    def github_context(self, workspace: Path) -> dict[str, Any]:
        return {"event": self.payload, "event_name": self.event_name, "repository": self.repository, "sha": self.sha,
                "ref": self.ref, "head_ref": self.head_ref, "token": TOKEN, "workspace": str(workspace),
                "run_id": str(self.run.run_id), "run_attempt": "1", "workflow": self.spec.get("name", ""),
                "repository_owner": self.repository.split("/")[0], "server_url": "https://github.com",
                "api_url": self.world.api_url, "action_path": "", "action_repository": "", "action_ref": ""}

    def base_env(self, workspace: Path, temp: Path, venv_dir: Path) -> dict[str, str]:
        path = f"{venv_dir / 'bin'}:/usr/local/bin:/usr/bin:/bin"
        return {
            **self.world.base_env, "PATH": path, "VIRTUAL_ENV": str(venv_dir), "CI": "true", "GITHUB_ACTIONS": "true",
            "GITHUB_REPOSITORY": self.repository, "GITHUB_REPOSITORY_OWNER": self.repository.split("/")[0],
            "GITHUB_EVENT_NAME": self.event_name, "GITHUB_EVENT_PATH": str(self.event_path), "GITHUB_SHA": self.sha,
            "GITHUB_REF": self.ref, "GITHUB_HEAD_REF": self.head_ref, "GITHUB_WORKSPACE": str(workspace),
            "GITHUB_API_URL": self.world.api_url, "GITHUB_SERVER_URL": "https://github.com",
            "GITHUB_RUN_ID": str(self.run.run_id), "GITHUB_RUN_ATTEMPT": "1", "GITHUB_WORKFLOW": self.spec.get("name", ""),
            "GITHUB_WORKFLOW_REF": f"{self.repository}/{self.workflow_rel()}@{self.ref}",
            "RUNNER_TEMP": str(temp), "RUNNER_OS": "Linux", "RUNNER_ARCH": "X64", "RUNNER_NAME": "harness",
        }

    def workflow_rel(self) -> str:
        return f".github/workflows/{self.workflow.name}"

    # the workflow ------------------------------------------------------------------------------
    def execute(self, only: list[str] | None = None) -> WorkflowRun:
        jobs = self.spec["jobs"]
        for name in _job_order(jobs):
            if only is not None and name not in only:
                continue
            self.run.jobs[name] = self.run_job(name, jobs[name])
        return self.run

    def run_job(self, name: str, job: dict) -> list[JobResult]:
        needs = {n: {"result": self._needs_result(n), "outputs": self._needs_outputs(n)} for n in _needs(job)}
        base = {"github": self.github_context(Path("/nonexistent")), "vars": self.world.variables, "secrets": self.world.secrets,
                "needs": needs, "inputs": {}}

        def status(fn: str) -> bool:
            ok = all(v["result"] == "success" for v in needs.values())
            return {"success": ok, "failure": not ok, "cancelled": False, "always": True}[fn]

        if not condition(job.get("if"), base, status):
            return [JobResult(name, "skipped")]
        matrix = interpolate((job.get("strategy") or {}).get("matrix"), base)
        instances = [{}] if matrix is None else list(matrix.get("include", [])) if isinstance(matrix, dict) else None
        if instances is None or (matrix and set(matrix) - {"include"}):
            raise ExpressionError(f"job {name}: only strategy.matrix with include: is emulated")
        return [self.run_instance(name, job, needs, item, i) for i, item in enumerate(instances)]

    def _needs_result(self, name: str) -> str:
        results = [j.result for j in self.run.jobs.get(name, [])]
        return "failure" if "failure" in results else "skipped" if not results or set(results) == {"skipped"} else "success"

    def _needs_outputs(self, name: str) -> dict[str, str]:
        out: dict[str, str] = {}
        for job in self.run.jobs.get(name, []):
            out.update(job.outputs)
        return out

    def run_instance(self, name: str, job: dict, needs: dict, matrix: dict, index: int) -> JobResult:
        folder = self.home / f"{name}-{index}"
        workspace, temp, venv_dir = folder / "work", folder / "temp", folder / "venv"
        workspace.mkdir(parents=True)
        temp.mkdir()
        fresh_venv(self.world, venv_dir)
        result = JobResult(name, "success", venv=venv_dir, workspace=workspace)
        ctx = {"github": self.github_context(workspace), "vars": self.world.variables, "secrets": self.world.secrets,
               "needs": needs, "matrix": matrix, "inputs": {}, "steps": {},
               "runner": {"temp": str(temp), "os": "Linux", "arch": "X64"}}
        env = self.base_env(workspace, temp, venv_dir)
        ctx["env"] = {}
        for key, value in (self.spec.get("env") or {}).items():
            ctx["env"][key] = to_string(interpolate(value, ctx))
        for key, value in (job.get("env") or {}).items():
            ctx["env"][key] = to_string(interpolate(value, ctx))
        failed = False

        def status(fn: str) -> bool:
            return {"success": not failed, "failure": failed, "cancelled": False, "always": True}[fn]

        for i, step in enumerate(job.get("steps", [])):
            label = step.get("name") or step.get("uses") or step.get("run", "").splitlines()[0]
            if not condition(step.get("if"), ctx, status):
                result.steps.append(StepResult(label, "skipped"))
                if step.get("id"):
                    ctx["steps"][step["id"]] = {"outcome": "skipped", "conclusion": "skipped", "outputs": {}}
                continue
            outcome = self.run_step(step, ctx, env, workspace, temp, label, i, result)
            if step.get("id"):
                conclusion = "success" if outcome.outcome == "success" or step.get("continue-on-error") else "failure"
                ctx["steps"][step["id"]] = {"outcome": outcome.outcome, "conclusion": conclusion, "outputs": outcome.outputs}
            if outcome.outcome == "failure" and not step.get("continue-on-error"):
                failed = True
        result.result = "failure" if failed else "success"
        result.outputs = {k: to_string(interpolate(v, ctx)) for k, v in (job.get("outputs") or {}).items()}
        return result

    # steps -------------------------------------------------------------------------------------
    def run_step(self, step: dict, ctx: dict, env: dict, workspace: Path, temp: Path, label: str, index: int,
                 job: JobResult) -> StepResult:
        step_env = {k: to_string(interpolate(v, ctx)) for k, v in (step.get("env") or {}).items()}
        if "run" in step:
            out = self.shell(step["run"], {**env, **ctx["env"], **step_env}, workspace / (step.get("working-directory") or ""),
                             temp, f"{index}")
        else:
            out = self.uses(step, ctx, env, workspace, temp, index, job)
        out.name = label
        job.steps.append(out)
        return out

    def shell(self, script: str, env: dict, cwd: Path, temp: Path, tag: str) -> StepResult:
        if "${{" in script:
            raise ExpressionError("an expression inside run: (the workflows pass values through env:)")
        output_file, summary = temp / f"_output_{tag}", temp / f"_summary_{tag}"
        output_file.write_text("")
        script_file = temp / f"_step_{tag}.sh"
        script_file.write_text(script)
        env = {**env, "GITHUB_OUTPUT": str(output_file), "GITHUB_STEP_SUMMARY": str(summary)}
        done = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script_file)], cwd=cwd, env=env,
                              capture_output=True, text=True, timeout=900)
        return StepResult("", "success" if done.returncode == 0 else "failure", done.stdout + done.stderr,
                          _parse_outputs(output_file.read_text()))

    def uses(self, step: dict, ctx: dict, env: dict, workspace: Path, temp: Path, index: int, job: JobResult) -> StepResult:
        uses = step["uses"]
        given = {k: to_string(interpolate(v, ctx)) for k, v in (step.get("with") or {}).items()}
        try:
            if uses == CHECKOUT:
                return self.checkout(given, workspace)
            if uses == SETUP_PYTHON:
                assert given.get("python-version"), "setup-python without python-version"
                return StepResult("", "success", "setup-python: the job's fresh virtualenv")
            if uses == UPLOAD:
                return self.upload(given)
            if uses == DOWNLOAD:
                return self.download(given)
            if uses == "./" or uses.split("@")[0].endswith("/quantgate"):
                return self.action(uses, given, ctx, env, workspace, temp, index)
        except (RuntimeError, AssertionError, OSError) as exc:
            return StepResult("", "failure", f"{uses}: {exc}")
        raise ExpressionError(f"uses: {uses} is not emulated (pin it to one of the known commits)")

    def checkout(self, given: dict, workspace: Path) -> StepResult:
        assert given.get("persist-credentials") == "false", "checkout without persist-credentials: false"
        repository = given.get("repository") or self.repository
        remote = self.world.remotes.get(repository)
        if remote is None:
            raise RuntimeError(f"no such repository {repository}")
        target = workspace / given.get("path", "")
        if target.exists() and any(target.iterdir()):
            shutil.rmtree(target)
        target.mkdir(parents=True, exist_ok=True)
        ref = given.get("ref") or (self.sha if repository == self.repository else "HEAD")
        git(target, "init", "-q")
        git(target, "remote", "add", "origin", str(remote))
        depth = given.get("fetch-depth", "1")
        if depth == "0":
            git(target, "fetch", "-q", "origin", "+refs/heads/*:refs/remotes/origin/*")
        else:
            ref_fetch = ref if len(ref) == 40 else f"+refs/heads/{ref}:refs/remotes/origin/{ref}"
            git(target, "fetch", "-q", "--depth", depth, "origin", ref_fetch)
        if len(ref) == 40:
            if depth == "0":
                git(target, "fetch", "-q", "origin", ref)
            git(target, "checkout", "-q", "--detach", ref)
        else:
            git(target, "checkout", "-q", "-B", ref, f"refs/remotes/origin/{ref}")
        return StepResult("", "success", f"checked out {repository}@{git(target, 'rev-parse', 'HEAD')} into {target}")

    def upload(self, given: dict) -> StepResult:
        source = Path(given["path"])
        folder = self.world.artifacts / str(self.run.run_id) / given["name"]
        if folder.exists():
            raise RuntimeError(f"an artifact named {given['name']} exists already in this run")
        files = [p for p in source.rglob("*") if p.is_file()] if source.is_dir() else []
        if not files and given.get("if-no-files-found", "warn") == "error":
            raise RuntimeError(f"no files under {source}")
        shutil.copytree(source, folder)
        return StepResult("", "success", f"uploaded {len(files)} files as {given['name']}")

    def download(self, given: dict) -> StepResult:
        assert given.get("github-token") == TOKEN, "download-artifact from another run needs github-token"
        run_id = given.get("run-id")
        assert run_id, "download-artifact without run-id"
        found = sorted(p for p in (self.world.artifacts / run_id).iterdir()
                       if fnmatch.fnmatch(p.name, given.get("pattern") or given.get("name") or "*"))
        target = Path(given["path"])
        for artifact in found:
            dest = target if given.get("merge-multiple") == "true" else target / artifact.name
            shutil.copytree(artifact, dest, dirs_exist_ok=True)
        return StepResult("", "success", f"downloaded {[p.name for p in found]} from run {run_id}")

    def action(self, uses: str, given: dict, ctx: dict, env: dict, workspace: Path, temp: Path, index: int) -> StepResult:
        if uses == "./":
            path, repository, action_ref = workspace, "", ""
        else:
            repository, action_ref = uses.split("@", 1)
            path = temp.parent / "_actions" / repository / action_ref
            path.mkdir(parents=True)
            bare = self.world.remotes[repository]
            archive = subprocess.run(["git", "archive", action_ref], cwd=bare, capture_output=True, check=True).stdout
            subprocess.run(["tar", "-x", "-C", str(path)], input=archive, check=True)
        spec = load_yaml(path / "action.yml")
        inputs = {k: str(v.get("default", "")) for k, v in (spec.get("inputs") or {}).items()}
        unknown = set(given) - set(inputs)
        assert not unknown, f"inputs the action does not declare: {unknown}"
        inputs.update(given)
        inner = {**ctx, "inputs": inputs, "steps": {},
                 "github": {**ctx["github"], "action_path": str(path), "action_repository": repository, "action_ref": action_ref}}
        logs, failed = [], False

        def status(fn: str) -> bool:
            return {"success": not failed, "failure": failed, "cancelled": False, "always": True}[fn]

        for i, step in enumerate(spec["runs"]["steps"]):
            if not condition(step.get("if"), inner, status):
                continue
            if "uses" in step:
                if step["uses"] != SETUP_PYTHON:
                    raise ExpressionError(f"action step uses: {step['uses']} is not emulated")
                continue
            assert step.get("shell") == "bash", "composite run steps name their shell"
            step_env = {k: to_string(interpolate(v, inner)) for k, v in (step.get("env") or {}).items()}
            out = self.shell(step["run"], {**env, **ctx["env"], **step_env}, workspace, temp, f"{index}_{i}")
            logs.append(out.output)
            if out.outcome == "failure":
                failed = True
                break
        return StepResult("", "failure" if failed else "success", "\n".join(logs))


def fresh_venv(world: World, target: Path) -> None:
    """A fresh virtualenv (python + pip, nothing else): a copy of one pristine virtualenv made once per
    world (``python -m venv`` runs ensurepip, seconds per job; the copy is the same bytes). Console
    scripts are written by pip into the copy, so no path of the pristine one is used."""
    pristine = world.tmp / "pristine-venv"
    if not pristine.exists():
        venv.EnvBuilder(with_pip=True, symlinks=True).create(pristine)
    shutil.copytree(pristine, target, symlinks=True)
    cfg = target / "pyvenv.cfg"
    cfg.write_text(cfg.read_text().replace(str(pristine), str(target)))


def _parse_outputs(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    lines = iter(text.splitlines())
    for line in lines:
        if "<<" in line and "=" not in line.split("<<", 1)[0]:
            name, marker = line.split("<<", 1)
            body = []
            for inner in lines:
                if inner == marker:
                    break
                body.append(inner)
            out[name] = "\n".join(body)
        elif "=" in line:
            name, value = line.split("=", 1)
            out[name] = value
    return out


def run_workflow(world: World, workflow: Path, event_name: str, payload: dict, **kwargs: Any) -> WorkflowRun:
    only = kwargs.pop("only", None)
    return Runner(world, workflow, event_name, payload, **kwargs).execute(only)


def env_without_project() -> dict[str, str]:
    """Variables passed through from this process: none of PYTHONPATH/VIRTUAL_ENV/PATH (a job sees only
    its own virtualenv), only git's isolated config, the home folder and offline flags."""
    keep = ("GIT_CONFIG_GLOBAL", "GIT_CONFIG_NOSYSTEM", "HOME", "LANG", "PIP_FIND_LINKS", "PIP_CERT", "PIP_DEFAULT_TIMEOUT",
            "PIP_DISABLE_PIP_VERSION_CHECK", "SSL_CERT_FILE", "TMPDIR")
    env = {k: os.environ[k] for k in keep if k in os.environ}
    env.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONDONTWRITEBYTECODE": "1"})
    return env

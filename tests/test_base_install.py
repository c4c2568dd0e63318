"""The pull-request jobs install quantgate without the model stack: ``validate``, ``plan`` and
``changed`` must work there on every shipped manifest, and give the same plan and cache keys as a
machine with torch (the plan is decided from the registry's declared capabilities, not from what is
installed). This builds a real virtualenv with only ``pip install .`` and runs the real CLI in it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def base_venv(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("base-venv")
    venv.EnvBuilder(with_pip=True).create(home)
    python = home / "bin" / "python"
    source = tmp_path_factory.mktemp("src") / "quantgate"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".venv", ".git", "models", "artifacts", "reports", ".quantgate",
                                                                "__pycache__", "*.egg-info", "build", ".hypothesis", ".ruff_cache"))
    done = subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", str(source)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return home


def test_the_base_install_has_no_model_stack(base_venv):
    probe = "import importlib.util as u; print([m for m in ('torch', 'transformers', 'onnxruntime', 'torchao') if u.find_spec(m)])"
    out = subprocess.run([str(base_venv / "bin" / "python"), "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_validate_plan_and_changed_work_without_the_model_stack(base_venv, tmp_path):
    repo = tmp_path / "repo"
    shutil.copytree(ROOT, repo, ignore=shutil.ignore_patterns(".venv", ".git", "models", "artifacts", "reports", ".quantgate",
                                                              "__pycache__", "*.egg-info", "build", ".hypothesis", ".ruff_cache"))
    env = {**os.environ, "GITHUB_ACTIONS": "", "PATH": f"{base_venv / 'bin'}{os.pathsep}{os.environ['PATH']}"}
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=repo, check=True)
    subprocess.run([*git, "add", "-A"], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-qm", "base", "--no-verify"], cwd=repo, check=True)
    quantgate = str(base_venv / "bin" / "quantgate")
    manifests = sorted(p for p in (repo / "manifests").glob("*.yaml") if p.name.count(".") == 1)
    assert manifests

    validate = subprocess.run([quantgate, "validate"], cwd=repo, env=env, capture_output=True, text=True)
    assert validate.returncode == 0, validate.stdout + validate.stderr
    for manifest in manifests:
        bare = subprocess.run([quantgate, "plan", str(manifest.relative_to(repo)), "--format", "json"], cwd=repo, env=env,
                              capture_output=True, text=True)
        assert bare.returncode == 0, bare.stderr
        full = subprocess.run([sys.executable, "-m", "compiler.cli", "plan", str(manifest.relative_to(repo)), "--format", "json"],
                              cwd=repo, capture_output=True, text=True)
        assert full.returncode == 0, full.stderr
        bare_plan, full_plan = json.loads(bare.stdout), json.loads(full.stdout)
        assert bare_plan["backend"] == full_plan["backend"]
        assert [(p["name"], p["status"], p["cache_key"]) for p in bare_plan["plays"]] == \
               [(p["name"], p["status"], p["cache_key"]) for p in full_plan["plays"]]

    (repo / "manifests" / manifests[0].name).write_text(manifests[0].read_text().replace("description:", "description: edited", 1))
    changed = subprocess.run([quantgate, "changed", "--base", "main", "--format", "paths"], cwd=repo, env=env, capture_output=True, text=True)
    assert changed.returncode == 0, changed.stderr
    assert changed.stdout.split() == [f"manifests/{manifests[0].name}"]

"""The scheduled monitor workflow `quantgate init` scaffolds passes actionlint and zizmor."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

TEMPLATE = Path(__file__).resolve().parents[2] / "compiler" / "gitops" / "scaffold_templates" / "quantgate-monitor.yml"
BIN = Path(sys.executable).parent


def _tool(name: str) -> str:
    found = shutil.which(name, path=str(BIN)) or shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed (pip install -e '.[test]')")
    return found


@pytest.fixture
def workflow(tmp_path: Path) -> Path:
    folder = tmp_path / ".github" / "workflows"
    folder.mkdir(parents=True)
    target = folder / TEMPLATE.name
    target.write_text(TEMPLATE.read_text().replace("__QUANTGATE_VERSION__", "0.1.0"))
    subprocess.run(["git", "init", "--quiet", str(tmp_path)], check=True)
    return target


def test_actionlint_passes(workflow):
    done = subprocess.run([_tool("actionlint"), str(workflow)], capture_output=True, text=True, cwd=workflow.parents[2])
    assert done.returncode == 0, done.stdout + done.stderr


def test_zizmor_finds_nothing_above_low(workflow):
    done = subprocess.run([_tool("zizmor"), "--offline", "--format", "json", str(workflow)],
                          capture_output=True, text=True, cwd=workflow.parents[2])
    findings = json.loads(done.stdout or "[]")
    severe = [f["ident"] for f in findings if f["determinations"]["severity"] not in ("Unknown", "Informational", "Low")]
    assert severe == [], done.stdout


def test_template_runs_the_monitor_with_least_privilege():
    text = TEMPLATE.read_text()
    assert "permissions: {}" in text and "persist-credentials: false" in text
    assert "quantgate monitor --prometheus \"$PROMETHEUS_URL\" --pr" in text
    for line in text.splitlines():
        if line.strip().startswith("run:"):
            assert "${{" not in line  # event and variable text reach the shell only through env:

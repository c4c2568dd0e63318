"""The CLI's shared behaviour: global -q/-v, --format json everywhere, several manifests, suggestions
for typos, quiet broken pipes, completion scripts, comment --dry-run."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from compiler.cli import main

REPO_ROOT = Path(__file__).resolve().parents[2]


def second_manifest(repo) -> Path:
    other = repo.root / "manifests" / "other.yaml"
    other.write_text(repo.manifest.read_text().replace("name: demo", "name: other"))
    return other


def test_plan_takes_several_manifests_and_defaults_to_all(repo, capsys, monkeypatch):
    other = second_manifest(repo)
    monkeypatch.chdir(repo.root)
    assert main(["plan", "--format", "json"]) == 0
    plans = json.loads(capsys.readouterr().out)
    assert [p["name"] for p in plans] == ["demo", "other"]
    assert main(["plan", str(repo.manifest), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["name"] == "demo"  # one named: the object, as before
    assert main(["plan", str(repo.manifest), str(other)]) == 0
    assert capsys.readouterr().out.count("plan for ") == 2


@pytest.mark.parametrize("argv", [["validate"], ["plan"], ["verify"], ["rules"], ["report"]])
def test_reporting_commands_speak_json(repo, capsys, monkeypatch, argv):
    monkeypatch.chdir(repo.root)
    if argv == ["report"]:
        from fake_runner import FakeRunner

        from compiler import api

        api.run(repo.manifest, runner=FakeRunner(root=repo.root), root=repo.root)
        capsys.readouterr()
    code = main([*argv, "--format", "json"])
    data = json.loads(capsys.readouterr().out)
    assert code in (0, 1)
    if argv == ["report"]:
        assert data[0]["report"].endswith("reports/demo/report.md")
    assert data


def test_report_says_where_it_wrote(repo, capsys, monkeypatch):
    from fake_runner import FakeRunner

    from compiler import api

    api.run(repo.manifest, runner=FakeRunner(root=repo.root), root=repo.root)
    monkeypatch.chdir(repo.root)
    capsys.readouterr()
    assert main(["report", str(repo.manifest)]) == 0
    assert capsys.readouterr().out.startswith("reports/demo/report.md: ")


def test_quiet_and_verbose_are_global(repo, capsys, monkeypatch):
    monkeypatch.chdir(repo.root)
    assert main(["validate"]) == 0
    assert "ok: 1 manifest valid" in capsys.readouterr().out
    assert main(["-q", "validate"]) == 0 and capsys.readouterr().out == ""
    assert main(["validate", "-q"]) == 0 and capsys.readouterr().out == ""
    assert main(["validate", "-v"]) == 0 and "ok:" in capsys.readouterr().out


def test_typos_get_a_suggestion(capsys):
    assert main(["paln"]) == 2
    assert "did you mean 'plan'?" in capsys.readouterr().err
    assert main(["validate", "--fromat", "json"]) == 2
    assert "--fromat: did you mean '--format'?" in capsys.readouterr().err
    assert main(["plan", "x.yaml", "--json"]) == 2
    assert "did you mean '--format json'?" in capsys.readouterr().err


def test_a_closed_pipe_ends_quietly(repo):
    """`quantgate plan ... | head -1`: no traceback, no 'internal error', exit 141 like other writers."""
    exe = shutil.which("quantgate", path=str(Path(sys.executable).parent))
    assert exe
    script = f'"{exe}" plan "{repo.manifest}" | head -1; echo "rc=${{PIPESTATUS[0]}}"'
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, cwd=repo.root, timeout=120,
                          env={**os.environ, "QUANTGATE_DEBUG": "0"})
    assert done.stdout.splitlines()[0].startswith("plan for ")
    assert done.stdout.splitlines()[-1] in ("rc=141", "rc=0")
    assert "Traceback" not in done.stderr and "internal error" not in done.stderr and "BrokenPipe" not in done.stderr, done.stderr


@pytest.mark.parametrize("shell", ["bash", "zsh"])
def test_completion_scripts_parse_and_complete(shell, capsys, tmp_path):
    assert main(["completion", shell]) == 0
    script = tmp_path / "completion.sh"
    script.write_text(capsys.readouterr().out)
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0
    if shell == "zsh":
        assert "bashcompinit" in script.read_text()
        return
    probe = (f"source {script}\n"
             "COMP_WORDS=(quantgate pl); COMP_CWORD=1; _quantgate; echo \"1:${COMPREPLY[*]}\"\n"
             "COMP_WORDS=(quantgate run --fo); COMP_CWORD=2; _quantgate; echo \"2:${COMPREPLY[*]}\"\n"
             "COMP_WORDS=(quantgate run --force m); COMP_CWORD=3; _quantgate; echo \"3:${COMPREPLY[*]}\"\n")
    out = subprocess.run(["bash", "-c", probe], capture_output=True, text=True).stdout.splitlines()
    assert out == ["1:plan", "2:--force --format", "3:mixed_precision"]


def test_comment_dry_run_prints_the_body_and_posts_nothing(repo, capsys, monkeypatch, tmp_path):
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    monkeypatch.delenv("GITHUB_TOKEN", raising=False)
    body = tmp_path / "body.md"
    body.write_text("hello <!-- quantgate:evil -->\n")
    assert main(["comment", str(repo.manifest), "--dry-run", "--body-file", str(body)]) == 0
    out = capsys.readouterr().out
    assert out == "<!-- quantgate:demo -->\nhello &lt;!-- quantgate:evil -->\n"
    assert not summary.exists()
    assert main(["comment", str(repo.manifest), "--body-file", str(body)]) == 2  # a real post needs --pr
    assert "--pr" in capsys.readouterr().err

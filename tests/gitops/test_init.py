"""`quantgate init` in a repository that has nothing yet, the action pin, CODEOWNERS coverage, and
`quantgate schema` refusing to write into somebody else's repository."""

from __future__ import annotations

import json

import pytest
from ruamel.yaml import YAML

from compiler.cli import main
from compiler.gitops import scaffold
from compiler.gitops.scaffold import ACTION_ENV, BLOCK_BEGIN, action_ref, codeowners_gaps
from compiler.manifest.schemas import render_schema

from .conftest import demo_manifest_text

PIN = "acme/quantgate@0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(autouse=True)
def _pinned(monkeypatch):
    monkeypatch.setenv(ACTION_ENV, PIN)


def test_init_in_an_empty_repository_writes_a_starter_that_hangs_together(tmp_path, capsys):
    assert main(["init", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    starter = tmp_path / "manifests" / "example.yaml"
    assert f"written {starter.relative_to(tmp_path)}" in out and "written quantgate.yaml" in out
    assert f"workflows use: {PIN}" in out
    # the starter's modeline resolves to a schema init wrote into this repository
    modeline = starter.read_text().splitlines()[0]
    assert modeline == "# yaml-language-server: $schema=../schemas/manifest.schema.json"
    schema_file = (starter.parent / modeline.split("$schema=")[1]).resolve()
    assert schema_file.read_text() == render_schema("compiler.manifest.model:Manifest")
    # ... and the starter itself matches it
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.validate(YAML(typ="safe").load(starter.read_text()), json.loads(schema_file.read_text()))
    # CODEOWNERS: filled from the starter's owners; the admins default to its platform lead
    owners = (tmp_path / ".github" / "CODEOWNERS").read_text()
    assert "/manifests/example.* @your-org/ml-engineers @your-org/platform @your-org/product" in owners
    assert "/quantgate.yaml @your-org/platform" in owners and "/schemas/manifest.schema.json @your-org/platform" in owners
    assert "ml-oncall" not in owners
    # quantgate.yaml is all defaults (comments) and loads
    from compiler.manifest.load import load_repo_config

    assert load_repo_config(tmp_path).runner_labels.cpu == ["ubuntu-latest"]
    # validate reads the starter: only the data it asks the user to provide is missing
    capsys.readouterr()
    assert main(["validate", "--root", str(tmp_path), str(starter), "--format", "json"]) == 2
    report = json.loads(capsys.readouterr().out)
    assert {e["key_path"] for e in report["errors"]} == {"evaluation.dataset.path", "quantization.calibration.dataset.path"}


def test_init_keeps_the_users_starter_files_and_writes_no_starter_next_to_manifests(tmp_path):
    (tmp_path / "manifests").mkdir()
    (tmp_path / "manifests" / "minilm-stsb.yaml").write_text(demo_manifest_text())
    (tmp_path / "quantgate.yaml").write_text("runner_labels: {cpu: [my-runner]}\n")
    assert main(["init", "--root", str(tmp_path)]) == 0
    assert not (tmp_path / "manifests" / "example.yaml").exists()
    assert (tmp_path / "quantgate.yaml").read_text() == "runner_labels: {cpu: [my-runner]}\n"
    assert (tmp_path / "schemas" / "manifest.schema.json").is_file()


def test_the_pin_comes_from_the_flag_the_environment_or_nowhere(tmp_path, monkeypatch, capsys):
    assert action_ref("other/quantgate@" + "a" * 40) == "other/quantgate@" + "a" * 40
    assert action_ref() == PIN
    assert main(["init", "--root", str(tmp_path), "--action", "main"]) == 2
    assert "is not OWNER/REPO@<40-hex commit sha>" in capsys.readouterr().err
    # nothing answers: refuse rather than pin a guess
    monkeypatch.delenv(ACTION_ENV)
    monkeypatch.setattr(scaffold, "_from_direct_url", lambda: (None, None))
    monkeypatch.setattr(scaffold, "_from_checkout", lambda source: None)
    monkeypatch.setattr(scaffold.resources, "files", lambda package: tmp_path / "no-such-package")
    assert main(["init", "--root", str(tmp_path / "repo")]) == 2
    assert "cannot tell which quantgate commit is running" in capsys.readouterr().err


def test_the_pin_can_be_read_from_a_github_checkout(tmp_path):
    import subprocess

    src = tmp_path / "src"
    src.mkdir()
    for args in (["init", "-q", "-b", "main"], ["remote", "add", "origin", "https://github.com/acme/quantgate.git"],
                 ["-c", "user.name=t", "-c", "user.email=t@e", "commit", "-q", "--allow-empty", "-m", "x"]):
        subprocess.run(["git", *args], cwd=src, check=True)
    sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=src, capture_output=True, text=True, check=True).stdout.strip()
    assert scaffold._from_checkout(src) == f"acme/quantgate@{sha}"
    subprocess.run(["git", "remote", "set-url", "origin", "https://gitlab.example/acme/quantgate.git"], cwd=src, check=True)
    assert scaffold._from_checkout(src) is None  # not a GitHub repository: no `uses:` can name it


def test_verify_helper_reports_a_codeowners_that_no_longer_covers_a_manifest(tmp_path):
    (tmp_path / "manifests").mkdir()
    manifest = tmp_path / "manifests" / "minilm-stsb.yaml"
    manifest.write_text(demo_manifest_text())
    assert codeowners_gaps(tmp_path) == []  # no quantgate block: not adopted, nothing to say
    assert main(["init", "--root", str(tmp_path)]) == 0
    assert codeowners_gaps(tmp_path) == []
    manifest.write_text(demo_manifest_text().replace('product_owner: ["@product-lead"]', 'product_owner: ["@new-lead"]'))
    (tmp_path / "manifests" / "second.yaml").write_text(demo_manifest_text().replace("name: minilm-stsb", "name: second"))
    gaps = codeowners_gaps(tmp_path)
    assert len(gaps) == 2 and all(g.startswith(".github/CODEOWNERS: manifests/") for g in gaps)
    assert "manifests/minilm-stsb.yaml" in gaps[0] and "@new-lead" in gaps[0] and "manifests/second.yaml" in gaps[1]
    assert main(["init", "--root", str(tmp_path)]) == 0
    assert codeowners_gaps(tmp_path) == []
    assert (tmp_path / ".github" / "CODEOWNERS").read_text().count(BLOCK_BEGIN) == 1


def test_schema_writes_into_another_repository_only_when_asked(tmp_path, monkeypatch, capsys):
    (tmp_path / "manifests").mkdir()
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "manifest.md").write_text("# our own manifest notes\n")
    monkeypatch.chdir(tmp_path)
    assert main(["schema"]) == 2
    assert "not quantgate's own repository" in capsys.readouterr().err
    assert (tmp_path / "docs" / "manifest.md").read_text() == "# our own manifest notes\n"
    assert not (tmp_path / "schemas").exists()
    assert main(["schema", "--output", "schemas"]) == 0
    assert sorted(p.name for p in (tmp_path / "schemas").iterdir()) == ["lock.schema.json", "manifest.schema.json"]
    assert (tmp_path / "docs" / "manifest.md").read_text() == "# our own manifest notes\n"
    assert main(["schema", "--force"]) == 0
    assert (tmp_path / "docs" / "manifest.md").read_text() != "# our own manifest notes\n"

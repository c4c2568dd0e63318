"""The front door: no torch on the validate/schema path, schema and reference freshness, GitHub
annotations, --version/--help, and comments surviving a round trip."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import pytest
from manifest_support import REPO_ROOT, make_repo, validate, write
from ruamel.yaml import YAML

from compiler import __version__
from compiler.cli import main
from compiler.discover import manifest_paths
from compiler.errors import Problem
from compiler.manifest.load import load_manifest
from compiler.manifest.reference import undocumented
from compiler.manifest.schemas import generated

HEAVY = ("torch", "transformers", "optimum", "onnx", "onnxruntime", "torchao", "numpy")
PROBE = """
import sys
from compiler.cli import main
code = main({argv!r}) if {argv!r} else 0
heavy = sorted({{m.split('.')[0] for m in sys.modules}} & set({heavy!r}))
print('HEAVY=' + ','.join(heavy))
sys.exit(code)
"""


@pytest.mark.parametrize("argv", [[], ["validate"], ["schema", "--check"], ["--version"], ["validate", "--help"]],
                         ids=["import", "validate", "schema", "version", "help"])
def test_no_heavy_imports(argv):
    done = subprocess.run([sys.executable, "-c", PROBE.format(argv=argv, heavy=HEAVY)], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "HEAVY=\n" in done.stdout, done.stdout


def test_generated_files_are_fresh():
    """schemas/*.json and docs/manifest.md equal what the models generate: run `quantgate schema`."""
    for path, text in generated(REPO_ROOT):
        assert path.read_text(encoding="utf-8") == text, f"{path} is stale: run quantgate schema"


def test_schema_check_detects_staleness(tmp_path, capsys):
    assert main(["schema", "--root", str(tmp_path)]) == 0
    assert main(["schema", "--root", str(tmp_path), "--check"]) == 0
    schema = tmp_path / "schemas" / "manifest.schema.json"
    before = schema.read_bytes()
    assert main(["schema", "--root", str(tmp_path)]) == 0 and schema.read_bytes() == before  # deterministic
    schema.write_text(schema.read_text().replace('"metadata"', '"meta"', 1))
    capsys.readouterr()
    assert main(["schema", "--root", str(tmp_path), "--check"]) == 1
    assert "schemas/manifest.schema.json: stale; run quantgate schema" in capsys.readouterr().err


def test_schema_accepts_every_example():
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((REPO_ROOT / "schemas" / "manifest.schema.json").read_text())
    for path in manifest_paths(REPO_ROOT):
        jsonschema.validate(YAML(typ="safe", pure=True).load(path.read_text()), schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"apiVersion": "quantgate/v1", "kind": "QuantizationManifest", "extra": 1}, schema)


def test_every_field_is_documented():
    assert undocumented() == []
    reference = (REPO_ROOT / "docs" / "manifest.md").read_text()
    for key in ("`close_margin`", "`trusted_remote_code`", "`memory_per_device`", "`protected_layers`", "`stride`"):
        assert key in reference


@pytest.mark.parametrize("path", manifest_paths(REPO_ROOT), ids=lambda p: p.name)
def test_comments_round_trip(path):
    loaded = load_manifest(path)
    yaml = YAML(typ="rt")
    yaml.width = 4096
    yaml.preserve_quotes = True
    yaml.indent(mapping=2, sequence=4, offset=2)
    out = io.StringIO()
    yaml.dump(loaded.tree, out)
    dumped = out.getvalue()
    comments = [line.split("#", 1)[1] for line in loaded.text.splitlines() if "#" in line]
    assert comments and all(c in dumped for c in comments)
    assert YAML(typ="safe", pure=True).load(dumped) == YAML(typ="safe", pure=True).load(loaded.text)


def test_github_annotations(tmp_path, capsys, monkeypatch):
    repo = make_repo(tmp_path)
    write(repo, "apiVersion: quantgate/v1\nkind: QuantizationManifest\nmetadata: {name: 'x', description: 1}\nbogus%key: 1\n")
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    code, out, err = validate(capsys, "--root", str(repo))
    assert code == 2
    lines = out.splitlines()
    assert "::error file=manifests/m.yaml,line=1,col=1,title=quantgate::required keys 'owners', 'model', 'evaluation', 'envelope', 'quantization', 'gate' are missing" in lines
    assert any(line.startswith("::error file=manifests/m.yaml,line=3,col=36,title=quantgate%3A metadata.description::") for line in lines)
    assert any(line.startswith("::error file=manifests/m.yaml,line=4,col=1,title=quantgate%3A bogus%25key::bogus%25key: unknown key") for line in lines)
    assert err.splitlines()[0].startswith("manifests/m.yaml:")  # the human text still goes to stderr
    monkeypatch.delenv("GITHUB_ACTIONS")
    code, out, _ = validate(capsys, "--root", str(repo))
    assert code == 2 and "::error" not in out


def test_annotation_escaping():
    problem = Problem(path="a,b:c.yaml", message="50% bad\nline two\r::warning::forged", line=3, col=4, key_path="x")
    assert problem.github() == ("::error file=a%2Cb%3Ac.yaml,line=3,col=4,title=quantgate%3A x::"
                                "x: 50%25 bad%0Aline two%0D::warning::forged")
    assert "\n" not in problem.github()


def test_version_and_help(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"quantgate {__version__}"
    assert main(["--help"]) == 0
    text = capsys.readouterr().out
    assert "validate" in text and "exit codes:" in text
    assert main([]) == 2
    assert main(["validate", "--format", "xml"]) == 2

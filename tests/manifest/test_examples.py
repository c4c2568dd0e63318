"""Every manifest shipped in manifests/ validates, alone and together (exit 0), and loads into the
documented LoadedManifest shape."""

from __future__ import annotations

import hashlib

import pytest
from manifest_support import REPO_ROOT, validate

from compiler.discover import manifest_paths
from compiler.manifest.load import load_manifest

EXAMPLES = manifest_paths(REPO_ROOT)


def test_examples_exist():
    names = {p.name for p in EXAMPLES}
    assert {"minilm-stsb.yaml", "minilm-stsb-int4.yaml", "smollm2-wikitext.yaml"} <= names
    assert not any(p.name.endswith((".lock.yaml", ".rules.yaml", ".serving.yaml")) for p in EXAMPLES)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_validates(path, capsys):
    code, out, err = validate(capsys, str(path))
    assert code == 0, err
    assert "ok: 1 manifest valid" in out
    assert "error" not in err


def test_all_examples_validate_together(capsys, monkeypatch):
    monkeypatch.chdir(REPO_ROOT)
    code, out, err = validate(capsys)
    assert code == 0, err
    assert f"ok: {len(EXAMPLES)} manifests valid" in out


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_loaded_manifest_contract(path):
    loaded = load_manifest(path)
    assert loaded.path == path
    assert loaded.root == REPO_ROOT
    assert loaded.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert loaded.text == path.read_text(encoding="utf-8")
    assert loaded.manifest.metadata.name == path.stem
    assert loaded.tree["metadata"]["name"] == path.stem  # the ruamel tree, parsed on demand
    assert loaded.tree.lc.key("apiVersion")[0] >= 0


def test_example_choices():
    by_name = {p.stem: load_manifest(p).manifest for p in EXAMPLES}
    int4 = by_name["minilm-stsb-int4"]
    assert (int4.quantization.weights, int4.quantization.group_size, int4.quantization.backend) == ("int4", 32, "torchao")
    assert (int4.gate.max_drop, int4.gate.hardest_max_drop, int4.gate.close_margin) == (0.0008, 0.03, 0.01)
    assert int4.mixed_precision.enabled and int4.mixed_precision.max_protected_fraction == 0.06
    smol = by_name["smollm2-wikitext"]
    assert smol.model.task == "causal-lm" and smol.model.gguf_file.endswith(".gguf")
    assert (smol.evaluation.dataset.format, smol.evaluation.metric, smol.gate.relative) == ("text", "perplexity", True)
    assert smol.lower_is_better and not by_name["minilm-stsb"].lower_is_better


def test_readme_example_validates(repo, capsys):
    """The manifest shown in README.md is a real one (a README nobody runs goes stale)."""
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    block = readme.split("## A manifest", 1)[1].split("```yaml\n", 1)[1].split("```", 1)[0]
    (repo / "manifests" / "readme.yaml").write_text(block, encoding="utf-8")
    code, out, err = validate(capsys, "--root", str(repo))
    assert code == 0, err


def test_readme_quickstart_has_two_commands():
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    block = readme.split("## Quickstart", 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    commands = [line.split("#")[0].strip() for line in block.splitlines() if line.strip()]
    assert commands == ["scripts/demo", "scripts/test"]
    assert all((REPO_ROOT / c).is_file() for c in commands)

"""A throwaway quantgate repository per test: a manifest, small data files, a tiny model folder."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from playbook_support import MANIFEST, Repo  # noqa: E402


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    (tmp_path / "manifests").mkdir()
    (tmp_path / "data").mkdir()
    (tmp_path / "models" / "tiny").mkdir(parents=True)
    (tmp_path / "models" / "tiny" / "config.json").write_text('{"model_type": "bert"}\n')
    (tmp_path / "data" / "eval.tsv").write_text("".join(f"{i % 5}\tsentence a {i}\tsentence b {i}\n" for i in range(20)))
    (tmp_path / "data" / "train.tsv").write_text("".join(f"{i % 5}\ttrain a {i}\ttrain b {i}\n" for i in range(20)))
    (tmp_path / "quantgate.yaml").write_text("{}\n")
    r = Repo(tmp_path)
    r.write_manifest(MANIFEST)
    return r

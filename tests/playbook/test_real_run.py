"""The real runner end to end on the demo model (40 evaluation pairs, 32-token envelope): lock, report, artifact;
then an unchanged rerun that changes no byte, calls no runner method and never imports torch."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from compiler import api
from compiler.playbook.lockfile import read_lock

pytestmark = pytest.mark.model

MANIFEST = """\
apiVersion: quantgate/v1
kind: QuantizationManifest
metadata: {name: minilm-small}
owners: {ml_engineer: ["@ml-eng"], platform_lead: ["@platform-eng"], product_owner: ["@product-lead"]}
model: {source: ./models/all-MiniLM-L6-v2, task: sentence-similarity}
evaluation:
  dataset: {path: data/stsb/sts-test.tsv, format: tsv, columns: {score: 4, text_a: 5, text_b: 6}, limit: 40}
  metric: spearman
  hardest_fraction: 0.5   # 20 pairs: a rank correlation over fewer is too noisy to gate on
envelope: {device: cpu, memory_per_device: 1GiB, batch_size: 4, sequence_length: 32}
quantization:
  weights: int8
  activations: none
  backend: torchao
  calibration:
    dataset: {path: data/stsb/sts-train.tsv, format: tsv, columns: {score: 4, text_a: 5, text_b: 6}, limit: 16}
    samples: 8
gate: {max_drop: 0.02, hardest_max_drop: 0.1, close_margin: 0.1, accept_wrong_move: "tests the run mechanics on a model that fits anyway"}
"""


class CountingRunner:
    """The real LocalRunner, counting the plays it is asked to run."""

    def __init__(self):
        from runners.local import LocalRunner

        self.inner = LocalRunner()
        self.calls: list[str] = []

    def __getattr__(self, play):
        method = getattr(self.inner, play)

        def call(*args, **kwargs):
            self.calls.append(play)
            return method(*args, **kwargs)

        return call


@pytest.fixture(scope="module")
def real_repo(tmp_path_factory, repo_root: Path) -> Path:
    root = tmp_path_factory.mktemp("real")
    shutil.copytree(repo_root / "models" / "all-MiniLM-L6-v2", root / "models" / "all-MiniLM-L6-v2")
    shutil.copytree(repo_root / "data" / "stsb", root / "data" / "stsb")
    (root / "manifests").mkdir()
    (root / "manifests" / "minilm-small.yaml").write_text(MANIFEST)
    (root / "quantgate.yaml").write_text("{}\n")
    return root


def test_real_run_locks_then_an_unchanged_rerun_loads_no_model(real_repo):
    manifest = real_repo / "manifests" / "minilm-small.yaml"
    runner = CountingRunner()
    result = api.run(manifest, runner=runner, root=real_repo)
    assert runner.calls[:4] == ["preflight", "baseline", "envelope", "ptq"]  # installed? checked before any model loads
    lock = read_lock(result.lock_path).data()
    assert lock["verdict"] == "locked", lock["next_step"]
    assert (real_repo / lock["final"]["artifact"]["path"]).is_dir()
    assert (real_repo / "reports" / "minilm-small" / "report.md").is_file()
    [verdict] = api.verify([manifest], real_repo)
    assert verdict.ok, verdict.problems

    before = result.lock_path.read_bytes()
    again = CountingRunner()
    assert not api.run(manifest, runner=again, root=real_repo).lock_written
    assert again.calls == [] and result.lock_path.read_bytes() == before

    # A fresh process: the whole no-op run (plan, journal, lock, report) never imports torch.
    probe = ("import sys; from pathlib import Path; from compiler import api; "
             f"api.run(Path({str(manifest)!r}), root=Path({str(real_repo)!r})); print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "False"
    assert result.lock_path.read_bytes() == before

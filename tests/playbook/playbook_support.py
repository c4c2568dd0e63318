"""The throwaway repository the playbook tests share (imported by name: its folder is on sys.path;
a unique module name, because several test folders have a conftest.py)."""

from __future__ import annotations

from pathlib import Path

MANIFEST = """\
apiVersion: quantgate/v1
kind: QuantizationManifest
metadata:
  name: demo
  description: Demo encoder
owners:
  ml_engineer: ["@ml-eng"]
  platform_lead: ["@platform-eng"]
  product_owner: ["@product-lead"]
  engineering_manager: ["@eng-manager"]
  on_call: ["@acme/ml-oncall"]
model:
  source: ./models/tiny
  task: sentence-similarity
evaluation:
  dataset:
    path: data/eval.tsv
    format: tsv
    columns: {score: 0, text_a: 1, text_b: 2}
  metric: spearman
envelope:
  device: cpu
  memory_per_device: 1GiB
  batch_size: 8
  sequence_length: 128
  latency_p95_ms: 50
quantization:
  weights: int8
  activations: none
  backend: torchao
  calibration:
    dataset:
      path: data/train.tsv
      format: tsv
      columns: {score: 0, text_a: 1, text_b: 2}
    samples: 16
gate:
  max_drop: 0.01
  hardest_max_drop: 0.03
  close_margin: 0.03
mixed_precision: {enabled: true, max_protected_fraction: 0.3}
qat: {enabled: false}
rollback: {quality_floor: 0.78, error_rate_ceiling: 0.02, latency_p95_ms: 80}
"""


class Repo:
    def __init__(self, root: Path):
        self.root = root
        self.manifest = root / "manifests" / "demo.yaml"
        self.lock = root / "manifests" / "demo.lock.yaml"

    def write_manifest(self, text: str) -> None:
        self.manifest.write_text(text)

    def edit(self, old: str, new: str) -> None:
        text = self.manifest.read_text()
        assert old in text, old
        self.manifest.write_text(text.replace(old, new))


def make_repo(root: Path, manifest: str = MANIFEST) -> Repo:
    """A throwaway quantgate repository under ``root``: the manifest, small data files, a tiny model folder."""
    (root / "manifests").mkdir()
    (root / "data").mkdir()
    (root / "models" / "tiny").mkdir(parents=True)
    (root / "models" / "tiny" / "config.json").write_text('{"model_type": "bert"}\n')
    (root / "data" / "eval.tsv").write_text("".join(f"{i % 5}\tsentence a {i}\tsentence b {i}\n" for i in range(20)))
    (root / "data" / "train.tsv").write_text("".join(f"{i % 5}\ttrain a {i}\ttrain b {i}\n" for i in range(20)))
    (root / "quantgate.yaml").write_text("{}\n")
    repo = Repo(root)
    repo.write_manifest(manifest)
    return repo

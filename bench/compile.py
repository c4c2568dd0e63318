"""How fast is the front door? ``quantgate validate`` over 200 distinct valid manifests, next to a
bare ``python -c "import compiler"``, both measured in this run on this machine.

Usage: python bench/compile.py [--manifests 200] [--repeat 5]
Prints the median wall and CPU time of each and their ratios (target: validate < 3x the bare import).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WEIGHTS = [("int8", "dynamic-int8", None), ("int8", "none", None), ("int4", "none", 32), ("int4", "none", 64)]
DEVICES = ["cpu", "cuda"]


def manifest_text(i: int) -> str:
    weights, activations, group = WEIGHTS[i % len(WEIGHTS)]
    group_line = f"  group_size: {group}\n" if group else ""
    qat = i % 10 == 0
    return f"""# yaml-language-server: $schema=../schemas/manifest.schema.json
# Generated manifest {i} for bench/compile.py.
apiVersion: quantgate/v1
kind: QuantizationManifest
metadata:
  name: encoder-{i:03d}
  description: Generated encoder {i}
owners:
  ml_engineer: ["@ml-eng-{i % 7}"]
  platform_lead: ["@platform-eng"]
  product_owner: ["@product-lead", "@acme/product-{i % 3}"]
  engineering_manager: ["@eng-manager"]
  on_call: ["@acme/ml-oncall"]
model:
  source: ./models/encoder-{i % 4}
  task: sentence-similarity
evaluation:
  dataset:
    path: data/eval-{i:03d}.tsv
    format: tsv
    columns: {{score: 4, text_a: 5, text_b: 6}}
    limit: {100 + i}
  metric: {"spearman" if i % 2 else "pearson"}
  hardest_fraction: 0.{10 + i % 5}
envelope:
  device: {DEVICES[i % 2]}
  memory_per_device: {256 + i}MiB
  headroom: 0.25
  batch_size: {1 + i % 16}
  sequence_length: {64 * (1 + i % 4)}
  latency_p95_ms: {20 + i}
quantization:
  weights: {weights}
  activations: {activations}
{group_line}  backend: auto
  calibration:
    dataset:
      path: data/calib-{i % 20:02d}.tsv
      format: tsv
      columns: {{text_a: 5, text_b: 6}}
    samples: {128 + i}
  protected_layers: ["pooler.*", "encoder.layer.{i % 6}.*"]
gate:
  max_drop: 0.0{1 + i % 5}
  hardest_max_drop: 0.0{3 + i % 5}
  close_margin: 0.0{6 + i % 4}
mixed_precision: {{enabled: {str(i % 3 != 0).lower()}, max_protected_fraction: 0.3}}
qat: {{enabled: {str(qat).lower()}{", justification: 'High volume: one point of accuracy is worth it'" if qat else ""}}}
rollback: {{quality_floor: 0.{70 + i % 20}, error_rate_ceiling: 0.02, latency_p95_ms: {80 + i}}}
"""


def build_repo(root: Path, count: int) -> None:
    (root / "manifests").mkdir(parents=True)
    (root / "data").mkdir()
    for k in range(4):
        (root / "models" / f"encoder-{k}").mkdir(parents=True)
    row = "main-captions\tMSRvid\t2012test\t{n:04d}\t{s:.3f}\tA man is playing a flute.\tA man plays the flute {n}.\n"
    for i in range(count):
        (root / "manifests" / f"encoder-{i:03d}.yaml").write_text(manifest_text(i), encoding="utf-8")
        (root / "data" / f"eval-{i:03d}.tsv").write_text("".join(row.format(n=n, s=(n * 7 + i) % 50 / 10) for n in range(20)), encoding="utf-8")
    for k in range(20):
        (root / "data" / f"calib-{k:02d}.tsv").write_text(row.format(n=k, s=1.0) * 10, encoding="utf-8")


def measure(command: list[str], cwd: Path, repeat: int) -> tuple[float, float, str]:
    """Median wall time and median CPU time (user + system of the child) over ``repeat`` runs.
    CPU time is the steadier figure on a shared machine, where wall time includes waiting."""
    walls, cpus = [], []
    output = ""
    env = dict(os.environ)
    env.pop("GITHUB_ACTIONS", None)
    for _ in range(repeat):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, env=env)
        walls.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
        if done.returncode != 0:
            sys.exit(f"{' '.join(command)} exited {done.returncode}:\n{done.stderr[-2000:]}")
        output = done.stdout.strip()
    return statistics.median(walls), statistics.median(cpus), output


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--manifests", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    quantgate = Path(sys.executable).with_name("quantgate")
    validate_cmd = [str(quantgate), "validate"] if quantgate.exists() else [sys.executable, "-m", "compiler.cli", "validate"]
    tmp = Path(tempfile.mkdtemp(prefix="quantgate-bench-"))
    try:
        build_repo(tmp, args.manifests)
        # Warm the OS file cache and .pyc files once, so neither side pays for a cold disk.
        measure(validate_cmd, tmp, 1)
        measure([sys.executable, "-c", "import compiler"], tmp, 1)
        bare_wall, bare_cpu, _ = measure([sys.executable, "-c", "import compiler"], tmp, args.repeat)
        full_wall, full_cpu, said = measure(validate_cmd, tmp, args.repeat)
        # The floor under validate: the interpreter plus pydantic and the manifest models, no file read.
        floor_wall, floor_cpu, _ = measure([sys.executable, "-c", "import compiler.manifest.model, compiler.manifest.repo_config"], tmp, args.repeat)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"quantgate validate, {args.manifests} manifests ({said}); medians of {args.repeat} runs")
    print(f"{'':34}{'wall ms':>10}{'cpu ms':>10}")
    print(f"{'quantgate validate':34}{full_wall * 1000:10.1f}{full_cpu * 1000:10.1f}")
    print(f"{'python -c import compiler':34}{bare_wall * 1000:10.1f}{bare_cpu * 1000:10.1f}")
    print(f"{'python -c import compiler.manifest.model':34}{floor_wall * 1000:10.1f}{floor_cpu * 1000:10.1f}   (pydantic + models: the floor)")
    print(f"{'ratio (target < 3x)':34}{full_wall / bare_wall:9.2f}x{full_cpu / max(bare_cpu, 1e-9):9.2f}x")
    print(f"per manifest: {full_wall / args.manifests * 1000:.2f} ms wall, {full_cpu / args.manifests * 1000:.2f} ms cpu "
          f"(start-up included)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

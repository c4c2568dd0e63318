"""How fast is the front door? ``quantgate validate`` over 200 distinct valid manifests with no model
weights on disk (the pull-request check's situation: every manifest warns that its model directory is
not materialised), next to ``check-jsonschema`` with the project's schema on the same files, and a
bare ``python -c "import compiler"``, all measured in this run on this machine. validate does more than
the schema check (repository checks, and every evaluation and calibration row read the way the runner
will read it), and must still take at most half its time.

Usage: python bench/compile.py [--manifests 200] [--repeat 5] [--with-weights]
Prints the median wall and CPU time of each and the ratios (targets: validate <= 0.5x check-jsonschema,
validate < 3x the bare import).
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


def build_repo(root: Path, count: int, weights: bool = False) -> None:
    """``count`` manifests, an evaluation file each (20 pairs) and 20 shared calibration files (400
    pairs: every manifest's samples fit). Model directories only with ``weights``."""
    (root / "manifests").mkdir(parents=True)
    (root / "data").mkdir()
    if weights:
        for k in range(4):
            (root / "models" / f"encoder-{k}").mkdir(parents=True)
    row = "main-captions\tMSRvid\t2012test\t{n:04d}\t{s:.3f}\tA man is playing a flute.\tA man plays the flute {n}.\n"
    for i in range(count):
        (root / "manifests" / f"encoder-{i:03d}.yaml").write_text(manifest_text(i), encoding="utf-8")
        (root / "data" / f"eval-{i:03d}.tsv").write_text("".join(row.format(n=n, s=(n * 7 + i) % 50 / 10) for n in range(20)), encoding="utf-8")
    for k in range(20):
        (root / "data" / f"calib-{k:02d}.tsv").write_text("".join(row.format(n=n, s=1.0) for n in range(400)), encoding="utf-8")


def measure(command: list[str], cwd: Path, repeat: int, ok: tuple[int, ...] = (0,)) -> tuple[float, float, str]:
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
        if done.returncode not in ok:
            sys.exit(f"{' '.join(command[:3])} ... exited {done.returncode}:\n{(done.stderr or done.stdout)[-2000:]}")
        output = (done.stdout.strip().splitlines() or [""])[-1]
    return statistics.median(walls), statistics.median(cpus), output


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--manifests", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--with-weights", action="store_true", help="create the model directories (no warnings)")
    args = parser.parse_args()
    quantgate = Path(sys.executable).with_name("quantgate")
    validate_cmd = [str(quantgate), "validate"] if quantgate.exists() else [sys.executable, "-m", "compiler.cli", "validate"]
    checker = Path(sys.executable).with_name("check-jsonschema")
    if not checker.exists():
        sys.exit(f"{checker} is missing: pip install -e '.[test]' (check-jsonschema is the baseline)")
    schema = Path(__file__).resolve().parents[1] / "schemas" / "manifest.schema.json"
    tmp = Path(tempfile.mkdtemp(prefix="quantgate-bench-"))
    try:
        build_repo(tmp, args.manifests, weights=args.with_weights)
        files = sorted(str(p.relative_to(tmp)) for p in (tmp / "manifests").glob("*.yaml"))
        schema_cmd = [str(checker), "--schemafile", str(schema), *files]
        # Warm the OS file cache and .pyc files once, so no side pays for a cold disk.
        for command in (validate_cmd, schema_cmd, [sys.executable, "-c", "import compiler"]):
            measure(command, tmp, 1)
        schema_wall, schema_cpu, schema_said = measure(schema_cmd, tmp, args.repeat)
        full_wall, full_cpu, said = measure(validate_cmd, tmp, args.repeat)
        bare_wall, bare_cpu, _ = measure([sys.executable, "-c", "import compiler"], tmp, args.repeat)
        # The floor under validate: the interpreter plus pydantic and the manifest models, no file read.
        floor_wall, floor_cpu, _ = measure([sys.executable, "-c", "import compiler.manifest.model, compiler.manifest.repo_config"], tmp, args.repeat)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    weights = "model weights on disk" if args.with_weights else "no model weights on disk"
    print(f"{args.manifests} manifests, {weights}; medians of {args.repeat} runs")
    print(f"  quantgate validate: {said}")
    print(f"  check-jsonschema:   {schema_said}")
    print(f"{'':40}{'wall ms':>10}{'cpu ms':>10}")
    print(f"{'quantgate validate':40}{full_wall * 1000:10.1f}{full_cpu * 1000:10.1f}")
    print(f"{'check-jsonschema --schemafile manifest':40}{schema_wall * 1000:10.1f}{schema_cpu * 1000:10.1f}")
    print(f"{'python -c import compiler':40}{bare_wall * 1000:10.1f}{bare_cpu * 1000:10.1f}")
    print(f"{'python -c import compiler.manifest.model':40}{floor_wall * 1000:10.1f}{floor_cpu * 1000:10.1f}   (pydantic + models: the floor)")
    print(f"{'validate / check-jsonschema (<= 0.50x)':40}{full_wall / schema_wall:9.2f}x{full_cpu / max(schema_cpu, 1e-9):9.2f}x")
    print(f"{'validate / import compiler (< 3x)':40}{full_wall / bare_wall:9.2f}x{full_cpu / max(bare_cpu, 1e-9):9.2f}x")
    print(f"per manifest: {full_wall / args.manifests * 1000:.2f} ms wall, {full_cpu / args.manifests * 1000:.2f} ms cpu "
          f"(start-up included)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Every backend and mode on the demo model, side by side with fp32 in the same run.

    .venv/bin/python bench/backends.py [--limit N] [--modes onnxruntime:int8:dynamic-int8,...] [--quick]
    .venv/bin/python bench/backends.py --model smollm2 [--limit 64] [--calibration-windows 128] [--quick]

``--model smollm2``: round-to-nearest int4 against GPTQ int4 on SmolLM2-135M (``bench/causal_lm.py``).

For MiniLM (all-MiniLM-L6-v2) on data/stsb/sts-test.tsv (all 879 pairs unless ``--limit``), at the
demo manifest's envelope (batch 8 x 128 tokens, CPU), prints one table:

- size ratio: the artifact's weight files over the fp32 parameters and buffers;
- latency ratio: p50 at the envelope's shape over fp32's p50, fp32 measured in this same process
  immediately before each candidate (``runners.perf`` protocol, same pinned thread count), so a
  shared machine's changing load does not skew the ratio;
- quality delta: Spearman (and hardest-slice Spearman) of the candidate minus fp32's, on the same rows;
- cos: mean cosine between the candidate's and fp32's sentence embeddings on the first 256 sentences.

Each candidate is built, saved as an artifact (under a temporary root) and loaded back from its files
(``runners.artifacts.load_artifact``) before it is measured, so the figures are the shipped artifact's.
The issue's targets for ONNX Runtime dynamic int8: size <= 0.27, latency < 1.0, Spearman drop <= 0.005.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from runners.base import BaselineResult, DatasetSpec, EnvelopeSpec, EvalSpec, ModelSpec, QuantSpec  # noqa: E402
from runners.registry import BACKENDS  # noqa: E402

#: Every declared (backend, weights, activations) mode for the encoder on a CPU, in registration order.
MODES = tuple((name, w, a) for name, backend in BACKENDS.items() for w, a in backend.capabilities.modes
              if "sentence-similarity" in backend.capabilities.tasks and "cpu" in backend.capabilities.devices)
COS_SENTENCES = 256


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=("minilm", "smollm2"), default="minilm",
                        help="minilm: every encoder mode (default); smollm2: int4 round-to-nearest vs GPTQ on the causal LM")
    parser.add_argument("--limit", type=int, default=None, help="evaluate on the first N pairs / windows (default: all; smollm2: 64)")
    parser.add_argument("--modes", default=None, help="comma-separated backend:weights:activations (default: all)")
    parser.add_argument("--calibration-windows", type=int, default=128, help="smollm2: GPTQ calibration windows")
    parser.add_argument("--sequence-length", type=int, default=512, help="smollm2: tokens per window")
    parser.add_argument("--group-size", type=int, default=64, help="smollm2: int4 group size")
    parser.add_argument("--quick", action="store_true", help="short latency protocol (5 runs) for a smoke run")
    args = parser.parse_args()
    if args.model == "smollm2":
        from bench.causal_lm import compare_int4

        return compare_int4(args)
    modes = [tuple(m.split(":")) for m in args.modes.split(",")] if args.modes else list(MODES)

    from runners.artifacts import load_artifact
    from runners.evaluate import evaluate
    from runners.models import footprint_bytes, load_model, weights_sha256
    from runners.perf import measure_performance
    from runners.ptq import Quantizer
    from runners.tasks import embed

    timing = {"min_runs": 5, "min_seconds": 0.5, "max_seconds": 10.0} if args.quick else {}
    envelope = EnvelopeSpec(device="cpu", memory_bytes=2**30, headroom=0.25, batch_size=8, sequence_length=128, latency_p95_ms=None)
    data = DatasetSpec(path=str(ROOT / "data/stsb/sts-test.tsv"), format="tsv", columns={"score": 4, "text_a": 5, "text_b": 6}, limit=args.limit)
    evaluation = EvalSpec(task="sentence-similarity", metric="spearman", lower_is_better=False, dataset=data,
                          hardest_fraction=0.1, batch_size=32, sequence_length=128)
    calibration = DatasetSpec(path=str(ROOT / "data/stsb/sts-train.tsv"), format="tsv", columns={"score": 4, "text_a": 5, "text_b": 6})
    spec = ModelSpec(source=str(ROOT / "models/all-MiniLM-L6-v2"), revision=None, task="sentence-similarity")

    loaded = load_model(spec)
    started = time.perf_counter()
    base = evaluate(loaded.forward, loaded.tokenizer, evaluation, None)
    fp32_bytes = footprint_bytes(loaded.model)
    fp32_perf = measure_performance(loaded.forward, loaded.tokenizer, envelope, fp32_bytes, **timing)
    from runners.datasets import read_examples

    sentences = list(dict.fromkeys(t for r in read_examples(data, "sentence-similarity") for t in r.texts))[:COS_SENTENCES]
    import torch

    torch.set_grad_enabled(False)  # measuring only
    fp32_emb = embed(loaded.forward, loaded.tokenizer, sentences, 32, 128)
    print(f"MiniLM-L6 on sts-test ({base.quality.n_examples} pairs), batch {envelope.batch_size} x {envelope.sequence_length}, "
          f"{fp32_perf.threads} threads; fp32: spearman {base.quality.value:.4f} (hardest {base.quality.hardest:.4f}), "
          f"p50 {fp32_perf.latency_p50_ms:.1f} ms, {fp32_bytes / 2**20:.1f} MiB ({time.perf_counter() - started:.0f} s)")
    baseline = BaselineResult(weights_sha256=weights_sha256(loaded.model), model_info=loaded.info, quality=base.quality,
                              hardest_ids=base.hardest_ids, examples=base.examples, performance=fp32_perf,
                              environment=None, data_sha256="")  # type: ignore[arg-type]
    header = f"{'backend':<15} {'mode':<22} {'size':>6} {'latency':>8} {'Δspearman':>10} {'Δhardest':>9} {'cos':>7} {'secs':>5}"
    print(header)
    print("-" * len(header))
    print(f"{'torch (fp32)':<15} {'fp32':<22} {1.0:>6.3f} {1.0:>8.3f} {0.0:>+10.4f} {0.0:>+9.4f} {1.0:>7.4f} {'':>5}")
    with tempfile.TemporaryDirectory(prefix="quantgate-bench-") as tmp:
        for backend, weights, activations in modes:
            t0 = time.perf_counter()
            quant = QuantSpec(weights=weights, activations=activations, group_size=None, backend=backend,
                              calibration=calibration, samples=32, seed=0)
            with Quantizer(spec, quant, evaluation, envelope, baseline, str(Path(tmp) / "artifacts"), loaded=loaded) as quantizer:
                _, artifact = quantizer.save((), "ptq")
            shipped = load_artifact(Path(tmp) / artifact.path)
            outcome = evaluate(shipped.forward, shipped.tokenizer, evaluation, base.hardest_ids)
            # fp32 again right before the candidate: on a shared machine the load drifts within a run,
            # so each latency ratio pairs two back-to-back measurements.
            ref = measure_performance(loaded.forward, loaded.tokenizer, envelope, fp32_bytes, **timing)
            perf = measure_performance(shipped.forward, shipped.tokenizer, envelope, shipped.footprint_bytes, **timing)
            cos = float((embed(shipped.forward, shipped.tokenizer, sentences, 32, 128) * fp32_emb).sum(1).mean())
            mode = f"{weights} w / {'dyn-int8' if activations == 'dynamic-int8' else 'fp32'} act"
            print(f"{backend:<15} {mode:<22} {shipped.footprint_bytes / fp32_bytes:>6.3f} "
                  f"{perf.latency_p50_ms / ref.latency_p50_ms:>8.3f} {outcome.quality.value - base.quality.value:>+10.4f} "
                  f"{outcome.quality.hardest - base.quality.hardest:>+9.4f} {cos:>7.4f} {time.perf_counter() - t0:>5.0f}", flush=True)
            del shipped
    return 0


if __name__ == "__main__":
    sys.exit(main())

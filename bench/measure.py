"""Baseline cost and spread on the demo models, so later changes to the measuring code can be compared.

    .venv/bin/python bench/measure.py [--rows N] [--windows N | --full-wikitext] [--no-reference] [--threads N]

Prints, for MiniLM on STS-B test (the demo manifest's evaluation set and envelope):
- wall time per phase: load, evaluation, latency protocol;
- the latency spread at the envelope's shape (p50, p95, min, max over the protocol's runs);
- overall and hardest-slice Spearman (the slice named as the baseline records it);
- our Spearman next to sentence-transformers' EmbeddingSimilarityEvaluator on the same rows;
- fp32 and the demo's ONNX int8 artifact side by side, each measured in a fresh process (p50/p95,
  peak memory with the runtime's own allocations, footprint), with the envelope's weight estimate
  next to the artifact's real size (``--no-int8`` skips building it);
- the envelope verdict this machine gets for the demo manifest's int8 plan, every reason;
then, for SmolLM2-135M (GGUF) on WikiText-2 test: load time, perplexity over the first N windows
(manifests/smollm2-wikitext.yaml's shape: 256 tokens, stride 128) and its latency at batch 1 x 256.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from runners.base import DatasetSpec, EnvelopeSpec, EvalSpec, ModelSpec, QuantSpec  # noqa: E402


def _manifest_latency(name: str) -> float:
    """The shipped manifest's envelope.latency_p95_ms (so the bench follows the manifest)."""
    from compiler.manifest.load import load_manifest

    return float(load_manifest(ROOT / "manifests" / f"{name}.yaml").manifest.envelope.latency_p95_ms)


def _phase(name: str, started: float) -> float:
    took = time.perf_counter() - started
    print(f"  {name:<12} {took:8.2f} s")
    return took


def _spread(samples) -> str:
    import numpy as np

    a = np.array(samples)
    return (f"p50 {np.percentile(a, 50):.1f} ms  p95 {np.percentile(a, 95):.1f} ms  "
            f"min {a.min():.1f} ms  max {a.max():.1f} ms  ({len(a)} runs)")


def minilm(rows: int | None, reference: bool, int8: bool = True, latency: float | None = None) -> None:
    from runners.envelope import check_envelope
    from runners.environment import cpu_flags, cpu_name
    from runners.evaluate import evaluate
    from runners.models import footprint_bytes, load_model
    from runners.perf import synthetic_inputs, time_forward

    envelope = EnvelopeSpec(device="cpu", memory_bytes=2**30, headroom=0.25, batch_size=8, sequence_length=128,
                            latency_p95_ms=latency or _manifest_latency("minilm-stsb"))
    dataset = DatasetSpec(path=str(ROOT / "data/stsb/sts-test.tsv"), format="tsv", columns={"score": 4, "text_a": 5, "text_b": 6}, limit=rows)
    spec = EvalSpec(task="sentence-similarity", metric="spearman", lower_is_better=False, dataset=dataset,
                    hardest_fraction=0.1, batch_size=envelope.batch_size, sequence_length=envelope.sequence_length)
    print(f"MiniLM (all-MiniLM-L6-v2) on data/stsb/sts-test.tsv ({rows or 'all'} rows), {cpu_name()}, flags {' '.join(cpu_flags())}")
    t = time.perf_counter()
    model = load_model(ModelSpec(source=str(ROOT / "models/all-MiniLM-L6-v2"), revision=None, task="sentence-similarity"))
    _phase("load", t)
    t = time.perf_counter()
    outcome = evaluate(model.forward, model.tokenizer, spec, None)
    _phase("evaluate", t)
    t = time.perf_counter()
    ids, mask = synthetic_inputs(model.tokenizer, envelope.batch_size, envelope.sequence_length)
    timing = time_forward(model.forward, ids, mask)
    _phase("latency", t)
    q = outcome.quality
    print(f"  quality      spearman {q.value:.6f}  pearson {q.extra['pearson']:.6f}  hardest spearman {q.hardest:.4f}  ({q.n_examples} pairs)")
    print(f"  hardest      {outcome.hardest_definition}")
    print(f"  latency      batch {envelope.batch_size} x {envelope.sequence_length} tokens, threads={timing.threads}: {_spread(timing.samples_ms)}")
    print(f"  memory       peak +{timing.peak_memory_bytes / 2**20:.1f} MiB RSS during a forward; footprint {footprint_bytes(model.model) / 2**20:.1f} MiB")
    if reference:
        from sentence_transformers import SentenceTransformer
        from sentence_transformers.evaluation import EmbeddingSimilarityEvaluator

        from runners.datasets import read_examples

        records = read_examples(spec.dataset, spec.task)
        t = time.perf_counter()
        st = SentenceTransformer(str(ROOT / "models/all-MiniLM-L6-v2"), device="cpu")
        ref = EmbeddingSimilarityEvaluator([r.text for r in records], [r.text_b for r in records], [r.score / 5 for r in records], batch_size=32)(st)
        took = time.perf_counter() - t
        print(f"  reference    sentence-transformers spearman {ref['spearman_cosine']:.6f} (|diff| {abs(ref['spearman_cosine'] - q.value):.2e}; "
              f"{took:.1f} s; published 0.8203 is on the full 1379-pair test set, this copy has 879 pairs)")
    from runners.reload import measure_in_fresh_process

    t = time.perf_counter()
    perf = measure_in_fresh_process(model.spec, envelope)
    _phase("fresh fp32", t)
    _side("fp32", perf)
    quant = QuantSpec(weights="int8", activations="dynamic-int8", group_size=None, backend="onnxruntime",
                      calibration=dataset, samples=256, seed=0)
    verdict = check_envelope(model.info, quant, envelope, perf)
    if int8:
        _int8_artifact(model, quant, spec, envelope, outcome, perf, verdict.estimates["weights_target_bytes"])
    print(f"  envelope     int8 dynamic on this machine, 1 GiB, p95 target {envelope.latency_p95_ms:g} ms: {verdict.verdict}")
    for reason in verdict.reasons:
        print(f"               - {reason}")


def _side(name: str, perf) -> None:
    print(f"  {name:<12} p50 {perf.latency_p50_ms:.1f} ms  p95 {perf.latency_p95_ms:.1f} ms ({perf.runs} runs, {perf.threads} threads)  "
          f"peak memory {perf.peak_memory_bytes / 2**20:.1f} MiB (one forward +{perf.forward_memory_bytes / 2**20:.1f} MiB)  "
          f"footprint {perf.footprint_bytes / 2**20:.1f} MiB")


def _int8_artifact(model, quant, spec, envelope, outcome, fp32, estimate: float) -> None:
    """The demo's ONNX int8 artifact, built and measured like play 3 does (fresh process)."""
    import tempfile

    from runners.base import BaselineResult
    from runners.models import weights_sha256
    from runners.ptq import Quantizer
    from runners.reload import evaluate_in_fresh_process

    with tempfile.TemporaryDirectory(prefix="quantgate-bench-") as tmp:
        root = Path(tmp) / "artifacts"
        baseline = BaselineResult(weights_sha256(model.model), model.info, outcome.quality, outcome.hardest_ids, outcome.examples,
                                  fp32, None, "")  # type: ignore[arg-type]
        t = time.perf_counter()
        with Quantizer(model.spec, quant, spec, envelope, baseline, str(root), loaded=model) as quantizer:
            _, artifact = quantizer.save(quantizer.protected, "ptq")
        directory = root.parent / artifact.path
        reloaded = evaluate_in_fresh_process(directory, spec, envelope, outcome.hardest_ids)
        _phase("int8 onnx", t)
        q = reloaded.quality
        _side("int8 onnx", reloaded.performance)
        print(f"  int8 quality spearman {q.value:.6f} (fp32 {outcome.quality.value:.6f})  hardest {q.hardest:.4f} (fp32 {outcome.quality.hardest:.4f})")
        print(f"  ratios       p95 x{reloaded.performance.latency_p95_ms / fp32.latency_p95_ms:.2f}  "
              f"peak memory x{reloaded.performance.peak_memory_bytes / max(fp32.peak_memory_bytes, 1):.2f}")
        print(f"  estimate     envelope weights at int8 {estimate / 2**20:.1f} MiB vs artifact {reloaded.performance.footprint_bytes / 2**20:.1f} MiB")


def smollm(windows: int | None) -> None:
    from runners.evaluate import evaluate
    from runners.models import load_model
    from runners.perf import synthetic_inputs, time_forward

    print(f"SmolLM2-135M-Instruct (GGUF Q4_1, dequantized to float32) on data/wikitext-2/wiki.test.raw, {windows or 'all'} windows of 256, stride 128")
    t = time.perf_counter()
    model = load_model(ModelSpec(source=str(ROOT / "models/smollm2-135m-instruct"), revision=None, task="causal-lm",
                                 gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf"))
    _phase("load", t)
    spec = EvalSpec(task="causal-lm", metric="perplexity", lower_is_better=True,
                    dataset=DatasetSpec(path=str(ROOT / "data/wikitext-2/wiki.test.raw"), format="text", limit=windows),
                    hardest_fraction=0.1, batch_size=4, sequence_length=256, stride=128)
    t = time.perf_counter()
    outcome = evaluate(model.forward, model.tokenizer, spec, None)
    _phase("evaluate", t)
    t = time.perf_counter()
    ids, mask = synthetic_inputs(model.tokenizer, 1, 256)
    timing = time_forward(model.forward, ids, mask, min_runs=10, min_seconds=2.0, max_seconds=60.0)
    _phase("latency", t)
    q = outcome.quality
    print(f"  perplexity   {q.value:.3f} over {q.n_examples} windows (hardest 10%: {q.hardest:.3f})")
    print(f"  latency      batch 1 x 256 tokens, threads={timing.threads}: {_spread(timing.samples_ms)}")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=None, help="STS-B rows (default: the whole file)")
    parser.add_argument("--windows", type=int, default=40, help="WikiText-2 windows (default 40, the example manifest's)")
    parser.add_argument("--full-wikitext", action="store_true", help="every window of the file (slow on CPU)")
    parser.add_argument("--no-reference", action="store_true", help="skip the sentence-transformers comparison")
    parser.add_argument("--skip-smollm", action="store_true")
    parser.add_argument("--skip-minilm", action="store_true")
    parser.add_argument("--no-int8", action="store_true", help="skip building and measuring the demo's ONNX int8 artifact")
    parser.add_argument("--latency", type=float, default=None, help="the envelope's p95 target (default: the demo manifest's)")
    parser.add_argument("--threads", type=int, default=None, help="pin torch threads (sets QUANTGATE_THREADS)")
    args = parser.parse_args(argv)
    if args.threads:
        import torch

        os.environ["QUANTGATE_THREADS"] = str(args.threads)
        torch.set_num_threads(args.threads)  # evaluation too, not only the latency protocol
    if not args.skip_minilm:
        minilm(args.rows, not args.no_reference, not args.no_int8, args.latency)
    if not args.skip_smollm:
        smollm(None if args.full_wikitext else args.windows)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

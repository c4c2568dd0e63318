"""Round-to-nearest int4 against GPTQ int4 on SmolLM2-135M, with full precision, in one run.

    .venv/bin/python bench/backends.py --model smollm2 [--limit 64] [--calibration-windows 128] [--sequence-length 512]

The issue's settings by default: WikiText-2 perplexity over the first 64 windows of 512 tokens (each
window scored on its own, stride = window), int4 weight-only, group size 64; GPTQ calibrated on 128
windows of 512 tokens drawn from the second half of the file (disjoint from the evaluated text). Both
candidates go through ``runners.ptq.Quantizer`` as a play would (torchao for rtn, the gptq backend),
are written as artifacts and loaded back from their files before anything is measured.

Columns:
- perplexity and its rise over fp32; ``last``: the rise in the last quarter of the window;
- quantize s: wall time of building and saving the artifact (GPTQ: the solve, the compressed-tensors
  checkpoint and its check against the CPU artifact);
- layers: bytes of the quantized layers' weights in the loaded artifact over their fp32 bytes;
- p50 ratios at the demo envelope (batch 1 x 256 tokens): against fp32 measured right before each
  candidate, and GPTQ against rtn measured back to back (same protocol, same pinned threads).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "models/smollm2-135m-instruct"
GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
TEXT = ROOT / "data/wikitext-2/wiki.test.raw"


def layer_bytes(model: Any, names: tuple[str, ...]) -> tuple[int, int]:
    """(bytes the named Linear weights take in ``model``, their fp32 bytes)."""
    from runners.models import _tensor_nbytes

    modules = dict(model.named_modules())
    held = sum(_tensor_nbytes(modules[n].weight) for n in names)
    fp32 = sum(modules[n].weight.numel() * 4 for n in names)
    return held, fp32


def compare_int4(args: Any) -> int:
    import torch

    from runners.artifacts import load_artifact
    from runners.base import BaselineResult, DatasetSpec, EnvelopeSpec, EvalSpec, ModelSpec, QuantSpec
    from runners.evaluate import evaluate
    from runners.models import footprint_bytes, load_model, weights_sha256
    from runners.perf import measure_performance
    from runners.ptq import Quantizer

    torch.set_grad_enabled(False)
    timing = {"min_runs": 5, "min_seconds": 0.5, "max_seconds": 10.0} if args.quick else {"min_runs": 10, "min_seconds": 2.0, "max_seconds": 30.0}
    length, windows = args.sequence_length, args.limit or 64
    spec = ModelSpec(source=str(SOURCE), revision=None, task="causal-lm", gguf_file=GGUF)
    evaluation = EvalSpec(task="causal-lm", metric="perplexity", lower_is_better=True,
                          dataset=DatasetSpec(path=str(TEXT), format="text", limit=windows), hardest_fraction=0.1,
                          batch_size=4, sequence_length=length, stride=length, position_buckets=4)
    envelope = EnvelopeSpec(device="cpu", memory_bytes=2 << 30, headroom=0.25, batch_size=1, sequence_length=256, latency_p95_ms=None)

    loaded = load_model(spec)
    tokens = len(loaded.tokenizer(TEXT.read_text(encoding="utf-8"), add_special_tokens=False)["input_ids"])
    half = tokens // length // 2  # calibration windows start in the second half of the file
    started = time.perf_counter()
    base = evaluate(loaded.forward, loaded.tokenizer, evaluation, None)
    fp32_bytes = footprint_bytes(loaded.model)
    baseline = BaselineResult(weights_sha256=weights_sha256(loaded.model), model_info=loaded.info, quality=base.quality,
                              hardest_ids=base.hardest_ids, examples=base.examples, performance=None,  # type: ignore[arg-type]
                              environment=None, data_sha256="")  # type: ignore[arg-type]
    last = f"perplexity_bucket_{evaluation.position_buckets}"
    print(f"SmolLM2-135M on WikiText-2: {windows} windows of {length} tokens; int4 weight-only, group {args.group_size}; "
          f"GPTQ calibration: {args.calibration_windows} windows of {length} tokens after window {half}; "
          f"fp32 perplexity {base.quality.value:.2f} ({time.perf_counter() - started:.0f} s)", flush=True)
    header = f"{'candidate':<18} {'perplexity':>10} {'rise':>7} {'last':>7} {'quantize s':>10} {'layers':>7} {'p50/fp32':>9} {'p50/rtn':>8}"
    rows = [f"{'fp32':<18} {base.quality.value:>10.2f} {0:>+7.1%} {0:>+7.1%} {'':>10} {1:>7.3f} {1:>9.3f} {'':>8}"]
    shipped: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="quantgate-bench-") as tmp:
        for label, backend, algorithm in (("rtn int4 (torchao)", "torchao", "rtn"), ("gptq int4", "gptq", "gptq")):
            calibration = DatasetSpec(path=str(TEXT), format="text", skip=half)
            quant = QuantSpec(weights="int4", activations="none", group_size=args.group_size, backend=backend,
                              calibration=calibration, samples=args.calibration_windows, seed=0, algorithm=algorithm)
            t0 = time.perf_counter()
            with Quantizer(spec, quant, evaluation, envelope, baseline, str(Path(tmp) / "artifacts"), loaded=loaded) as quantizer:
                plan, artifact = quantizer.save((), "ptq")
            seconds = time.perf_counter() - t0
            model = load_artifact(Path(tmp) / artifact.path)
            outcome = evaluate(model.forward, model.tokenizer, evaluation, base.hardest_ids)
            held, fp32 = layer_bytes(model.model, plan.quantized)
            ref = measure_performance(loaded.forward, loaded.tokenizer, envelope, fp32_bytes, **timing)
            perf = measure_performance(model.forward, model.tokenizer, envelope, model.footprint_bytes, **timing)
            shipped[backend] = model
            q = outcome.quality
            rows.append(f"{label:<18} {q.value:>10.2f} {q.value / base.quality.value - 1:>+7.1%} "
                        f"{q.extra[last] / base.quality.extra[last] - 1:>+7.1%} {seconds:>10.0f} {held / fp32:>7.3f} "
                        f"{perf.latency_p50_ms / ref.latency_p50_ms:>9.3f} {'':>8}")
            print(rows[-1], flush=True)
        rtn = measure_performance(shipped["torchao"].forward, shipped["torchao"].tokenizer, envelope, 0, **timing)
        gptq = measure_performance(shipped["gptq"].forward, shipped["gptq"].tokenizer, envelope, 0, **timing)
        rows[-1] = rows[-1][:-8] + f"{gptq.latency_p50_ms / rtn.latency_p50_ms:>8.3f}"
    print()
    print(header)
    print("-" * len(header))
    for row in rows:
        print(row)
    return 0

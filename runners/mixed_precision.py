"""Play 5, mixed precision: keep the most sensitive layers at full precision until the gate passes.

Cost is counted in full evaluations (the whole evaluation set). The anchors: Intel Neural
Compressor's basic strategy falls back one op at a time and then accumulates fallbacks, about ``2L``
full evaluations for ``L`` quantizable layers (``one_at_a_time_cost`` records ``2L``); NNCF ranks layer
groups on a subset and reverts greedily (2 + k full evaluations plus subset runs).

Here:
1. **Rank** with a proxy that needs no evaluation set: each quantizable layer alone is fake-quantized
   the way the backend will quantize it (symmetric weights per channel for int8, per group for int4;
   per-tensor asymmetric uint8 inputs for dynamic int8 activations) and the relative squared error of
   the model's output on a fixed calibration batch is its sensitivity: ``L`` forward passes on
   ``PROXY_TEXTS`` texts, seconds on a small encoder.
2. **Search** the ranked prefix: evaluate "protect the top ``cap``" (``cap = floor(max_protected_fraction
   x L)``, manifest-protected layers included); if that misses, stop: ``passed=False`` and the cap
   candidate is kept as the best. Otherwise binary-search the smallest passing ``k`` in ``(0, cap]``;
   ``k = 0`` is plain PTQ, which play 5 only runs after it missed. Search steps quantize and evaluate
   in this process.
3. **Verify** the choice the way the gate judges everything: save it, reload it in a fresh process,
   evaluate (``Quantizer.build``). Its verdict is the result.

Full evaluations: ``1 + ceil(log2 cap) + 1 <= 2 + ceil(log2 L)``. Every one is recorded (layers kept,
value, hardest, footprint, seconds, passed) so the lock can draw the trade-off curve.
"""

from __future__ import annotations

import math
import time
from typing import Any

from runners.base import (
    BaselineResult,
    EnvelopeSpec,
    EvalSpec,
    Evaluation,
    MixedPrecisionResult,
    ModelSpec,
    Progress,
    QualityBar,
    QuantSpec,
    no_progress,
)

#: Calibration texts in the proxy's batch.
PROXY_TEXTS = 32


def fake_quantize_weight(weight: Any, weights: str, group: int) -> Any:
    """What the weight looks like after symmetric quantization (int8 per output channel, int4 per group)."""
    import torch

    w = weight.detach().float()
    if weights == "int8":
        scale = w.abs().amax(dim=1, keepdim=True).clamp(min=1e-12) / 127.0
        return (torch.clamp(torch.round(w / scale), -128, 127) * scale).to(weight.dtype)
    rows, cols = w.shape
    pad = (-cols) % group
    g = torch.nn.functional.pad(w, (0, pad)).reshape(rows, -1, group)
    scale = g.abs().amax(dim=2, keepdim=True).clamp(min=1e-12) / 7.5
    q = torch.clamp(torch.round(g / scale), -8, 7) * scale
    return q.reshape(rows, -1)[:, :cols].to(weight.dtype)


def _fake_quantize_input(module: Any, args: tuple[Any, ...]) -> tuple[Any, ...]:
    """Per-tensor asymmetric uint8 of a Linear's input (ONNX Runtime / torchao dynamic activations)."""
    import torch

    x = args[0]
    lo, hi = torch.clamp(x.min(), max=0.0), torch.clamp(x.max(), min=0.0)
    scale = ((hi - lo) / 255.0).clamp(min=1e-12)
    zero = torch.round(-lo / scale)
    q = (torch.clamp(torch.round(x / scale) + zero, 0, 255) - zero) * scale
    return (q,) + tuple(args[1:])


def _relative_error(out: Any, ref: Any, mask: Any) -> float:
    diff = (out - ref).float()
    ref = ref.float()
    if diff.dim() == 3:  # [B,T,*]: padded positions do not count
        m = mask.unsqueeze(-1).to(diff.dtype)
        diff, ref = diff * m, ref * m
    return float((diff.pow(2).sum() / ref.pow(2).sum().clamp(min=1e-12)).item())


def sensitivity(model: Any, tokenizer: Any, task: str, layers: tuple[str, ...], weights: str, activations: str,
                group: int, texts: tuple[str, ...], sequence_length: int) -> dict[str, float]:
    """Layer -> relative output error when only that layer is (fake-)quantized. Restores the model."""
    import torch

    from runners.models import make_forward

    forward = make_forward(model, task)
    enc = tokenizer(list(texts[:PROXY_TEXTS]), padding=True, truncation=True, max_length=sequence_length, return_tensors="pt")
    modules = dict(model.named_modules())
    out: dict[str, float] = {}
    with torch.inference_mode():
        ref = forward(enc["input_ids"], enc["attention_mask"])
        for name in layers:
            module = modules[name]
            original = module.weight.data
            module.weight.data = fake_quantize_weight(original, weights, group)
            hook = module.register_forward_pre_hook(_fake_quantize_input) if activations == "dynamic-int8" else None
            try:
                out[name] = _relative_error(forward(enc["input_ids"], enc["attention_mask"]), ref, enc["attention_mask"])
            finally:
                module.weight.data = original
                if hook is not None:
                    hook.remove()
    return out


def run_mixed_precision(model: ModelSpec, quant: QuantSpec, evaluation: EvalSpec, envelope: EnvelopeSpec,
                        baseline: BaselineResult, bar: QualityBar, max_protected_fraction: float, artifact_root: str,
                        progress: Progress = no_progress, **timing: Any) -> MixedPrecisionResult:
    """Play 5 (see the module docstring). ``timing`` overrides the reloaded artifact's latency protocol (tests)."""
    from runners.ptq import Quantizer

    with Quantizer(model, quant, evaluation, envelope, baseline, artifact_root, progress, timing,
                   method="mixed_precision") as quantizer:
        layers = quantizer.layers
        fixed = quantizer.protected  # the manifest's protected layers stay protected in every candidate
        cap = math.floor(max_protected_fraction * len(layers))
        progress(0, 0, "mixed precision: rank layers by the proxy")
        started = time.perf_counter()
        plan = quantizer.plan(fixed)
        # The group the backend really uses when the manifest leaves it unset, as it declares it.
        group = quant.group_size or quantizer.entry.capabilities.default_group_size
        scores = sensitivity(quantizer.loaded.model, quantizer.loaded.tokenizer, model.task, plan.quantized, quant.weights,
                             quant.activations, group, quantizer.calibration.texts, evaluation.sequence_length)
        proxy_seconds = time.perf_counter() - started
        ranked = sorted(scores, key=lambda n: (-scores[n], layers.index(n)))
        budget = max(0, cap - len(fixed))
        evaluations: list[Evaluation] = []

        def protect(k: int) -> tuple[str, ...]:
            return tuple(n for n in layers if n in set(fixed) | set(ranked[:k]))

        def full(k: int) -> bool:
            progress(len(evaluations) + 1, 0, f"mixed precision: evaluate with the top {k} layers kept")
            t0 = time.perf_counter()
            candidate = quantizer.quantize(protect(k))
            quality = quantizer.evaluate_here(candidate)
            passed = bar.accepts(quality.value, quality.hardest)
            evaluations.append(Evaluation(kind="full", protected_layers=protect(k), value=quality.value,
                                          hardest=quality.hardest, footprint_bytes=candidate.footprint_bytes(),
                                          seconds=round(time.perf_counter() - t0, 3), passed=passed))
            return passed

        if budget > 0 and full(budget):
            lo, hi = 0, budget  # lo: plain PTQ (missed: that is why play 5 runs); hi: passes
            while hi - lo > 1:
                mid = (lo + hi) // 2
                lo, hi = (lo, mid) if full(mid) else (mid, hi)
            chosen = hi
        else:
            chosen = budget  # the cap missed (or there is no budget): keep the most-protected candidate
        t0 = time.perf_counter()
        extra = {"mixed_precision": {"proxy": "one-layer-at-a-time fake quantization, relative output error",
                                     "proxy_texts": min(PROXY_TEXTS, len(quantizer.calibration.texts)),
                                     "proxy_seconds": round(proxy_seconds, 3), "cap_layers": cap,
                                     "max_protected_fraction": max_protected_fraction}}
        best = quantizer.build(protect(chosen), "mixed_precision", extra, play_used_calibration=True)
        passed = bar.accepts(best.quality.value, best.quality.hardest)
        evaluations.append(Evaluation(kind="full", protected_layers=best.protected_layers, value=best.quality.value,
                                      hardest=best.quality.hardest, footprint_bytes=best.performance.footprint_bytes,
                                      seconds=round(time.perf_counter() - t0, 3), passed=passed))
    return MixedPrecisionResult(
        passed=passed, sensitivity={n: scores[n] for n in ranked}, evaluations=tuple(evaluations),
        full_evaluations=len(evaluations), one_at_a_time_cost=2 * len(layers), cap_layers=cap, best=best,
    )

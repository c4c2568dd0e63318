"""Play 6, quantization-aware training: fine-tune with fake-quantized weights, then quantize for real.

The runner refuses to start without the written justification (the compiler also requires the
engineering manager's sign-off). Training distils from the full-precision model on the manifest's
calibration texts, so no labels are needed:

- the student is a copy of the baseline model whose quantized Linear layers are swapped for torchao
  ``FakeQuantizedLinear`` (``QATConfig(weight_config=IntxFakeQuantizeConfig(...))``: symmetric int4
  per group or int8 per channel, plus per-token int8 activations for dynamic-int8); protected layers
  stay plain;
- each step takes ``QAT_BATCH`` calibration texts (order from ``random.Random(seed)``, weights' noise
  from ``torch.manual_seed(seed)``) and minimises the distance to the teacher's output: relative MSE of
  the hidden states over real tokens (sentence-similarity) or KL divergence of the logits (others);
- ``QATConfig(step="convert")`` swaps the fake-quantized layers back to plain Linear layers holding
  the trained weights, which the manifest's backend then quantizes, saves, reloads in a fresh process
  and evaluates exactly like play 3 (``Quantizer.build``).
"""

from __future__ import annotations

import copy
import dataclasses
import random
from typing import Any

from runners.base import (
    BaselineResult,
    EnvelopeSpec,
    EvalSpec,
    ModelSpec,
    Progress,
    QatResult,
    QatSpec,
    QuantSpec,
    RunnerError,
    RunnerInputError,
    no_progress,
)

#: Calibration texts per training step.
QAT_BATCH = 8
#: Longest sequence used in training (calibration sentences are short; this bounds the cost).
QAT_MAX_TOKENS = 128


def fake_quantize_configs(weights: str, activations: str, group: int) -> tuple[Any, Any]:
    """(activation_config, weight_config) matching what the backends build."""
    import torch
    from torchao.quantization.qat import IntxFakeQuantizeConfig

    if weights == "int8":
        weight = IntxFakeQuantizeConfig(torch.int8, "per_channel", is_symmetric=True)
    else:
        weight = IntxFakeQuantizeConfig(torch.int4, group_size=group, is_symmetric=True)
    act = IntxFakeQuantizeConfig(torch.int8, "per_token", is_symmetric=False) if activations == "dynamic-int8" else None
    return act, weight


def prepare_(model: Any, quantized: tuple[str, ...], weights: str, activations: str, group: int) -> None:
    """Swap the ``quantized`` Linear layers of ``model`` for fake-quantized ones, in place."""
    import torch
    from torchao.quantization import quantize_
    from torchao.quantization.qat import QATConfig

    act, weight = fake_quantize_configs(weights, activations, group)
    keep = set(quantized)
    quantize_(model, QATConfig(activation_config=act, weight_config=weight, step="prepare"),
              filter_fn=lambda module, fqn: isinstance(module, torch.nn.Linear) and fqn in keep)


def convert_(model: Any) -> None:
    """Swap fake-quantized layers back to plain Linear layers with the trained weights, in place."""
    import torch
    from torchao.quantization import quantize_
    from torchao.quantization.qat import QATConfig

    # Fake-quantized layers subclass nn.Linear; a filter matching the root would stop the recursion.
    quantize_(model, QATConfig(step="convert"), filter_fn=lambda module, fqn: isinstance(module, torch.nn.Linear))
    left = [name for name, module in model.named_modules() if "FakeQuantized" in type(module).__name__]
    if left:
        raise RunnerError(f"qat: {len(left)} layer(s) are still fake-quantized after convert (first: {left[0]})")


def distillation_loss(task: str, student_out: Any, teacher_out: Any, mask: Any) -> Any:
    import torch

    if task == "sentence-similarity":
        m = mask.unsqueeze(-1).to(student_out.dtype)
        return ((student_out - teacher_out) * m).pow(2).sum() / (teacher_out * m).pow(2).sum().clamp(min=1e-12)
    log_p = torch.log_softmax(student_out.float(), dim=-1)
    q = torch.softmax(teacher_out.float(), dim=-1)
    kl = (q * (torch.log(q.clamp(min=1e-12)) - log_p)).sum(-1)
    if kl.dim() == 2:  # causal-lm [B,T]: real tokens only
        return (kl * mask).sum() / mask.sum().clamp(min=1)
    return kl.mean()


def train_(student: Any, teacher: Any, tokenizer: Any, task: str, texts: tuple[str, ...], qat: QatSpec,
           sequence_length: int, progress: Progress = no_progress) -> list[float]:
    """``qat.steps`` distillation steps on ``student`` (in place); returns each step's loss."""
    import torch

    from runners.models import make_forward

    torch.manual_seed(qat.seed)
    order = random.Random(qat.seed)
    student_forward, teacher_forward = make_forward(student, task), make_forward(teacher, task)
    optimizer = torch.optim.AdamW([p for p in student.parameters() if p.requires_grad], lr=qat.learning_rate, weight_decay=0.0)
    student.eval()  # no dropout: the teacher is deterministic, the student should match it
    pool: list[str] = []
    losses: list[float] = []
    for step in range(qat.steps):
        if len(pool) < QAT_BATCH:
            fresh = list(texts)
            order.shuffle(fresh)
            pool.extend(fresh)
        batch, pool = pool[:QAT_BATCH], pool[QAT_BATCH:]
        enc = tokenizer(batch, padding=True, truncation=True, max_length=min(sequence_length, QAT_MAX_TOKENS), return_tensors="pt")
        with torch.no_grad():
            target = teacher_forward(enc["input_ids"], enc["attention_mask"])
        loss = distillation_loss(task, student_forward(enc["input_ids"], enc["attention_mask"]), target, enc["attention_mask"])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(round(float(loss.item()), 6))
        progress(step + 1, qat.steps, "qat")
    return losses


def run_qat(model: ModelSpec, quant: QuantSpec, qat: QatSpec, evaluation: EvalSpec, envelope: EnvelopeSpec,
            baseline: BaselineResult, artifact_root: str, progress: Progress = no_progress, **timing: Any) -> QatResult:
    """Play 6 (see the module docstring). ``timing`` overrides the reloaded artifact's latency protocol (tests)."""
    from runners.models import make_forward
    from runners.ptq import Quantizer

    if not (qat.justification or "").strip():
        raise RunnerInputError("qat.justification: QAT is a training run and needs a written justification; refusing to start")
    if qat.steps <= 0 or not qat.learning_rate > 0:
        raise RunnerInputError("qat: steps and learning_rate must be positive")
    # Quantizer refuses a backend that does not declare qat (naming those that do) before any load.
    with Quantizer(model, quant, evaluation, envelope, baseline, artifact_root, progress, timing, method="qat") as quantizer:
        plan = quantizer.plan(quantizer.protected)
        teacher = quantizer.loaded.model
        student = copy.deepcopy(teacher)
        prepare_(student, plan.quantized, quant.weights, quant.activations, plan.int4_group)
        losses = train_(student, teacher, quantizer.loaded.tokenizer, model.task, quantizer.calibration.texts, qat,
                        evaluation.sequence_length, progress)
        convert_(student)
        student.eval()
        # The trained full-precision weights are what the backend now quantizes.
        quantizer.loaded = dataclasses.replace(quantizer.loaded, model=student, forward=make_forward(student, model.task))
        extra = {"qat": {"steps": qat.steps, "learning_rate": qat.learning_rate, "seed": qat.seed, "batch": QAT_BATCH,
                         "loss": "relative hidden-state MSE" if model.task == "sentence-similarity" else "logit KL",
                         "first_loss": losses[0], "last_loss": losses[-1]}}
        candidate = quantizer.build(quantizer.protected, "qat", extra, play_used_calibration=True)
    return QatResult(candidate=candidate, steps=qat.steps, losses=tuple(losses))

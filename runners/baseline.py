"""Play 1, the baseline: the full-precision model measured on the team's data and the envelope's shape.

Loads the model, hashes its weights canonically, evaluates it (fixing the hardest slice and recording
its definition), measures latency and peak memory at the envelope's batch size and sequence length in a
fresh process (``runners.reload.measure_in_fresh_process``: the same way every candidate's artifact is
measured, so peak memories compare across backends), and records the environment. Everything later
plays compare against comes from here.
"""

from __future__ import annotations

from runners.base import BaselineResult, EnvelopeSpec, EvalSpec, ModelSpec, Progress, no_progress


def run_baseline(model: ModelSpec, evaluation: EvalSpec, envelope: EnvelopeSpec, progress: Progress = no_progress,
                 **timing: object) -> BaselineResult:
    """Measure the full-precision model. ``timing`` overrides the latency protocol (tests only)."""
    from compiler.files import file_sha256
    from runners.environment import environment
    from runners.evaluate import evaluate
    from runners.models import load_model, weights_sha256
    from runners.reload import measure_in_fresh_process

    progress(0, 0, "load model")
    loaded = load_model(model, envelope.device)
    label2id = dict(getattr(loaded.model.config, "label2id", None) or {}) if model.task == "text-classification" else None
    outcome = evaluate(loaded.forward, loaded.tokenizer, evaluation, None, progress, label2id=label2id)
    progress(0, 0, "measure latency and memory in a fresh process")
    performance = measure_in_fresh_process(model, envelope, dict(timing))
    return BaselineResult(
        weights_sha256=weights_sha256(loaded.model),
        model_info=loaded.info,
        quality=outcome.quality,
        hardest_ids=outcome.hardest_ids,
        examples=outcome.examples,
        performance=performance,
        environment=environment(envelope.device, performance.threads),
        data_sha256=file_sha256(evaluation.dataset.path),
        hardest_definition=outcome.hardest_definition,
        generations=outcome.generations,
    )

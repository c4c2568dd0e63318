"""``LocalRunner``: the real ``Runner`` on this machine. Wiring only; each play lives in its module.

Modules are imported inside the methods so that constructing a ``LocalRunner`` (and importing this
module) stays free of torch. The planner resolves backends from declared capabilities, whatever is
installed; ``preflight`` (called by the compiler before the first play) and every quantizing play
check here that the resolved backend is installed before any model loads, and say which extra to
install when it is not (a ``RunnerInputError``: exit 2).
"""

from __future__ import annotations

from runners.base import (
    BaselineResult,
    CandidateResult,
    EnvelopeResult,
    EnvelopeSpec,
    EvalSpec,
    MixedPrecisionResult,
    ModelInfo,
    ModelSpec,
    Performance,
    Progress,
    QatResult,
    QatSpec,
    QualityBar,
    QuantSpec,
    Runner,
    RunnerInputError,
    no_progress,
)
from runners.registry import BACKENDS, missing


def require_installed(quant: QuantSpec) -> None:
    """``RunnerInputError`` naming the extra to install when ``quant.backend`` is not installed here
    (an unregistered name is refused by ``runners.ptq``, in the same words as the planner)."""
    why = missing(quant.backend) if quant.backend in BACKENDS else None
    if why:
        raise RunnerInputError(f"quantization.backend: {why}")


class LocalRunner(Runner):
    """Runs plays in this process (artifacts are still reloaded in a fresh process to be judged)."""

    def preflight(self, quant: QuantSpec) -> None:
        require_installed(quant)

    def baseline(self, model: ModelSpec, evaluation: EvalSpec, envelope: EnvelopeSpec, progress: Progress = no_progress) -> BaselineResult:
        from runners.baseline import run_baseline

        return run_baseline(model, evaluation, envelope, progress)

    def envelope(self, info: ModelInfo, quant: QuantSpec, envelope: EnvelopeSpec, baseline: Performance | None) -> EnvelopeResult:
        from runners.envelope import check_envelope

        return check_envelope(info, quant, envelope, baseline)

    def ptq(self, model: ModelSpec, quant: QuantSpec, evaluation: EvalSpec, envelope: EnvelopeSpec, baseline: BaselineResult, artifact_root: str, progress: Progress = no_progress) -> CandidateResult:
        from runners.ptq import run_ptq

        require_installed(quant)
        return run_ptq(model, quant, evaluation, envelope, baseline, artifact_root, progress)

    def mixed_precision(self, model: ModelSpec, quant: QuantSpec, evaluation: EvalSpec, envelope: EnvelopeSpec, baseline: BaselineResult, bar: QualityBar, max_protected_fraction: float, artifact_root: str, progress: Progress = no_progress) -> MixedPrecisionResult:
        from runners.mixed_precision import run_mixed_precision

        require_installed(quant)
        return run_mixed_precision(model, quant, evaluation, envelope, baseline, bar, max_protected_fraction, artifact_root, progress)

    def qat(self, model: ModelSpec, quant: QuantSpec, qat: QatSpec, evaluation: EvalSpec, envelope: EnvelopeSpec, baseline: BaselineResult, artifact_root: str, progress: Progress = no_progress) -> QatResult:
        from runners.qat import run_qat

        require_installed(quant)
        return run_qat(model, quant, qat, evaluation, envelope, baseline, artifact_root, progress)

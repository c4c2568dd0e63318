"""A deterministic in-process ``runners.base.Runner`` for the funnel, lock and resume tests.

Numbers come from a ``Script`` the test controls; every call is counted (``calls``) so a test can
prove a no-op rerun touched no model. ``sleep`` makes a play slow enough to be killed mid-play.
Artifacts are real files written the way the real runner writes them
(``runners.artifacts.write_artifact``: ``artifact.json``, content-addressed directory, atomic rename),
for the backend the plan resolved, so lock, verify and serving code see the real layout.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from runners.artifacts import write_artifact
from runners.base import (
    Artifact,
    BaselineResult,
    CandidateResult,
    Degraded,
    EnvelopeResult,
    EnvelopeSpec,
    Environment,
    EvalSpec,
    Evaluation,
    Example,
    MixedPrecisionResult,
    ModelInfo,
    ModelSpec,
    Performance,
    Progress,
    QatResult,
    QatSpec,
    Quality,
    QualityBar,
    QuantSpec,
    Runner,
    no_progress,
)
from runners.registry import BACKENDS

LAYERS = tuple(f"encoder.layer.{i}.{part}" for i in range(3) for part in ("attention.q", "attention.k", "ffn.up", "ffn.down"))


@dataclass
class Script:
    baseline: tuple[float, float] = (0.85, 0.60)
    envelope: str = "pass"
    ptq: tuple[float, float] = (0.845, 0.59)
    mixed_precision: tuple[float, float] | None = (0.848, 0.595)  # best candidate; None: cap hit, nothing passes
    qat: tuple[float, float] = (0.846, 0.592)
    sleep: dict[str, float] = field(default_factory=dict)
    fail: dict[str, str] = field(default_factory=dict)  # play -> "runner" | "input"

    @classmethod
    def from_json(cls, text: str) -> Script:
        data = json.loads(text)
        for key in ("baseline", "ptq", "mixed_precision", "qat"):
            if data.get(key) is not None:
                data[key] = tuple(data[key])
        return cls(**data)


def _perf(latency: float, footprint: int) -> Performance:
    return Performance(device="cpu", batch_size=8, sequence_length=128, latency_p50_ms=latency, latency_p95_ms=latency * 1.2,
                       runs=20, peak_memory_bytes=footprint * 2, footprint_bytes=footprint, threads=2)


class FakeRunner(Runner):
    def __init__(self, script: Script | None = None, root: Path | None = None):
        self.script = script or Script()
        self.calls: list[str] = []

    def _enter(self, play: str, progress=no_progress) -> None:
        from runners.base import RunnerError, RunnerInputError

        self.calls.append(play)
        delay = self.script.sleep.get(play, 0.0)
        steps = 10
        for i in range(steps):
            progress(i, steps, play)
            if delay:
                time.sleep(delay / steps)
        progress(steps, steps, play)
        kind = self.script.fail.get(play)
        if kind == "runner":
            raise RunnerError(f"{play} backend crashed (scripted)")
        if kind == "input":
            raise RunnerInputError("row has 3 columns, expected 7", location="data/eval.tsv:4")

    def _artifact(self, artifact_root: str, quant: QuantSpec, method: str, tag: str) -> Artifact:
        """A one-file artifact written by ``runners.artifacts.write_artifact``, as the real runner does."""
        record = {"backend": quant.backend, "backend_version": "0.0-fake", "method": method, "task": "sentence-similarity",
                  "weights": quant.weights, "activations": quant.activations, "group_size": quant.group_size}

        def write(directory: Path) -> dict:
            (directory / "model.bin").write_bytes(f"fake weights {tag}".encode())
            return {"fake": True, "weights_files": ["model.bin"]}

        return write_artifact(artifact_root, "tiny", BACKENDS[quant.backend].capabilities.artifact_format, record, write)

    def _candidate(self, method: str, q: tuple[float, float], quant: QuantSpec, artifact_root: str,
                   protected: tuple[str, ...] = ()) -> CandidateResult:
        return CandidateResult(
            method=method, backend=quant.backend, backend_version="0.0-fake", config={"weights": quant.weights, "protected": list(protected)},
            protected_layers=protected, quantized_layers=len(LAYERS) - len(protected), calibration_samples=256,
            calibration_sha256="c" * 64, artifact=self._artifact(artifact_root, quant, method, f"{method}-{q}-{protected}"),
            quality=Quality(metric="spearman", value=q[0], hardest=q[1], n_examples=100),
            performance=_perf(8.0, 30_000_000 + 1_000_000 * len(protected)),
            most_degraded=(Degraded(id="ex-7", baseline=0.9, candidate=0.7),),
        )

    def preflight(self, quant: QuantSpec) -> None:
        """Every registered backend is "installed" for the fake; not counted in ``calls`` (no model)."""

    def baseline(self, model: ModelSpec, evaluation: EvalSpec, envelope: EnvelopeSpec, progress: Progress = no_progress) -> BaselineResult:
        self._enter("baseline", progress)
        v, h = self.script.baseline
        examples = tuple(Example(id=f"ex-{i}", score=1.0 - i / 100) for i in range(100))
        return BaselineResult(
            weights_sha256="a" * 64,
            model_info=ModelInfo(architecture="BertModel", parameters=22_000_000, dtype_bytes=4, num_layers=3, hidden_size=384,
                                 num_attention_heads=12, num_kv_heads=12, head_dim=32, quantizable_layers=LAYERS),
            quality=Quality(metric="spearman", value=v, hardest=h, n_examples=100, extra={"pearson": v - 0.01}),
            hardest_ids=tuple(f"ex-{i}" for i in range(90, 100)), examples=examples,
            performance=_perf(10.0, 90_000_000),
            environment=Environment(device_name="fake cpu", cpu_flags=("avx2",), versions={"torch": "0-fake"}, threads=2),
            data_sha256="d" * 64,
        )

    def envelope(self, info: ModelInfo, quant: QuantSpec, envelope: EnvelopeSpec, baseline: Performance | None) -> EnvelopeResult:
        self.calls.append("envelope")
        verdict = self.script.envelope
        return EnvelopeResult(verdict=verdict, reasons=(f"scripted {verdict}",), memory_needed_bytes=50_000_000,
                              memory_budget_bytes=800_000_000, native_support=True, bound="memory")

    def ptq(self, model: ModelSpec, quant: QuantSpec, evaluation: EvalSpec, envelope: EnvelopeSpec, baseline: BaselineResult,
            artifact_root: str, progress: Progress = no_progress) -> CandidateResult:
        assert baseline.examples, "a candidate play needs the full baseline"
        self._enter("ptq", progress)
        return self._candidate("ptq", self.script.ptq, quant, artifact_root)

    def mixed_precision(self, model: ModelSpec, quant: QuantSpec, evaluation: EvalSpec, envelope: EnvelopeSpec,
                        baseline: BaselineResult, bar: QualityBar, max_protected_fraction: float, artifact_root: str,
                        progress: Progress = no_progress) -> MixedPrecisionResult:
        assert baseline.examples, "a candidate play needs the full baseline"
        self._enter("mixed_precision", progress)
        best_q = self.script.mixed_precision
        protected = LAYERS[:2]
        sens = {layer: round(1.0 / (i + 1), 6) for i, layer in enumerate(LAYERS)}
        ptq_q = self.script.ptq
        evals = (
            Evaluation(kind="full", protected_layers=(), value=ptq_q[0], hardest=ptq_q[1], footprint_bytes=30_000_000, seconds=1.0, passed=False),
            Evaluation(kind="full", protected_layers=protected, value=(best_q or ptq_q)[0], hardest=(best_q or ptq_q)[1],
                       footprint_bytes=32_000_000, seconds=1.0, passed=best_q is not None),
        )
        best = self._candidate("mixed_precision", best_q, quant, artifact_root, protected) if best_q else None
        return MixedPrecisionResult(passed=best_q is not None, sensitivity=sens, evaluations=evals, full_evaluations=2,
                                    one_at_a_time_cost=2 * len(LAYERS), cap_layers=3, best=best)

    def qat(self, model: ModelSpec, quant: QuantSpec, qat: QatSpec, evaluation: EvalSpec, envelope: EnvelopeSpec,
            baseline: BaselineResult, artifact_root: str, progress: Progress = no_progress) -> QatResult:
        assert qat.justification, "the runner refuses QAT without a justification"
        self._enter("qat", progress)
        return QatResult(candidate=self._candidate("qat", self.script.qat, quant, artifact_root), steps=qat.steps, losses=(0.5, 0.25))

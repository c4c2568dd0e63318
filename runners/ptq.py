"""Play 3, post-training quantization: build the artifact, reload it in a fresh process, judge that.

``run_ptq`` is one ``Quantizer.build``: the model loads once, the manifest's calibration set is
sampled deterministically (``seed``; the count and the file's sha256 are recorded), the
``protected_layers`` globs resolve to exact module names (a glob matching nothing is a
``RunnerInputError`` naming close module names), the backend builds the candidate, the artifact is
written content-addressed (``runners.artifacts``), then ``runners.reload`` evaluates it in a fresh
process on the baseline's hardest slice and measures its latency. Mixed precision and QAT reuse the
same ``Quantizer``.

Calibration: every backend's ``prepare`` receives the drawn examples; one that rounds to nearest
(weight-only, dynamic activations) declares ``needs_calibration=False`` and ignores them. The result's
``config.calibration_used`` is true when the backend declares it needs them or the play used them
(mixed precision's sensitivity proxy, QAT's distillation).

The backend is checked against its declared capabilities (``runners.registry``) before anything
loads, so the runner refuses exactly what the planner refuses, in the same words.
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import random
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from compiler.files import file_sha256
from runners.base import (
    Artifact,
    BaselineResult,
    CalibrationFit,
    CandidateResult,
    EnvelopeSpec,
    EvalSpec,
    ModelSpec,
    Progress,
    Quality,
    QuantSpec,
    RunnerInputError,
    no_progress,
)
from runners.datasets import Record
from runners.registry import BACKENDS, capable


@dataclass(frozen=True)
class Calibration:
    records: tuple[Record, ...]  # the drawn examples, in file order: what every backend's prepare receives
    samples: int  # records drawn
    sha256: str  # of the calibration file
    seed: int
    windows: bool = False  # format text: each record is one window of tokens (``window_calibration``)

    @property
    def texts(self) -> tuple[str, ...]:
        """Every non-empty text of the drawn records (mixed precision's proxy batch, QAT's training texts)."""
        return tuple(t for r in self.records for t in r.texts if t)


def draw_calibration(quant: QuantSpec, task: str) -> Calibration:
    """``quant.samples`` records drawn without replacement with ``random.Random(seed)``, in file order."""
    from runners.datasets import read_examples

    records = read_examples(quant.calibration, task)
    if not records:
        raise RunnerInputError("quantization.calibration: the calibration set has no examples", quant.calibration.path)
    chosen = sorted(random.Random(quant.seed).sample(range(len(records)), min(quant.samples, len(records))))
    return Calibration(records=tuple(records[i] for i in chosen), samples=len(chosen),
                       sha256=file_sha256(quant.calibration.path), seed=quant.seed)


def window_calibration(calibration: Calibration, quant: QuantSpec, tokenizer: Any, length: int) -> Calibration:
    """Format text: the document cut end to end into windows of ``length`` tokens, the first
    ``calibration.skip`` passed over, ``samples`` windows drawn with ``random.Random(seed)``, in file
    order; each becomes a record holding the window's text (what every backend's prepare receives)."""
    text = "".join(r.text for r in calibration.records)
    ids = tokenizer(text, add_special_tokens=False, return_attention_mask=False)["input_ids"]
    skip = quant.calibration.skip
    spans = [(b, b + length) for b in range(0, len(ids) - length + 1, length)]
    usable = spans[skip:]
    if not usable:
        raise RunnerInputError(f"quantization.calibration: the text holds {len(spans)} windows of {length} tokens and skip passes over "
                               f"{skip}: none is left to calibrate on", quant.calibration.path)
    chosen = sorted(random.Random(quant.seed).sample(range(len(usable)), min(quant.samples, len(usable))))
    records = tuple(Record(id=f"window-{skip + i}", text=tokenizer.decode(ids[usable[i][0]:usable[i][1]]), line=1) for i in chosen)
    return dataclasses.replace(calibration, records=records, samples=len(records), windows=True)


def shape_protected(layers: tuple[str, ...], columns: dict[str, int], weights: str, group: int | None) -> tuple[str, ...]:
    """Layers whose input width is not a multiple of the weight group size: no backend can group them,
    so they stay at full precision (reported and recorded as ``shape_protected``)."""
    if weights not in ("int4", "int8") or not group:
        return ()
    return tuple(n for n in layers if columns[n] % group)


def check_capabilities(quant: QuantSpec, task: str, method: str, device: str | None) -> None:
    """``RunnerInputError`` when the backend's declaration does not cover this request (the planner
    refused it already; a runner called directly refuses it too, before loading anything)."""
    backend = BACKENDS.get(quant.backend)
    if backend is None:
        raise RunnerInputError(f"quantization.backend: {quant.backend!r} is not a registered backend (known: {', '.join(BACKENDS)})")
    why = backend.refusal(device, quant.weights, quant.activations, task, method, quant.group_size, quant.algorithm)
    if why:
        can = capable(device, quant.weights, quant.activations, task, method, quant.group_size, quant.algorithm) if device else []
        raise RunnerInputError(f"quantization.backend: {why}" + (f"; backends that can: {', '.join(can)}" if can else ""))


def resolve_protected(globs: tuple[str, ...], layers: tuple[str, ...]) -> tuple[str, ...]:
    """Exact module names matched by ``globs`` (fnmatch), in module order; every glob must match."""
    for glob in globs:
        if not fnmatch.filter(layers, glob):
            close = difflib.get_close_matches(glob, layers, n=3, cutoff=0.5) or list(layers[:3])
            raise RunnerInputError(f"quantization.protected_layers: {glob!r} matches none of the {len(layers)} quantizable "
                                   f"layers (close: {', '.join(close)})")
    return tuple(name for name in layers if any(fnmatch.fnmatchcase(name, g) for g in globs))


class Quantizer:
    """One model loaded, one backend prepared; builds candidates for any set of protected layers."""

    def __init__(self, model: ModelSpec, quant: QuantSpec, evaluation: EvalSpec, envelope: EnvelopeSpec,
                 baseline: BaselineResult, artifact_root: str, progress: Progress = no_progress,
                 timing: dict[str, Any] | None = None, loaded: Any = None, method: str = "ptq"):
        from runners import backends
        from runners.models import load_model

        # Refuse what the backend does not declare before loading anything.
        check_capabilities(quant, model.task, method, envelope.device if envelope is not None else None)
        self.spec, self.quant, self.evaluation, self.envelope = model, quant, evaluation, envelope
        self.baseline, self.artifact_root, self.progress, self.timing = baseline, artifact_root, progress, timing or {}
        self.entry = BACKENDS[quant.backend]
        self.backend = backends.load(quant.backend)
        self.calibration = draw_calibration(quant, model.task)  # bad calibration data fails before the load
        progress(0, 0, "load model")
        self.loaded = loaded or load_model(model, "cpu")
        self.layers = tuple(self.loaded.info.quantizable_layers)
        if quant.calibration.format == "text":
            self.calibration = window_calibration(self.calibration, quant, self.loaded.tokenizer, evaluation.sequence_length)
        modules = dict(self.loaded.model.named_modules())
        group = quant.group_size or (self.entry.capabilities.default_group_size if quant.weights == "int4" else None)
        self.shape_protected = shape_protected(self.layers, {n: int(modules[n].in_features) for n in self.layers}, quant.weights, group)
        if self.shape_protected:
            progress(0, 0, f"{len(self.shape_protected)} layer(s) kept at full precision: their input width is not a multiple of "
                           f"the group size {group} ({', '.join(self.shape_protected[:3])}{', ...' if len(self.shape_protected) > 3 else ''})")
        keep = set(resolve_protected(tuple(quant.protected_layers), self.layers)) | set(self.shape_protected)
        self.protected = tuple(n for n in self.layers if n in keep)
        self.workdir = Path(tempfile.mkdtemp(prefix="quantgate-quantize-"))
        self._prepared: Any = None

    def close(self) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Quantizer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def plan(self, protected: tuple[str, ...]):
        from runners.backends.protocol import LayerPlan

        layers = getattr(self, "layers", ())
        keep = set(protected) | set(getattr(self, "shape_protected", ()))
        return LayerPlan(task=self.spec.task, weights=self.quant.weights, activations=self.quant.activations,
                         group_size=self.quant.group_size, quantized=tuple(n for n in layers if n not in keep),
                         protected=tuple(n for n in layers if n in keep), algorithm=self.quant.algorithm)

    @property
    def prepared(self) -> Any:
        if self._prepared is None:
            self.progress(0, 0, f"prepare {self.quant.backend}")
            self._prepared = self.backend.prepare(self.loaded.model, self.loaded.tokenizer, self.spec.task,
                                                  self.calibration.records, self.workdir)
        return self._prepared

    @property
    def label2id(self) -> dict[str, int] | None:
        if self.spec.task != "text-classification":
            return None
        return dict(getattr(self.loaded.model.config, "label2id", None) or {})

    def quantize(self, protected: tuple[str, ...]) -> Any:
        """A candidate in this process (``.forward``, ``.footprint_bytes()``, ``.save(dir)``)."""
        return self.prepared.quantize(self.plan(tuple(protected)))

    def evaluate_here(self, candidate: Any) -> Quality:
        """The candidate's quality evaluated in this process (mixed precision's search steps)."""
        from runners.evaluate import evaluate

        return evaluate(candidate.forward, self.loaded.tokenizer, self.evaluation, self.baseline.hardest_ids,
                        label2id=self.label2id, generate=False).quality  # a search step: the gate judges the replies

    def measure_fit(self) -> CalibrationFit:
        """The calibration set against the evaluation set (and the production sample), before quantizing
        (``runners.calibration_fit``). With ``on_low_fit: fail`` a low fit is a ``RunnerInputError``."""
        from runners.calibration_fit import calibration_fit, dataset_records, describe

        self.progress(0, 0, "calibration fit")
        task, quant = self.spec.task, self.quant
        calibration_format = "windows" if self.calibration.windows else quant.calibration.format
        fit = calibration_fit(self.loaded.model, self.loaded.tokenizer, (self.calibration.records, calibration_format),
                              dataset_records(self.evaluation.dataset, task), sequence_length=self.evaluation.sequence_length,
                              min_fit=quant.min_fit, stride=self.evaluation.stride, limit=self.evaluation.dataset.limit,
                              skip=self.evaluation.dataset.skip,
                              production=dataset_records(quant.production, task) if quant.production else None, seed=quant.seed)
        if fit.low and quant.on_low_fit == "fail":
            raise RunnerInputError(
                f"quantization.calibration: {describe(fit)}: the calibration set does not look like the workload to the "
                f"model. Calibrate on inputs like the evaluation set (or the production sample), or lower "
                f"quantization.calibration.min_fit, or set on_low_fit: warn to quantize anyway", quant.calibration.path)
        if fit.low:
            self.progress(0, 0, f"warning: {describe(fit)}: below min_fit, quantizing anyway (on_low_fit: warn)")
        return fit

    def save(self, protected: tuple[str, ...], method: str, extra: dict[str, Any] | None = None,
             candidate: Any = None) -> tuple[Any, Artifact]:
        """Quantize (unless ``candidate`` is given) and write the content-addressed artifact."""
        from compiler.files import artifact_slug
        from runners.artifacts import save_tokenizer, versions, write_artifact

        plan = self.plan(tuple(n for n in self.layers if n in set(protected)))
        self.progress(0, 0, f"{method}: quantize with {self.quant.backend}")
        candidate = candidate or self.prepared.quantize(plan)
        backend = self.entry
        # The model stack plus the distributions the backend declares (its version is the first).
        libs = versions("torch", "transformers", *backend.capabilities.distributions)
        record = {
            "backend": backend.name, "backend_version": backend.version(), "versions": libs,
            "method": method, "task": self.spec.task, "source_weights_sha256": self.baseline.weights_sha256,
            "weights": plan.weights, "activations": plan.activations, "group_size": plan.group_size,
            "protected_layers": list(plan.protected), "quantized_layers": list(plan.quantized),
            "shape_protected": list(self.shape_protected),
            "calibration": {"samples": self.calibration.samples, "sha256": self.calibration.sha256, "seed": self.calibration.seed},
            **(extra or {}),
        }

        def write(directory: Path) -> dict[str, Any]:
            save_tokenizer(self.loaded.tokenizer, directory)
            return candidate.save(directory)

        return plan, write_artifact(self.artifact_root, artifact_slug(self.spec.source), backend.capabilities.artifact_format, record, write)

    def build(self, protected: tuple[str, ...], method: str, extra: dict[str, Any] | None = None,
              play_used_calibration: bool = False) -> CandidateResult:
        """``save``, then reload the artifact in a fresh process and evaluate it there.
        ``play_used_calibration``: the play itself used the calibration examples (mixed precision, QAT)."""
        from runners.artifacts import read_record
        from runners.evaluate import most_degraded
        from runners.reload import evaluate_in_fresh_process

        plan, artifact = self.save(protected, method, extra)
        self.progress(0, 0, f"{method}: reload and evaluate the artifact in a fresh process")
        directory = Path(self.artifact_root).resolve().parent / artifact.path
        reloaded = evaluate_in_fresh_process(directory, self.evaluation, self.envelope, self.baseline.hardest_ids,
                                             self.timing, self.label2id, self.baseline.generations)
        record = read_record(directory)
        config = {"weights": plan.weights, "activations": plan.activations, "group_size": plan.group_size,
                  "calibration_used": play_used_calibration or self.entry.capabilities.needs_calibration, **record["config"]}
        if self.shape_protected:
            config["shape_protected"] = list(self.shape_protected)
        return CandidateResult(
            method=method, backend=record["backend"], backend_version=record["backend_version"], config=config,
            protected_layers=plan.protected, quantized_layers=len(plan.quantized),
            calibration_samples=self.calibration.samples, calibration_sha256=self.calibration.sha256,
            artifact=artifact, quality=reloaded.quality, performance=reloaded.performance,
            most_degraded=most_degraded(self.baseline.examples, reloaded.examples),
        )


def run_ptq(model: ModelSpec, quant: QuantSpec, evaluation: EvalSpec, envelope: EnvelopeSpec, baseline: BaselineResult,
            artifact_root: str, progress: Progress = no_progress, **timing: Any) -> CandidateResult:
    """Play 3. ``timing`` overrides the latency protocol of the reloaded artifact (tests only)."""
    with Quantizer(model, quant, evaluation, envelope, baseline, artifact_root, progress, timing) as quantizer:
        fit = quantizer.measure_fit()  # before quantizing: on_low_fit fail stops here, nothing written
        return dataclasses.replace(quantizer.build(quantizer.protected, "ptq"), calibration_fit=fit)

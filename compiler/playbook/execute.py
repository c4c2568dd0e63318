"""Run a plan through a runner, play by play, resumable: the funnel of the playbook.

baseline -> envelope -> ptq -> gate; pass -> lock; close -> mixed precision -> gate; broken (or mixed
precision exhausted) -> QAT only when enabled (the manifest's validation already requires a written
justification and a named engineering manager; the lock then lists ``engineering_manager`` among the
sign-offs still missing, which ``quantgate signoff`` enforces) -> gate; otherwise stop with a verdict
and the next step a human can take. An envelope that fails stops before quantization.

Each finished play's full result is journaled under its cache key before the next play starts, so a
run killed at any point resumes after the last finished play. A known result (journal, or the lock's
compact copy) is never recomputed. Runner failures become ``RunnerFailed`` (exit 3) or, when the
runner blames the input, ``InvalidInput`` (exit 2).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from compiler.errors import InvalidInput, Problem, RunnerFailed
from compiler.manifest.model import LOWER_IS_BETTER
from compiler.playbook.funnel import DONE, Route, Step, step
from compiler.playbook.gate import Judgment, judge, quality_bar
from compiler.playbook.plan import Plan, candidate_of, known_results
from compiler.vocabulary import MODEL_PLAYS, Decision, EnvelopeVerdict, PlanStatus, Play, Status, Verdict
from runners.base import (
    BaselineResult,
    DatasetSpec,
    EnvelopeSpec,
    EvalSpec,
    GenerationSpec,
    ModelInfo,
    ModelSpec,
    Performance,
    Progress,
    QatSpec,
    QuantSpec,
    RunnerError,
    RunnerInputError,
    from_dict,
    no_progress,
    to_dict,
)


class Events:
    """What a run tells its user. The default says nothing; ``compiler.commands.run`` prints.

    For a play that runs: ``play(name, "run", why)``, then ``progress(name)`` reports, then always
    ``ended(name, seconds, ok)`` (also when the runner failed), then possibly ``finished`` with a summary.
    Cached and skipped plays get one ``play`` call each."""

    def play(self, name: str, status: str, why: str) -> None:
        """``status``: run (starting) | cached | skipped."""

    def progress(self, name: str) -> Progress:
        return no_progress

    def ended(self, name: str, seconds: float, ok: bool) -> None:
        """A play that ran has stopped after ``seconds`` of wall time: ``ok`` or it raised."""

    def finished(self, name: str, summary: str) -> None:
        """A play's result, in a line (after ``ended`` for the plays that ran)."""


@dataclass
class Outcome:
    """Everything the lock is built from."""

    verdict: str = "refused"  # locked | refused
    next_step: str | None = None
    results: dict[str, dict] = field(default_factory=dict)  # play -> result (full or compact)
    statuses: dict[str, str] = field(default_factory=dict)  # play -> passed | failed | skipped
    whys: dict[str, str] = field(default_factory=dict)
    ran: list[str] = field(default_factory=list)  # plays the runner executed this time
    judgments: list[Judgment] = field(default_factory=list)
    final: str | None = None  # the play whose candidate is locked
    seconds: dict[str, float] = field(default_factory=dict)  # wall time of the plays that ran (not locked: varies)


# ------------------------------------------------------------------------------------------- specs


def _dataset(ref: Any, root: Path) -> DatasetSpec:
    return DatasetSpec(path=str((root / ref.path).resolve()), format=ref.format, columns=dict(ref.columns), header=ref.header, limit=ref.limit,
                       skip=ref.skip)


def _generation(generation: Any, root: Path) -> GenerationSpec | None:
    if generation is None:
        return None
    return GenerationSpec(prompts=_dataset(generation.prompts, root), max_new_tokens=generation.max_new_tokens,
                          compare_tokens=generation.compared, format=generation.format)


@dataclass(frozen=True)
class Specs:
    model: ModelSpec
    evaluation: EvalSpec
    envelope: EnvelopeSpec
    quant: QuantSpec
    qat: QatSpec | None
    artifact_root: str


def build_specs(manifest: Any, root: Path, backend: str, pickle_allowed: tuple[str, ...] = ()) -> Specs:
    """The manifest as runner requests: paths made absolute, ``auto`` resolved."""
    from compiler.discover import artifact_root

    m = manifest
    source = str((root / m.model.source).resolve()) if m.model.is_local else m.model.source
    env = m.envelope
    return Specs(
        model=ModelSpec(source=source, revision=m.model.revision, task=m.model.task, gguf_file=m.model.gguf_file, trust_remote_code=m.model.trust_remote_code,
                        allow_pickle=m.model.source in pickle_allowed),
        evaluation=EvalSpec(task=m.model.task, metric=m.evaluation.metric, lower_is_better=m.evaluation.metric in LOWER_IS_BETTER,
                            dataset=_dataset(m.evaluation.dataset, root), hardest_fraction=m.evaluation.hardest_fraction,
                            batch_size=env.batch_size, sequence_length=env.sequence_length, stride=m.evaluation.stride,
                            position_buckets=m.evaluation.position_buckets if m.evaluation.dataset.format == "text" else 0,
                            generation=_generation(m.evaluation.generation, root)),
        envelope=EnvelopeSpec(device=env.device, memory_bytes=env.memory_bytes, headroom=env.headroom, batch_size=env.batch_size,
                              sequence_length=env.sequence_length, latency_p95_ms=env.latency_p95_ms),
        quant=QuantSpec(weights=m.quantization.weights, activations=m.quantization.activations, group_size=m.quantization.group_size,
                        backend=backend, algorithm=m.quantization.algorithm, calibration=_dataset(m.quantization.calibration.dataset, root),
                        samples=m.quantization.calibration.samples, seed=m.quantization.calibration.seed,
                        protected_layers=tuple(m.quantization.protected_layers),
                        min_fit=m.quantization.calibration.min_fit, on_low_fit=m.quantization.calibration.on_low_fit,
                        production=_dataset(m.quantization.calibration.production, root) if m.quantization.calibration.production else None),
        qat=QatSpec(justification=m.qat.justification or "", steps=m.qat.steps, learning_rate=m.qat.learning_rate, seed=m.qat.seed) if m.qat.enabled else None,
        # runners.artifacts writes <artifact_root>/<model slug>/<sha256>/ and records the path
        # relative to the parent of artifact_root: with <repo>/artifacts, repository-relative.
        artifact_root=str(artifact_root(root)),
    )


_LOCATION = re.compile(r"^(?P<path>.+?):(?P<line>\d+)(?::(?P<col>\d+))?$")


def _runner_call(play: str, call: Callable[[], Any]) -> Any:
    try:
        return call()
    except RunnerInputError as exc:
        line = col = None
        path = "<input>"
        match = _LOCATION.match(exc.location or "")
        if match:
            path, line = match["path"], int(match["line"])
            col = int(match["col"]) if match["col"] else None
        elif exc.location:
            path = exc.location
        raise InvalidInput(Problem(path=path, line=line, col=col, message=f"{play}: {exc.detail}")) from exc
    except RunnerError as exc:
        raise RunnerFailed(f"play {play} failed: {exc}") from exc


def compact(play: str, result: dict) -> dict:
    """What the lock keeps of a play's result: everything but per-example scores and replies."""
    if play == "baseline":
        return {k: v for k, v in result.items() if k not in ("examples", "generations")}
    return result


# -------------------------------------------------------------------------------------------- run


def execute(plan: Plan, root: Path, runner: Any, journal: Any, lock: dict | None, events: Events | None = None,
            pickle_allowed: tuple[str, ...] = ()) -> Outcome:
    """Walk the funnel. Plays whose key already has a result are reused; the rest call ``runner``."""
    events = events or Events()
    m = plan.manifest
    specs = build_specs(m, root, plan.backend, pickle_allowed)
    keys = plan.keys
    full, anywhere = known_results(journal, lock, plan.trusted)
    out = Outcome()
    lower = m.evaluation.metric in LOWER_IS_BETTER
    trigger = {p.name: p.trigger for p in plan.plays}

    def run(play: str, call: Callable[[Progress], Any]) -> dict:
        events.play(play, "run", trigger[play])
        started = time.perf_counter()
        try:
            result = to_dict(_runner_call(play, lambda: call(events.progress(play))))
        except BaseException:
            events.ended(play, time.perf_counter() - started, False)
            raise
        out.seconds[play] = time.perf_counter() - started
        events.ended(play, out.seconds[play], True)
        journal.put(play, keys[play], result)
        out.ran.append(play)
        return result

    def obtain(play: str, call: Callable[[Progress], Any]) -> dict:
        known = anywhere(play, keys[play])
        if known is not None:
            events.play(play, "cached", "inputs unchanged")
            out.results[play] = known
            return known
        result = run(play, call)
        out.results[play] = result
        return result

    def full_baseline() -> BaselineResult:
        """The baseline with per-example scores (a candidate's evaluation compares against them)."""
        have = full("baseline", keys["baseline"])
        if have is None:
            have = run("baseline", lambda pr: runner.baseline(specs.model, specs.evaluation, specs.envelope, pr))
            out.results["baseline"] = have
        return from_dict(BaselineResult, have)

    def skip(skipped: tuple[tuple[Play, str], ...]) -> None:
        for p, why in skipped:
            if p not in out.statuses:
                out.statuses[p] = Status.SKIPPED
                out.whys[p] = why
                events.play(p, "skipped", why)

    def gate(candidate: str, result: dict) -> Judgment:
        j = judge(candidate, m.evaluation.metric, lower, out.results["baseline"]["quality"], result["quality"], m.gate, m.envelope, result.get("performance"),
                  baseline_performance=out.results["baseline"].get("performance"), envelope_result=out.results.get("envelope"))
        out.judgments.append(j)
        events.finished("gate", f"{candidate}: {j.decision} ({j.reasons[0]})")
        return j

    def candidate_call(kind: Play) -> Callable[[Progress], Any]:
        if kind == Play.PTQ:
            return lambda pr: runner.ptq(specs.model, specs.quant, specs.evaluation, specs.envelope, full_baseline(), specs.artifact_root, pr)
        if kind == Play.MIXED_PRECISION:
            base = out.results[Play.BASELINE]["quality"]
            bar = quality_bar(m.evaluation.metric, lower, base["value"], base["hardest"], m.gate)
            return lambda pr: runner.mixed_precision(specs.model, specs.quant, specs.evaluation, specs.envelope, full_baseline(), bar,
                                                     m.mixed_precision.max_protected_fraction, specs.artifact_root, pr)
        return lambda pr: runner.qat(specs.model, specs.quant, specs.qat, specs.evaluation, specs.envelope, full_baseline(), specs.artifact_root, pr)

    # Installed here? Checked once, before the first play that loads a model (the plan was made from
    # declared capabilities, so it could not know).
    if any(p.status == PlanStatus.RUN for p in plan.plays if p.name in MODEL_PLAYS):
        _runner_call("preflight", lambda: runner.preflight(specs.quant))

    # Plays 1-6: walk the funnel (compiler.playbook.funnel), the same step function the plan walks.
    route = Route.of(m)
    seen: dict[Play, str] = {}
    while True:
        nxt = step(route, seen)
        skip(nxt.skipped)
        if nxt.play is None:
            break
        play = nxt.play
        if play == Play.BASELINE:
            # A compact (locked) baseline is enough until a later model play needs the full one.
            if plan.play(Play.BASELINE).status == PlanStatus.RUN:  # unknown, or known without per-example scores
                full_baseline()
            else:
                obtain(Play.BASELINE, lambda pr: runner.baseline(specs.model, specs.evaluation, specs.envelope, pr))
            out.statuses[Play.BASELINE] = Status.PASSED
            if Play.BASELINE in out.ran:
                q = out.results[Play.BASELINE]["quality"]
                events.finished(Play.BASELINE, f"{q['metric']} {q['value']:.4f}, hardest {q['hardest']:.4f}")
            seen[play] = DONE
        elif play == Play.ENVELOPE:
            baseline = out.results[Play.BASELINE]
            info = from_dict(ModelInfo, baseline["model_info"])
            perf = from_dict(Performance, baseline["performance"])
            envelope = obtain(Play.ENVELOPE, lambda pr, info=info, perf=perf: runner.envelope(info, specs.quant, specs.envelope, perf))
            verdict = envelope["verdict"]
            out.statuses[Play.ENVELOPE] = Status.FAILED if verdict == EnvelopeVerdict.FAIL else Status.PASSED
            if verdict == EnvelopeVerdict.FAIL:
                reasons = "; ".join(envelope.get("reasons") or [])
                out.next_step = (
                    f"The envelope said {verdict}: {reasons}. Change the deployment target (envelope: memory_per_device, "
                    "device, batch_size) or the quantization target, or decide not to quantize this model."
                )
            elif verdict != EnvelopeVerdict.PASS:
                events.finished(Play.ENVELOPE, f"{verdict} (advisory, the funnel continues): " + "; ".join((envelope.get("reasons") or [])[:1]))
            seen[play] = verdict
        else:
            result = obtain(play, candidate_call(play))
            candidate = candidate_of(play, result)
            judgment = gate(play, candidate) if candidate else None
            decision = judgment.decision if judgment else Decision.BROKEN
            out.statuses[play] = Status.PASSED if play == Play.PTQ or decision == Decision.PASS else Status.FAILED
            out.statuses[Play.GATE] = Status.PASSED if decision == Decision.PASS else Status.FAILED
            seen[play] = decision

    if nxt.verdict == Verdict.LOCKED:
        out.verdict = Verdict.LOCKED
        out.final = nxt.final
        out.statuses[Play.LOCK] = out.statuses[Play.MONITOR] = Status.PASSED
        out.whys[Play.LOCK] = f"the gate passed for the {out.final} candidate"
    elif out.next_step is None:
        out.next_step = _next_step(m, nxt, out)
    return out


def _next_step(m: Any, end: Step, out: Outcome) -> str:
    """What a human can do after a refusal past the envelope."""
    wrong = next((r for j in out.judgments for r in j.reasons if r.startswith("wrong move:")), None)
    if wrong is not None:
        return (f"{wrong}. Next: keep full precision (quantization does not pay here), change the deployment target "
                "(envelope: a smaller memory_per_device or a tighter latency_p95_ms it must meet), or, if it is wanted anyway, "
                "say why in gate.accept_wrong_move for the reviewers.")
    fallback = end.fallback_why or "the gate did not pass"
    mp = out.results.get(Play.MIXED_PRECISION)
    if mp is not None and out.statuses.get(Play.MIXED_PRECISION) == Status.FAILED:
        fallback = (f"mixed precision reached its cap (max_protected_fraction {m.mixed_precision.max_protected_fraction:g}, "
                    f"{mp.get('cap_layers')} layers) without passing the gate")
    if Play.QAT in out.results:
        last = out.judgments[-1].reasons[0] if out.judgments else "no candidate"
        return (f"{fallback}, and QAT did not reach the gate either ({last}). Next: more qat.steps "
                "or a milder target (int8 instead of int4, weight-only activations), or relax the gate with the product owner.")
    return (f"{fallback}. Next: try a milder target (int8 instead of int4, activations: none), protect layers by hand "
            "(quantization.protected_layers)" + (", raise mixed_precision.max_protected_fraction" if m.mixed_precision.enabled else ", enable mixed_precision")
            + ", relax the gate with the product owner, or enable qat with a written justification and an engineering manager.")

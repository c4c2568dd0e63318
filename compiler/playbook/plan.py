"""manifest (+ lock, + journal) -> Plan: the eight plays, each with trigger, owners, cache key and
status ``run`` | ``cached`` | ``skipped`` (with why).

The planner walks the funnel with what is already known (journaled or locked results whose cache
key still matches) and marks the plays whose outcome depends on a result not known yet with a
``condition`` ("only if the gate says close"). It refuses, before any model is loaded, a plan no
registered backend's declared capabilities cover (``InvalidInput`` located at ``quantization.backend``);
whether the backend is installed is ``run``'s concern, so a plan is the same on every machine.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from compiler.errors import InvalidInput, Problem
from compiler.files import sha256_of
from compiler.playbook.cachekeys import Facts, cache_keys, gather_facts, uncacheable
from compiler.playbook.funnel import DONE, Exploration, Route, explore
from compiler.playbook.gate import judge
from compiler.playbook.lockmodel import CalibrationFit, Lock
from compiler.vocabulary import CANDIDATE_PLAYS, MODEL_PLAYS, PLAY_SIGNERS, PLAYS, Decision, PlanStatus, Play, Verdict

PLAN_SCHEMA_VERSION = 1


@dataclass(frozen=True)
class PlayPlan:
    number: int
    name: str
    status: str  # run | cached | skipped
    trigger: str  # the playbook's trigger, in words, for this manifest
    why: str  # why this status
    condition: str | None  # runs only if ... (None: unconditional)
    owners: dict[str, list[str]]
    cache_key: str

    def to_dict(self) -> dict:
        return {
            "number": self.number, "name": self.name, "title": Play(self.name).title, "status": self.status,
            "trigger": self.trigger, "why": self.why, "condition": self.condition,
            "owners": self.owners, "cache_key": self.cache_key,
        }


@dataclass(frozen=True)
class Plan:
    name: str
    manifest_path: str  # as shown to users (repo-relative)
    manifest_sha256: str
    backend: str
    facts: Facts
    keys: dict[str, str]
    plays: tuple[PlayPlan, ...]
    manifest: Any = field(repr=False, default=None)
    exploration: Exploration = field(repr=False, default_factory=Exploration)
    provenance: str = "unverified: no store"  # or "verified against the store"
    trusted: dict[str, bool] | None = field(repr=False, default=None)  # what execute may take from the lock
    warnings: tuple[str, ...] = ()  # what a reviewer should know before running (a low calibration fit)

    def play(self, name: str) -> PlayPlan:
        return next(p for p in self.plays if p.name == name)

    @property
    def loads_model(self) -> bool:
        """Whether executing this plan may load a model (any model play not known yet)."""
        return any(p.status == "run" for p in self.plays if p.name in MODEL_PLAYS)

    def to_dict(self) -> dict:
        """The stable JSON CI reads (documented in docs/playbook.md)."""
        return {
            "schema_version": PLAN_SCHEMA_VERSION,
            "name": self.name,
            "manifest": self.manifest_path,
            "manifest_sha256": self.manifest_sha256,
            "backend": self.backend,
            "loads_model": self.loads_model,
            "provenance": self.provenance,
            "plays": [p.to_dict() for p in self.plays],
            "summary": {s: [p.name for p in self.plays if p.status == s] for s in ("run", "cached", "skipped")},
            "warnings": list(self.warnings),
        }


# ---------------------------------------------------------------------------------- known results


def lock_result(lock: Lock | None, play: str, key: str) -> dict | None:
    """A play's compact result from the lock when its recorded key still matches."""
    if lock is None:
        return None
    entry = lock.play(play)
    return entry.result if entry.cache_key == key else None


Known = Callable[[str, str], "dict | None"]


def known_results(journal: Any, lock: Lock | None, trusted: dict[str, bool] | None = None) -> tuple[Known, Known]:
    """(full, any): ``full`` reads the journal only; ``any`` falls back to the lock's compact result,
    when ``trusted`` (play -> the store holds exactly this result, ``compiler.playbook.provenance``)
    vouches for it; ``trusted`` None: no store, the lock is taken as written (unverified)."""

    def full(play: str, key: str) -> dict | None:
        return journal.get(play, key) if journal is not None else None

    def anywhere(play: str, key: str) -> dict | None:
        if trusted is not None and not trusted.get(str(play), False):
            return full(play, key)
        return full(play, key) or lock_result(lock, play, key)

    return full, anywhere


# ------------------------------------------------------------------------------------- the backend


def resolve_backend(loaded: Any) -> str:
    """``quantization.backend`` resolved for this envelope from the backends' declared capabilities
    (the same answer on every machine, installed or not), or ``InvalidInput`` at that key."""
    from runners.registry import algorithm_builds_on, capable, refusals, resolve

    m = loaded.manifest
    q = m.quantization
    methods = ("ptq",) + (("mixed_precision",) if m.mixed_precision.enabled else ()) + (("qat",) if m.qat.enabled else ())
    target = (m.envelope.device, q.weights, q.activations, m.model.task)
    name = resolve(q.backend, *target, methods, group_size=q.group_size, algorithm=q.algorithm)
    if name is not None:
        return name
    what = f"weights={q.weights} activations={q.activations} with algorithm {q.algorithm} for task {m.model.task!r} on {m.envelope.device}"
    why = "; ".join(refusals(q.backend, *target, methods, group_size=q.group_size, algorithm=q.algorithm))
    if q.backend != "auto":
        detail = f"backend {q.backend!r} cannot run {what} ({why})"
        can = capable(*target, methods[0], group_size=q.group_size, algorithm=q.algorithm)
        if can:
            detail += f"; backends that can: {', '.join(can)}"
    else:
        detail = f"no registered backend can run {what} ({why})"
    cause = "backend" if algorithm_builds_on(q.algorithm, m.envelope.device) else "algorithm"
    raise InvalidInput(_problem_at(loaded, ("quantization", cause), detail))


def _problem_at(loaded: Any, path: tuple[str, str], message: str) -> Problem:
    line = col = None
    try:
        section = loaded.tree[path[0]]
        if path[1] in section:
            line, col = section.lc.value(path[1])
        else:
            line, col = loaded.tree.lc.key(path[0])
        line, col = line + 1, col + 1
    except (KeyError, AttributeError, TypeError):
        pass
    lines = loaded.text.splitlines()
    source_line = lines[line - 1] if line and line <= len(lines) else None
    return Problem(path=loaded.display_path, message=message, line=line, col=col, key_path=".".join(path), source_line=source_line)


# ------------------------------------------------------------------------------------------ triggers


def _changed_sections(lock: Lock | None, sections: dict[str, str]) -> list[str]:
    recorded = lock.manifest.sections if lock else {}
    return [s for s, h in sections.items() if recorded.get(s) != h]


def _trigger(play: str, m: Any, lock: Lock | None, facts: Facts, changed: list[str]) -> str:
    rev = m.model.revision[:12] if m.model.revision else None
    if play == "baseline":
        if lock is None:
            return f"no baseline yet for {m.model.source}" + (f" at revision {rev}" if rev else "")
        model = lock.inputs.model
        if model.revision != m.model.revision:
            return f"no baseline for revision {rev}"
        if model.files_sha256 != facts.model_files_sha256:
            return f"the model files in {m.model.source} changed"
        if lock.inputs.evaluation_data.sha256 != facts.evaluation_sha256:
            return "the evaluation data changed"
        return "the evaluation settings changed" if "evaluation" in changed else "a model enters the stack or its revision changes"
    if play == "envelope":
        return "the deployment target changed" if lock and "envelope" in changed else "the deployment target is known"
    if play == "ptq":
        return f"a baseline exists and the target is {m.quantization.weights} weights, {m.quantization.activations} activations"
    if play == "gate":
        return "a quantized artifact exists"
    if play == "mixed_precision":
        return "the gate says close"
    if play == "qat":
        return "mixed precision still misses (or the gate says broken) and QAT is enabled and justified"
    if play == "lock":
        return "the gate passes"
    return "rollback rules for the live model" if any(v is not None for v in (m.rollback.quality_floor, m.rollback.error_rate_ceiling, m.rollback.latency_p95_ms)) else "no rollback rules set"


def manifest_sections(loaded: Any) -> dict[str, str]:
    """sha256 of each top-level section of the manifest as understood (lets plan and verify say
    *which* section changed, not only that the file did)."""
    dumped = loaded.manifest.model_dump(mode="json", by_alias=True)
    return {k: sha256_of(v) for k, v in dumped.items()}


# ------------------------------------------------------------------------------------------ the walk

#: The condition shown for a play that runs on some outcomes of the plays before it but not all.
CONDITIONS: dict[Play, str] = {
    Play.BASELINE: "only if needed",
    Play.ENVELOPE: "only if needed",
    Play.PTQ: "only if the envelope passes",
    Play.GATE: "only if the envelope passes",
    Play.MIXED_PRECISION: "only if the gate says close",
    Play.QAT: "only if mixed precision (or the gate) still misses",
    Play.LOCK: "only if the gate passes",
    Play.MONITOR: "only if the gate passes",
}


def known_outcomes(m: Any, results: dict[Play, dict]) -> dict[Play, str]:
    """The funnel outcome of each play whose result is known: the envelope's verdict, and the gate's
    decision on each candidate (which needs the baseline's numbers)."""
    outcomes: dict[Play, str] = {}
    if Play.BASELINE in results:
        outcomes[Play.BASELINE] = DONE
    if Play.ENVELOPE in results:
        outcomes[Play.ENVELOPE] = results[Play.ENVELOPE]["verdict"]
    baseline = results.get(Play.BASELINE)
    if baseline is None:
        return outcomes
    for play in CANDIDATE_PLAYS:
        if play in results:
            candidate = candidate_of(play, results[play])
            outcomes[play] = Decision.BROKEN if candidate is None else judge(
                play, m.evaluation.metric, m.lower_is_better, baseline["quality"], candidate["quality"], m.gate, m.envelope,
                candidate.get("performance"), baseline_performance=baseline.get("performance"),
                envelope_result=results.get(Play.ENVELOPE)).decision
    return outcomes


def fit_warnings(m: Any, ptq: dict | None) -> tuple[str, ...]:
    """A warning when the recorded ptq result (this cache key's) measured a calibration fit below
    ``quantization.calibration.min_fit``."""
    recorded = (ptq or {}).get("calibration_fit")
    if not recorded:
        return ()
    fit = CalibrationFit.model_validate(recorded)
    calibration = m.quantization.calibration
    if fit.fit >= calibration.min_fit:
        return ()
    views = "; ".join(f"{c.against} {c.fit:.2f}: length {c.length:.2f}, unknown tokens {c.unknown:.2f}, hidden states {c.hidden:.2f}"
                      for c in fit.comparisons)
    return (f"ptq: calibration fit {fit.fit:.2f} is below quantization.calibration.min_fit {calibration.min_fit:g} ({views}): "
            f"{calibration.dataset.path} does not look like the workload to the model; calibrate on inputs like the "
            f"evaluation set, or lower min_fit, or set on_low_fit: fail to refuse it",)


def candidate_of(play: str, result: dict) -> dict | None:
    """The candidate a play's result holds (mixed precision: its best; QAT: its candidate)."""
    if play == Play.MIXED_PRECISION:
        return result.get("best")
    if play == Play.QAT:
        return result.get("candidate")
    return result


def make_plan(loaded: Any, lock: Lock | None = None, journal: Any = None, trusted: dict[str, bool] | None = None) -> Plan:
    """The plan for ``loaded`` (a ``compiler.manifest.load.LoadedManifest``). Loads no model.

    Walks the funnel (``compiler.playbook.funnel``) over every outcome not known yet: a play on every
    path runs unconditionally, one on some paths runs with a ``condition``, one on none is skipped."""
    m = loaded.manifest
    backend = resolve_backend(loaded)
    facts = gather_facts(m, loaded.root, backend)
    keys = cache_keys(m, facts, loaded.sha256)
    changed = _changed_sections(lock, manifest_sections(loaded))
    full, anywhere = known_results(journal, lock, trusted)
    verified = "verified against the store" if trusted is not None else "unverified: no store"

    results: dict[Play, dict] = {}
    for play in (Play.BASELINE, Play.ENVELOPE, *CANDIDATE_PLAYS):
        found = None if uncacheable(play, m, facts) else anywhere(play, keys[play])
        if found is not None:
            results[play] = found
    known = known_outcomes(m, results)
    ways = explore(Route.of(m), known)
    locked_always = bool(ways.paths) and all(w.end.verdict == Verdict.LOCKED for w in ways.paths)
    locked_sometimes = bool(ways.ends(Verdict.LOCKED))
    status: dict[Play, tuple[str, str, str | None]] = {}

    for play in (Play.BASELINE, Play.ENVELOPE, *CANDIDATE_PLAYS):
        if not ways.reached(play):
            status[play] = (PlanStatus.SKIPPED, ways.skip_why(play) or "not needed", None)
        elif play in results:
            status[play] = (PlanStatus.CACHED, f"inputs unchanged (cache key matches a recorded result; {verified})", None)
        else:
            reason = uncacheable(play, m, facts)
            forged = trusted is not None and lock_result(lock, play, keys[play]) is not None
            why = (f"uncacheable: {reason}" if reason else
                   "the lock's result is not the one CI recorded in the store: re-measured" if forged else
                   "no recorded result for this cache key")
            status[play] = (PlanStatus.RUN, why, None if ways.always(play) else CONDITIONS[play])

    ptq_status = status[Play.PTQ]
    if ptq_status[0] == PlanStatus.SKIPPED:
        status[Play.GATE] = ptq_status
    elif Play.PTQ in known:
        status[Play.GATE] = (PlanStatus.CACHED, f"recomputed from recorded results: {known[Play.PTQ]}", None)
    else:
        status[Play.GATE] = (PlanStatus.RUN, "judges the ptq candidate once it exists", ptq_status[2])

    # A model play that must run needs the baseline's per-example scores: only the journal has them.
    if status[Play.BASELINE][0] == PlanStatus.CACHED and any(status[p][0] == PlanStatus.RUN for p in CANDIDATE_PLAYS):
        if full(Play.BASELINE, keys[Play.BASELINE]) is None:
            status[Play.BASELINE] = (PlanStatus.RUN, "a later model play needs the baseline's per-example scores, which the lock does not keep (no journal here)", None)

    condition = None if locked_always else CONDITIONS[Play.LOCK]
    if not locked_sometimes:
        status[Play.LOCK] = (PlanStatus.SKIPPED, "the gate did not pass: nothing to lock (the lock records the refusal)", None)
        status[Play.MONITOR] = (PlanStatus.SKIPPED, "nothing locked to monitor", None)
    else:
        if locked_always and lock is not None and lock.plays.lock.cache_key == keys[Play.LOCK]:
            status[Play.LOCK] = (PlanStatus.CACHED, "the lock already records these results", None)
        else:
            status[Play.LOCK] = (PlanStatus.RUN, "writes the lock from the results (no model)", condition)
        if lock is not None and lock.plays.monitor.cache_key == keys[Play.MONITOR]:
            status[Play.MONITOR] = (PlanStatus.CACHED, "rollback rules unchanged", None)
        else:
            why = "rollback: changed; only play 8's output is rewritten" if lock else "records the rollback rules"
            status[Play.MONITOR] = (PlanStatus.RUN, why, condition)

    plays = tuple(
        PlayPlan(
            number=p.number, name=p.value, status=str(status[p][0]),
            trigger=_trigger(p, m, lock, facts, changed), why=status[p][1], condition=status[p][2],
            owners={r.value: m.owners.of(r) for r in PLAY_SIGNERS[p]}, cache_key=keys[p],
        )
        for p in PLAYS
    )
    return Plan(name=m.metadata.name, manifest_path=loaded.display_path, manifest_sha256=loaded.sha256, backend=backend,
                facts=facts, keys=keys, plays=plays, manifest=m, exploration=ways, provenance=verified, trusted=trusted,
                warnings=fit_warnings(m, results.get(Play.PTQ)))

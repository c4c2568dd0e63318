"""manifest (+ lock, + journal) -> Plan: the eight plays, each with trigger, owners, cache key and
status ``run`` | ``cached`` | ``skipped`` (with why).

The planner walks the funnel with what is already known (journaled or locked results whose cache
key still matches) and marks the plays whose outcome depends on a result not known yet with a
``condition`` ("only if the gate says close"). It refuses, before any model is loaded, a plan no
installed backend can execute (``InvalidInput`` located at ``quantization.backend``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from compiler.cachekeys import MODEL_PLAYS, PLAYS, Facts, cache_keys, gather_facts, uncacheable
from compiler.errors import InvalidInput, Problem
from compiler.gate import judge
from compiler.manifest import LOWER_IS_BETTER, PLAY_SIGNERS

PLAN_SCHEMA_VERSION = 1

NUMBERS = {play: i for i, play in enumerate(PLAYS, start=1)}
TITLES = {
    "baseline": "baseline", "envelope": "envelope check", "ptq": "post-training quantization",
    "gate": "evaluate + gate", "mixed_precision": "mixed precision", "qat": "quantization-aware training",
    "lock": "lock", "monitor": "monitor",
}
#: Who signs each play (the playbook's owner column): the manifest module's table, shared with
#: validation and sign-off.
ROLES: dict[str, tuple[str, ...]] = PLAY_SIGNERS
#: The plays a lock's results come from (play 4's result is computed, play 7/8 are records).
RESULT_PLAYS = ("baseline", "envelope", "ptq", "mixed_precision", "qat")
#: Envelope verdicts that stop the funnel. ``warn`` and ``wrong-move`` are advisory: recorded, shown
#: to the platform lead who signs the envelope, and the funnel continues (runners/envelope.py).
FAILED_ENVELOPE = ("fail",)


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
            "number": self.number, "name": self.name, "title": TITLES[self.name], "status": self.status,
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
            "plays": [p.to_dict() for p in self.plays],
            "summary": {s: [p.name for p in self.plays if p.status == s] for s in ("run", "cached", "skipped")},
        }


# ---------------------------------------------------------------------------------- known results


def lock_result(lock: dict | None, play: str, key: str) -> dict | None:
    """A play's compact result from the lock when its recorded key still matches."""
    if not lock:
        return None
    entry = (lock.get("plays") or {}).get(play)
    if isinstance(entry, dict) and entry.get("cache_key") == key and isinstance(entry.get("result"), dict):
        return entry["result"]
    return None


Known = Callable[[str, str], "dict | None"]


def known_results(journal: Any, lock: dict | None) -> tuple[Known, Known]:
    """(full, any): ``full`` reads the journal only; ``any`` falls back to the lock's compact result."""

    def full(play: str, key: str) -> dict | None:
        return journal.get(play, key) if journal is not None else None

    def anywhere(play: str, key: str) -> dict | None:
        return full(play, key) or lock_result(lock, play, key)

    return full, anywhere


# ------------------------------------------------------------------------------------- the backend


def resolve_backend(loaded: Any) -> str:
    """``quantization.backend`` resolved for this envelope, or ``InvalidInput`` at that key."""
    from runners.registry import BACKENDS, capable, resolve

    m = loaded.manifest
    q = m.quantization
    methods = ("ptq",) + (("mixed_precision",) if m.mixed_precision.enabled else ()) + (("qat",) if m.qat.enabled else ())
    name = resolve(q.backend, m.envelope.device, q.weights, q.activations, m.model.task, methods, group_size=q.group_size)
    if name is not None:
        return name
    would = capable(m.envelope.device, q.weights, q.activations, m.model.task, "ptq", installed_only=False, group_size=q.group_size)
    installed = [b for b in would if BACKENDS[b].installed()]
    if q.backend != "auto" and q.backend in BACKENDS and not BACKENDS[q.backend].installed():
        detail = f"backend {q.backend!r} is not installed (needs {', '.join(BACKENDS[q.backend].requires)})"
    elif q.backend != "auto":
        detail = f"backend {q.backend!r} cannot run weights={q.weights} activations={q.activations} for task {m.model.task!r} on {m.envelope.device}"
        if installed:
            detail += f"; installed backends that can: {', '.join(installed)}"
    else:
        detail = f"no installed backend can run weights={q.weights} activations={q.activations} for task {m.model.task!r} on {m.envelope.device}"
        if would:
            detail += f" (these could once installed: {', '.join(would)})"
    raise InvalidInput(_problem_at(loaded, ("quantization", "backend"), detail))


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


def _changed_sections(lock: dict | None, sections: dict[str, str]) -> list[str]:
    recorded = ((lock or {}).get("manifest") or {}).get("sections") or {}
    return [s for s, h in sections.items() if recorded.get(s) != h]


def _trigger(play: str, m: Any, lock: dict | None, facts: Facts, changed: list[str]) -> str:
    rev = m.model.revision[:12] if m.model.revision else None
    inputs = (lock or {}).get("inputs") or {}
    if play == "baseline":
        if not lock:
            return f"no baseline yet for {m.model.source}" + (f" at revision {rev}" if rev else "")
        model = inputs.get("model") or {}
        if model.get("revision") != m.model.revision:
            return f"no baseline for revision {rev}"
        if model.get("files_sha256") != facts.model_files_sha256:
            return f"the model files in {m.model.source} changed"
        if (inputs.get("evaluation_data") or {}).get("sha256") != facts.evaluation_sha256:
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
    import hashlib

    from compiler.lockfile import canonical_json

    dumped = loaded.manifest.model_dump(mode="json", by_alias=True)
    return {k: hashlib.sha256(canonical_json(v).encode()).hexdigest() for k, v in dumped.items()}


# ------------------------------------------------------------------------------------------ the walk


def make_plan(loaded: Any, lock: dict | None = None, journal: Any = None) -> Plan:
    """The plan for ``loaded`` (a ``compiler.load.LoadedManifest``). Loads no model."""
    m = loaded.manifest
    backend = resolve_backend(loaded)
    facts = gather_facts(m, loaded.root, backend)
    keys = cache_keys(m, facts, loaded.sha256)
    changed = _changed_sections(lock, manifest_sections(loaded))
    _full, anywhere = known_results(journal, lock)
    lower = m.evaluation.metric in LOWER_IS_BETTER

    status: dict[str, tuple[str, str, str | None]] = {}  # play -> (status, why, condition)

    def known(play: str) -> dict | None:
        if uncacheable(play, m, facts):
            return None
        return anywhere(play, keys[play])

    def decide(play: str, condition: str | None = None) -> dict | None:
        result = known(play)
        reason = uncacheable(play, m, facts)
        if result is not None:
            status[play] = ("cached", "inputs unchanged (cache key matches a recorded result)", None)
        else:
            status[play] = ("run", f"uncacheable: {reason}" if reason else "no recorded result for this cache key", condition)
        return result

    def skip(plays: tuple[str, ...], why: str) -> None:
        for p in plays:
            status.setdefault(p, ("skipped", why, None))

    baseline = decide("baseline")
    envelope = decide("envelope")
    later = ("ptq", "gate", "mixed_precision", "qat", "lock")
    final_known = None  # pass/refused once known
    if envelope is not None and envelope.get("verdict") in FAILED_ENVELOPE:
        skip(later, f"the envelope said {envelope['verdict']}: quantization stops before play 3")
        final_known = "refused"
    else:
        cond = None if envelope is not None else "only if the envelope passes"
        ptq = decide("ptq", cond)
        decision = None
        if baseline is not None and ptq is not None:
            decision = judge("ptq", m.evaluation.metric, lower, baseline["quality"], ptq["quality"], m.gate, m.envelope, ptq.get("performance")).decision
            status["gate"] = ("cached", f"recomputed from recorded results: {decision}", None)
        else:
            status["gate"] = ("run", "judges the ptq candidate once it exists", cond)
        # What QAT would follow: None (not needed), "unknown" (not known yet) or a known miss.
        needs_fallback: str | None = None
        if decision == "pass":
            skip(("mixed_precision", "qat"), "the gate passed after ptq")
            final_known = "pass"
        elif decision in (None, "close") and m.mixed_precision.enabled:
            mp = decide("mixed_precision", None if decision == "close" else "only if the gate says close")
            if mp is None:
                needs_fallback = "unknown"
            else:
                best = mp.get("best")
                mp_pass = best is not None and judge("mixed_precision", m.evaluation.metric, lower, baseline["quality"], best["quality"],
                                                     m.gate, m.envelope, best.get("performance")).decision == "pass"
                if mp_pass:
                    skip(("qat",), "the gate passed after mixed precision")
                    final_known = "pass"
                else:
                    needs_fallback = "mixed precision reached its cap without passing"
        elif decision is None:
            skip(("mixed_precision",), "mixed_precision.enabled is false")
            needs_fallback = "unknown"
        else:
            skip(("mixed_precision",), "the gate says broken: protecting layers cannot close the gap" if decision == "broken"
                 else "mixed_precision.enabled is false")
            needs_fallback = f"the gate says {decision}"
        if needs_fallback and not m.qat.enabled:
            skip(("qat",), "qat.enabled is false")
            if needs_fallback != "unknown":
                final_known = "refused"
        elif needs_fallback:
            qat = decide("qat", "only if mixed precision (or the gate) still misses" if needs_fallback == "unknown" else None)
            if qat is not None:
                cand = qat["candidate"]
                final_known = "pass" if judge("qat", m.evaluation.metric, lower, baseline["quality"], cand["quality"], m.gate, m.envelope,
                                              cand.get("performance")).decision == "pass" else "refused"
        skip(("mixed_precision", "qat"), "not needed")
        if final_known == "refused":
            skip(("lock",), "the gate did not pass: nothing to lock (the lock records the refusal)")

    # A model play that must run needs the baseline's per-example scores: only the journal has them.
    if status["baseline"][0] == "cached" and any(status[p][0] == "run" for p in MODEL_PLAYS if p in status and p != "baseline"):
        if _full("baseline", keys["baseline"]) is None:
            status["baseline"] = ("run", "a later model play needs the baseline's per-example scores, which the lock does not keep (no journal here)", None)

    if "lock" not in status:
        recorded = (lock or {}).get("plays", {}).get("lock", {}) if lock else {}
        if final_known == "pass" and recorded.get("cache_key") == keys["lock"]:
            status["lock"] = ("cached", "the lock already records these results", None)
        else:
            status["lock"] = ("run", "writes the lock from the results (no model)", None if final_known == "pass" else "only if the gate passes")
    recorded_monitor = ((lock or {}).get("plays") or {}).get("monitor") or {}
    if final_known == "refused":
        status["monitor"] = ("skipped", "nothing locked to monitor", None)
    elif recorded_monitor.get("cache_key") == keys["monitor"]:
        status["monitor"] = ("cached", "rollback rules unchanged", None)
    else:
        status["monitor"] = ("run", "rollback: changed; only play 8's output is rewritten" if lock else "records the rollback rules", None if final_known == "pass" else "only if the gate passes")

    plays = tuple(
        PlayPlan(
            number=NUMBERS[p], name=p, status=status[p][0], trigger=_trigger(p, m, lock, facts, changed), why=status[p][1],
            condition=status[p][2], owners={r: m.owners.of(r) for r in ROLES[p]}, cache_key=keys[p],
        )
        for p in PLAYS
    )
    return Plan(name=m.metadata.name, manifest_path=loaded.display_path, manifest_sha256=loaded.sha256, backend=backend,
                facts=facts, keys=keys, plays=plays, manifest=m)

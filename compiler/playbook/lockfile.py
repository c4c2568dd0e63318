"""The lock file next to a manifest (``manifests/<name>.lock.yaml``): canonical, atomic, idempotent, typed.

Contract (other modules code against it):

- ``read_lock(path) -> Lock | None``: the lock validated into ``compiler.playbook.lockmodel.Lock``;
  ``None`` when there is no lock yet; ``InvalidInput`` with every problem located at its line when the
  file is not a lock of this schema (nobody downstream digs defensively through a malformed lock).
- ``write_lock(path, data) -> bool``: validate, then the canonical dump (fixed top-level key order,
  the nested order quantgate builds), written atomically and only when the bytes differ; returns
  whether it wrote. ``results_sha256`` is (re)computed here, so every writer keeps it true.
- ``update_signoff(path, signoff) -> bool``: replace the ``signoff`` section only.

``signoff``, ``environment`` and ``results_sha256`` itself are outside the hash ``verify`` compares:
the sign-off is filled in later by the GitOps engineer, and the environment describes *where* the
numbers were measured (CPU model, library versions), which differs between machines.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from compiler.errors import InvalidInput, Problem
from compiler.files import canonical_json, dump_yaml, sha256_of, write_if_changed
from compiler.manifest.load import parse_yaml
from compiler.manifest.locate import model_problems
from compiler.manifest.source import Source
from compiler.playbook.lockmodel import Lock
from compiler.playbook.plan import candidate_of
from compiler.playbook.signers import plays_that_ran, signers
from compiler.vocabulary import CANDIDATE_PLAYS, PLAYS, Play, SignoffStatus, Status

__all__ = ["canonical_json", "write_if_changed", "read_lock", "parse_lock", "write_lock", "dump_lock", "build_lock",
           "update_signoff", "results_sha256", "pending_signoff"]

SCHEMA_VERSION = 1

#: Top-level keys in the order they are written. Unknown keys go last, sorted (never dropped).
TOP_LEVEL_ORDER = (
    "schema_version", "name", "manifest", "verdict", "next_step", "inputs", "plays", "final",
    "deltas", "evaluations", "results_sha256", "environment", "signoff", "store",
)
#: Sections left out of ``results_sha256`` (see the module docstring).
UNHASHED = frozenset({"results_sha256", "environment", "signoff", "store"})

HEADER = (
    "# Written by quantgate (`quantgate run`). Do not edit by hand: `quantgate verify` compares this\n"
    "# file with its manifest, its gate and its recorded hash. Only `signoff:` is filled in later.\n"
)


def results_sha256(data: dict) -> str:
    """sha256 over the compared part of a lock (everything but ``UNHASHED``)."""
    return sha256_of({k: v for k, v in data.items() if k not in UNHASHED})


def pending_signoff(missing: list[str] | tuple[str, ...] = ()) -> dict:
    """A fresh ``signoff`` section: nobody has signed yet."""
    return {"status": SignoffStatus.PENDING.value, "head_sha": None, "records": [], "missing": [str(r) for r in missing]}


def _ordered(data: dict) -> dict:
    known = [k for k in TOP_LEVEL_ORDER if k in data]
    rest = sorted(k for k in data if k not in TOP_LEVEL_ORDER)
    return {k: data[k] for k in (*known, *rest)}


def dump_lock(data: dict) -> str:
    """The canonical text of a lock. ``results_sha256`` is recomputed from the compared content."""
    data = dict(data)
    data["results_sha256"] = results_sha256(data)
    return dump_yaml(_ordered(data), HEADER)


def parse_lock(text: str, shown: str = "<lock>") -> Lock:
    """The typed lock from its text; ``InvalidInput`` locating every problem (YAML or schema)."""
    source = Source(shown, text)
    tree = parse_yaml(source)
    if not isinstance(tree, dict):
        raise InvalidInput(source.problem("a lock file must be a YAML mapping written by `quantgate run`", 1, 1))
    lock, problems = model_problems(source, tree, Lock)
    if problems:
        raise InvalidInput(problems)
    return lock


def read_lock(path: Path) -> Lock | None:
    path = Path(path)
    if not path.is_file():
        return None
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput(Problem(path=str(path), message="not UTF-8 text")) from exc
    return parse_lock(text, str(path))


def write_lock(path: Path, data: dict) -> bool:
    """Validate against ``Lock`` (``InvalidInput`` naming each bad key), then write canonically,
    atomically, and only when the bytes change."""
    data = {k: v for k, v in data.items()}
    try:
        Lock.model_validate(dict(data, results_sha256=results_sha256(data)))
    except ValidationError as exc:
        raise InvalidInput([
            Problem(path=str(path), key_path=".".join(str(p) for p in err["loc"]), message=err["msg"])
            for err in exc.errors()
        ]) from exc
    return write_if_changed(Path(path), dump_lock(data))


def update_signoff(path: Path, signoff: dict) -> bool:
    """Replace the lock's ``signoff`` section (nothing else changes, so ``verify`` still passes).
    ``InvalidInput`` when there is no lock yet: sign-off records a decision about locked results."""
    path = Path(path)
    lock = read_lock(path)
    if lock is None:
        raise InvalidInput(Problem(path=str(path), message="no lock file to record the sign-off in; run `quantgate run` first"))
    data = lock.data()
    data["signoff"] = signoff
    return write_lock(path, data)


# ------------------------------------------------------------------------------------ lock content

def _ratio(base: Any, cand: Any) -> float | None:
    if base in (None, 0) or cand is None:
        return None
    return round(cand / base, 6)


def build_lock(plan: Any, outcome: Any, previous: Lock | None, sections: dict[str, str]) -> dict:
    """The lock as plain data, in its canonical order, from a plan and a run's ``Outcome``."""
    m = plan.manifest
    results = outcome.results
    base = results.get(Play.BASELINE) or {}
    environment = base.get("environment") or (previous.environment.get("baseline") if previous else None)

    plays: dict[str, dict] = {}
    for play in PLAYS:
        entry: dict[str, Any] = {"number": play.number, "status": str(outcome.statuses.get(play, Status.SKIPPED)), "cache_key": plan.keys[play]}
        why = outcome.whys.get(play)
        if why is None and entry["status"] != "skipped":
            # The trigger that made it run; a reused result keeps the words it was recorded with.
            before = previous.play(play) if previous else None
            kept = before is not None and play not in outcome.ran and before.cache_key == plan.keys[play] and before.status == entry["status"]
            why = before.why if kept and before.why else plan.play(play).trigger
        if why:
            entry["why"] = why
        if play in results:
            result = dict(results[play])
            if play == "baseline":
                result = {k: v for k, v in result.items() if k not in ("examples", "generations", "environment")}
            entry["result"] = result
        if play == "gate" and outcome.judgments:
            entry["result"] = {"judgments": [j.to_dict() for j in outcome.judgments]}
        if play == "monitor" and entry["status"] == "passed":
            entry["result"] = {"rollback": m.rollback.model_dump(mode="json", by_alias=True)}
        plays[play.value] = entry

    final = deltas = None
    if outcome.final:
        cand = candidate_of(outcome.final, results[outcome.final])
        q = m.quantization
        final = {
            "candidate": str(outcome.final),
            "method": cand["method"],
            "weights": q.weights,
            "activations": q.activations,
            "group_size": q.group_size,
            "backend": cand["backend"],
            "backend_version": cand["backend_version"],
            "config": cand["config"],
            "calibration": {"path": q.calibration.dataset.path, "sha256": cand["calibration_sha256"],
                            "samples": cand["calibration_samples"], "seed": q.calibration.seed,
                            **({"fit": fit} if (fit := (results.get(Play.PTQ) or {}).get("calibration_fit")) else {})},
            "protected_layers": list(cand["protected_layers"]),
            "quantized_layers": cand["quantized_layers"],
            "artifact": cand["artifact"],
        }
        judgment = outcome.judgments[-1]
        bq, bp, cp = base["quality"], base["performance"], cand["performance"]
        deltas = {
            "metric": m.evaluation.metric,
            "lower_is_better": judgment.bar.lower_is_better,
            "quality": {
                "overall": {"baseline": bq["value"], "candidate": cand["quality"]["value"], "drop": judgment.drop},
                "hardest": {"baseline": bq["hardest"], "candidate": cand["quality"]["hardest"], "drop": judgment.hardest_drop},
            },
            "performance": {
                name: {"baseline": bp.get(name), "candidate": cp.get(name), "ratio": _ratio(bp.get(name), cp.get(name))}
                for name in ("latency_p50_ms", "latency_p95_ms", "peak_memory_bytes", "footprint_bytes")
            },
        }

    by_play = {}
    for play in (Play.BASELINE, *CANDIDATE_PLAYS):
        if play in results:
            by_play[play.value] = results[play].get("full_evaluations", 0) if play == Play.MIXED_PRECISION else 1
    lock = {
        "schema_version": SCHEMA_VERSION,
        "name": m.metadata.name,
        "manifest": {"path": plan.manifest_path, "sha256": plan.manifest_sha256, "sections": sections},
        "verdict": str(outcome.verdict),
        "next_step": outcome.next_step,
        "inputs": {
            "model": {"source": m.model.source, "revision": m.model.revision, "gguf_file": m.model.gguf_file,
                      "files_sha256": plan.facts.model_files_sha256, "weights_sha256": base.get("weights_sha256")},
            "evaluation_data": {"path": m.evaluation.dataset.path, "sha256": plan.facts.evaluation_sha256},
            "calibration_data": {"path": m.quantization.calibration.dataset.path, "sha256": plan.facts.calibration_sha256},
            "backend": {"requested": m.quantization.backend, "resolved": plan.backend},
        },
        "plays": plays,
        "final": final,
        "deltas": deltas,
        "evaluations": {"full": sum(by_play.values()), "by_play": by_play},
        "environment": {"baseline": environment},
    }
    # One table decides who signs what: the sign-off module's, so the pending list in the lock is
    # exactly what `quantgate signoff` will ask for.
    missing = list(signers(plays_that_ran(lock, previous.data() if previous else None)))
    if previous is not None and previous.results_sha256 == results_sha256(lock):
        lock["signoff"] = previous.data()["signoff"]  # same results: the recorded sign-offs still hold
    else:
        lock["signoff"] = pending_signoff(missing)
    # Where `quantgate push` put the same artifact still holds (a no-op rerun changes no byte).
    same_artifact = previous is not None and previous.final is not None and final is not None \
        and previous.final.artifact.sha256 == final["artifact"]["sha256"] \
        and previous.inputs.model.files_sha256 == plan.facts.model_files_sha256
    if same_artifact and previous.store is not None:
        lock["store"] = previous.data()["store"]
    return lock

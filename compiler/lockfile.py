"""The lock file next to a manifest (``manifests/<name>.lock.yaml``): canonical, atomic, idempotent.

Contract (other modules code against it):

- ``read_lock(path) -> dict | None``: the lock as plain data, ``None`` when there is no lock yet;
  ``InvalidInput`` when the file is not a YAML mapping.
- ``write_lock(path, data) -> bool``: canonical dump (fixed top-level key order, the nested order
  quantgate builds), written atomically (temp file + ``os.replace``) and only when the bytes differ;
  returns whether it wrote. ``results_sha256`` is (re)computed here, so every writer keeps it true.
- ``update_signoff(path, signoff) -> bool``: replace the ``signoff`` section only.

``signoff``, ``environment`` and ``results_sha256`` itself are outside the hash ``verify`` compares:
the sign-off is filled in later by the GitOps engineer, and the environment describes *where* the
numbers were measured (CPU model, library versions), which differs between machines.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from compiler.errors import InvalidInput, Problem

SCHEMA_VERSION = 1

#: Top-level keys in the order they are written. Unknown keys go last, sorted (never dropped).
TOP_LEVEL_ORDER = (
    "schema_version", "name", "manifest", "verdict", "next_step", "inputs", "plays", "final",
    "deltas", "evaluations", "results_sha256", "environment", "signoff",
)
#: Sections left out of ``results_sha256`` (see the module docstring).
UNHASHED = frozenset({"results_sha256", "environment", "signoff"})

HEADER = (
    "# Written by quantgate (`quantgate run`). Do not edit by hand: `quantgate verify` compares this\n"
    "# file with its manifest, its gate and its recorded hash. Only `signoff:` is filled in later.\n"
)

SIGNOFF_STATUSES = ("pending", "complete")


def canonical_json(value: Any) -> str:
    """The one canonical JSON used for every hash: sorted keys, no spaces, UTF-8, no NaN."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def results_sha256(data: dict) -> str:
    """sha256 over the compared part of a lock (everything but ``UNHASHED``)."""
    compared = {k: v for k, v in data.items() if k not in UNHASHED}
    return hashlib.sha256(canonical_json(compared).encode("utf-8")).hexdigest()


def pending_signoff(missing: list[str] | tuple[str, ...] = ()) -> dict:
    """A fresh ``signoff`` section: nobody has signed yet."""
    return {"status": "pending", "head_sha": None, "records": [], "missing": list(missing)}


def _ordered(data: dict) -> dict:
    known = [k for k in TOP_LEVEL_ORDER if k in data]
    rest = sorted(k for k in data if k not in TOP_LEVEL_ORDER)
    return {k: data[k] for k in (*known, *rest)}


def _yaml():
    from ruamel.yaml import YAML

    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    yaml.width = 4096  # never fold long strings: a fold would be a diff without a change
    yaml.representer.sort_base_mapping_type_on_output = False
    yaml.representer.ignore_aliases = lambda _data: True  # shared values are written out, never &anchors
    return yaml


def dump_lock(data: dict) -> str:
    """The canonical text of a lock. ``results_sha256`` is recomputed from the compared content."""
    data = dict(data)
    data["results_sha256"] = results_sha256(data)
    buffer = io.StringIO()
    _yaml().dump(_ordered(data), buffer)
    return HEADER + buffer.getvalue()


def parse_lock(text: str, shown: str = "<lock>") -> dict:
    """Plain data from lock text; ``InvalidInput`` when it is not a YAML mapping."""
    from ruamel.yaml.error import YAMLError

    try:
        data = _yaml().load(text)
    except YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise InvalidInput(Problem(path=shown, message=f"not valid YAML: {getattr(exc, 'problem', exc)}", line=line)) from exc
    if not isinstance(data, dict):
        raise InvalidInput(Problem(path=shown, message="a lock file must be a YAML mapping"))
    return data


def read_lock(path: Path) -> dict | None:
    path = Path(path)
    if not path.is_file():
        return None
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput(Problem(path=str(path), message="not UTF-8 text")) from exc
    return parse_lock(text, str(path))


def write_if_changed(path: Path, content: bytes | str) -> bool:
    """Write ``content`` atomically (temp file in the same folder + ``os.replace``) unless the file
    already holds exactly these bytes. Returns whether it wrote. A reader never sees half a file."""
    path = Path(path)
    data = content.encode("utf-8") if isinstance(content, str) else content
    try:
        if path.read_bytes() == data:
            return False
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return True


def write_lock(path: Path, data: dict) -> bool:
    """Validate against ``compiler.lockmodel.Lock`` (``InvalidInput`` naming each bad key), then
    write canonically, atomically, and only when the bytes change."""
    from pydantic import ValidationError

    from compiler.lockmodel import validate_lock

    try:
        validate_lock(dict(data, results_sha256=results_sha256(data)))
    except ValidationError as exc:
        raise InvalidInput([
            Problem(path=str(path), key_path=".".join(str(p) for p in err["loc"]), message=err["msg"])
            for err in exc.errors()
        ]) from exc
    return write_if_changed(Path(path), dump_lock(data))


def _check_signoff(signoff: dict, shown: str) -> dict:
    problems = []
    if not isinstance(signoff, dict):
        raise InvalidInput(Problem(path=shown, message="signoff must be a mapping", key_path="signoff"))
    if signoff.get("status") not in SIGNOFF_STATUSES:
        problems.append(f"status must be one of {', '.join(SIGNOFF_STATUSES)}")
    records = signoff.get("records", [])
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        problems.append("records must be a list of mappings {role, login, review_id, commit_sha}")
    if not isinstance(signoff.get("missing", []), list):
        problems.append("missing must be a list of roles")
    if problems:
        raise InvalidInput([Problem(path=shown, message=p, key_path="signoff") for p in problems])
    return {
        "status": signoff["status"],
        "head_sha": signoff.get("head_sha"),
        "records": [
            {"role": r.get("role"), "login": r.get("login"), "review_id": r.get("review_id"), "commit_sha": r.get("commit_sha")}
            for r in records
        ],
        "missing": list(signoff.get("missing", [])),
    }


def update_signoff(path: Path, signoff: dict) -> bool:
    """Replace the lock's ``signoff`` section (nothing else changes, so ``verify`` still passes).
    ``InvalidInput`` when there is no lock yet: sign-off records a decision about locked results."""
    path = Path(path)
    lock = read_lock(path)
    if lock is None:
        raise InvalidInput(Problem(path=str(path), message="no lock file to record the sign-off in; run `quantgate run` first"))
    lock["signoff"] = _check_signoff(signoff, str(path))
    return write_lock(path, lock)


# ------------------------------------------------------------------------------------ lock content

ROLE_ORDER = ("ml_engineer", "platform_lead", "product_owner", "engineering_manager", "on_call")


def _ratio(base: Any, cand: Any) -> float | None:
    if base in (None, 0) or cand is None:
        return None
    return round(cand / base, 6)


def _candidate_of(play: str, result: dict) -> dict:
    if play == "mixed_precision":
        return result["best"]
    if play == "qat":
        return result["candidate"]
    return result


def build_lock(plan: Any, outcome: Any, previous: dict | None, sections: dict[str, str]) -> dict:
    """The lock as plain data, in its canonical order, from a plan and a run's ``Outcome``."""
    from compiler.plan import NUMBERS

    m = plan.manifest
    results = outcome.results
    base = results.get("baseline") or {}
    environment = base.get("environment") or ((previous or {}).get("environment") or {}).get("baseline")

    plays: dict[str, dict] = {}
    for play in NUMBERS:
        entry: dict[str, Any] = {"number": NUMBERS[play], "status": outcome.statuses.get(play, "skipped"), "cache_key": plan.keys[play]}
        why = outcome.whys.get(play)
        if why is None and entry["status"] != "skipped":
            # The trigger that made it run; a reused result keeps the words it was recorded with.
            before = ((previous or {}).get("plays") or {}).get(play) or {}
            kept = play not in outcome.ran and before.get("cache_key") == plan.keys[play] and before.get("status") == entry["status"]
            why = before.get("why") if kept and before.get("why") else plan.play(play).trigger
        if why:
            entry["why"] = why
        if play in results:
            result = dict(results[play])
            if play == "baseline":
                result = {k: v for k, v in result.items() if k not in ("examples", "environment")}
            entry["result"] = result
        if play == "gate" and outcome.judgments:
            entry["result"] = {"judgments": [j.to_dict() for j in outcome.judgments]}
        if play == "monitor" and entry["status"] == "passed":
            entry["result"] = {"rollback": m.rollback.model_dump(mode="json", by_alias=True)}
        plays[play] = entry

    final = deltas = None
    if outcome.final:
        cand = _candidate_of(outcome.final, results[outcome.final])
        q = m.quantization
        final = {
            "candidate": outcome.final,
            "method": cand["method"],
            "weights": q.weights,
            "activations": q.activations,
            "group_size": q.group_size,
            "backend": cand["backend"],
            "backend_version": cand["backend_version"],
            "config": cand["config"],
            "calibration": {"path": q.calibration.dataset.path, "sha256": cand["calibration_sha256"],
                            "samples": cand["calibration_samples"], "seed": q.calibration.seed},
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
    for play in ("baseline", "ptq", "mixed_precision", "qat"):
        if play in results:
            by_play[play] = results[play].get("full_evaluations", 0) if play == "mixed_precision" else 1
    lock = {
        "schema_version": SCHEMA_VERSION,
        "name": m.metadata.name,
        "manifest": {"path": plan.manifest_path, "sha256": plan.manifest_sha256, "sections": sections},
        "verdict": outcome.verdict,
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
    from compiler.signoff import plays_that_ran, required_roles

    missing = list(required_roles(plays_that_ran(lock, previous)))
    old = (previous or {}).get("signoff")
    if previous is not None and old and previous.get("results_sha256") == results_sha256(lock):
        lock["signoff"] = old  # same results: the recorded sign-offs still hold
    else:
        lock["signoff"] = pending_signoff(missing)
    return lock

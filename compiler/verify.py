"""``verify``: does a lock still stand for its manifest? Pure reading; loads no model.

Checks, each reported by name:

1. the lock's ``results_sha256`` matches its content (a hand edit anywhere outside ``signoff`` and
   ``environment`` changes it);
2. the manifest's sha256 is the one locked (and which sections changed, when not);
3. the input files (evaluation and calibration data, a local model directory) hash as locked;
4. the verdict is ``locked``, and the gate, recomputed from the recorded baseline and candidate
   numbers with the manifest's gate, says pass; the recorded deltas agree with those numbers;
5. the artifact, when present on this machine, matches its recorded file hashes.

A determined editor can recompute ``results_sha256`` after nudging a number (the function is public
and the hash unkeyed): the hash catches careless and accidental edits. The real guard is CI
re-running the plays on the pull request and the owners' review of the lock's diff.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from compiler.cachekeys import file_sha256, gather_facts
from compiler.discover import lock_path
from compiler.gate import judge
from compiler.lockfile import read_lock, results_sha256
from compiler.manifest import LOWER_IS_BETTER
from compiler.plan import manifest_sections


@dataclass
class Verdict:
    manifest: str
    lock: str
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    unlocked: bool = False  # no lock file at all

    @property
    def ok(self) -> bool:
        return not self.problems


def _dig(data: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    return a == b


def verify_manifest(loaded: Any) -> Verdict:
    path = lock_path(loaded.path)
    shown = loaded.display_path
    verdict = Verdict(manifest=shown, lock=str(Path(shown).with_name(path.name)))
    lock = read_lock(path)
    if lock is None:
        verdict.problems.append(f"no lock file {verdict.lock}: run `quantgate run {shown}`")
        verdict.unlocked = True
        return verdict
    problems = verdict.problems

    recorded = lock.get("results_sha256")
    actual = results_sha256(lock)
    if recorded != actual:
        problems.append(f"the lock was edited after quantgate wrote it: its content hashes to {actual[:12]}, results_sha256 records {str(recorded)[:12]}")

    if _dig(lock, "manifest", "sha256") != loaded.sha256:
        old = _dig(lock, "manifest", "sections") or {}
        now = manifest_sections(loaded)
        sections = sorted(s for s in set(old) | set(now) if old.get(s) != now.get(s))
        what = f" (changed: {', '.join(sections)})" if sections else " (formatting or comments only)"
        problems.append(f"{shown} changed after it was locked{what}: run `quantgate run {shown}` to re-lock")

    m = loaded.manifest
    facts = gather_facts(m, loaded.root, _dig(lock, "inputs", "backend", "resolved"))
    for label, key, now in (
        ("evaluation data", "evaluation_data", facts.evaluation_sha256),
        ("calibration data", "calibration_data", facts.calibration_sha256),
    ):
        was = _dig(lock, "inputs", key, "sha256")
        if was != now:
            problems.append(f"{label} {_dig(lock, 'inputs', key, 'path')} is not what was locked (sha256 {str(now)[:12]} now, {str(was)[:12]} locked)")
    if m.model.is_local and _dig(lock, "inputs", "model", "files_sha256") != facts.model_files_sha256:
        problems.append(f"model files in {m.model.source} are not what was locked")

    if lock.get("verdict") != "locked":
        problems.append(f"the lock records a refusal ({lock.get('verdict')}): {lock.get('next_step') or 'see the report'}")
        return verdict
    _check_gate(lock, m, problems)
    _check_artifact(lock, loaded.root, verdict)
    return verdict


def _check_gate(lock: dict, m: Any, problems: list[str]) -> None:
    final = lock.get("final") or {}
    play = final.get("candidate")
    result = _dig(lock, "plays", play, "result") if play else None
    candidate = (result or {}).get("best") if play == "mixed_precision" else (result or {}).get("candidate") if play == "qat" else result
    baseline = _dig(lock, "plays", "baseline", "result", "quality")
    if not isinstance(candidate, dict) or not isinstance(baseline, dict):
        problems.append("the lock names no locked candidate with recorded quality")
        return
    lower = m.evaluation.metric in LOWER_IS_BETTER
    j = judge(play, m.evaluation.metric, lower, baseline, candidate["quality"], m.gate, m.envelope, candidate.get("performance"))
    if j.decision != "pass":
        problems.append(f"the recorded numbers do not pass the manifest's gate (recomputed: {j.decision}): " + "; ".join(j.reasons))
    deltas = lock.get("deltas") or {}
    for part, base_value, cand_value, drop in (
        ("overall", baseline["value"], candidate["quality"]["value"], j.drop),
        ("hardest", baseline["hardest"], candidate["quality"]["hardest"], j.hardest_drop),
    ):
        rec = _dig(deltas, "quality", part) or {}
        for field_name, expected in (("baseline", base_value), ("candidate", cand_value), ("drop", drop)):
            if not _same(rec.get(field_name), expected):
                problems.append(f"deltas.quality.{part}.{field_name} is {rec.get(field_name)} but the recorded results give {expected}")
    if final.get("artifact") != candidate.get("artifact"):
        problems.append(f"final.artifact differs from the {play} result's artifact")
    if list(final.get("protected_layers") or []) != list(candidate.get("protected_layers") or []):
        problems.append(f"final.protected_layers differs from the {play} result's protected layers")


def _check_artifact(lock: dict, root: Path, verdict: Verdict) -> None:
    artifact = _dig(lock, "final", "artifact") or {}
    rel = artifact.get("path")
    if not rel:
        return
    folder = Path(rel) if Path(rel).is_absolute() else Path(root) / rel
    if not folder.is_dir():
        verdict.notes.append(f"artifact {rel} is not on this machine: its hash was not checked")
        return
    files = artifact.get("files") or {}
    for name, sha in sorted(files.items()):
        file = folder / name
        if not file.is_file():
            verdict.problems.append(f"artifact file {rel}/{name} is missing")
        elif file_sha256(file) != sha:
            verdict.problems.append(f"artifact file {rel}/{name} does not match its locked sha256 {sha[:12]}")
    extra = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() and p.relative_to(folder).as_posix() not in files)
    if extra:
        verdict.problems.append(f"artifact {rel} holds files the lock does not list: {', '.join(extra[:5])}")

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

from compiler.discover import lock_path
from compiler.files import file_sha256
from compiler.manifest.model import LOWER_IS_BETTER
from compiler.playbook.cachekeys import gather_facts
from compiler.playbook.gate import judge
from compiler.playbook.lockfile import read_lock, results_sha256
from compiler.playbook.lockmodel import Lock
from compiler.playbook.plan import candidate_of, manifest_sections
from compiler.playbook.provenance import provenance_problems
from compiler.playbook.publish import check_remote, combine_problems
from compiler.playbook.signers import signoff_problems
from compiler.vocabulary import Role


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


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    return a == b


def verify_manifest(loaded: Any, store: Any = None, required: bool = False, deep: bool = False,
                    provenance_store: Any = None) -> Verdict:
    """Check ``loaded``'s lock. With ``store`` (``compiler.store.Store``) also that its artifacts are
    there as locked (``deep``: streamed and hashed); a missing one is a problem when ``required``,
    else a note."""
    path = lock_path(loaded.path)
    shown = loaded.display_path
    verdict = Verdict(manifest=shown, lock=str(Path(shown).with_name(path.name)))
    lock = read_lock(path)
    if lock is None:
        verdict.problems.append(f"no lock file {verdict.lock}: run `quantgate run {shown}`")
        verdict.unlocked = True
        return verdict
    problems = verdict.problems

    recorded = lock.results_sha256
    actual = results_sha256(lock.data())
    if recorded != actual:
        problems.append(f"the lock was edited after quantgate wrote it: its content hashes to {actual[:12]}, results_sha256 records {str(recorded)[:12]}")

    if lock.manifest.sha256 != loaded.sha256:
        old = lock.manifest.sections
        now = manifest_sections(loaded)
        sections = sorted(s for s in set(old) | set(now) if old.get(s) != now.get(s))
        what = f" (changed: {', '.join(sections)})" if sections else " (formatting or comments only)"
        problems.append(f"{shown} changed after it was locked{what}: run `quantgate run {shown}` to re-lock")

    m = loaded.manifest
    facts = gather_facts(m, loaded.root, lock.inputs.backend.resolved)
    for label, data, now in (
        ("evaluation data", lock.inputs.evaluation_data, facts.evaluation_sha256),
        ("calibration data", lock.inputs.calibration_data, facts.calibration_sha256),
    ):
        if data.sha256 != now:
            problems.append(f"{label} {data.path} is not what was locked (sha256 {str(now)[:12]} now, {str(data.sha256)[:12]} locked)")
    if m.model.is_local and lock.inputs.model.files_sha256 != facts.model_files_sha256:
        problems.append(f"model files in {m.model.source} are not what was locked")

    if not lock.locked:
        problems.append(f"the lock records a refusal ({lock.verdict}): {lock.next_step or 'see the report'}")
        return verdict
    if provenance_store is not None:
        problems += provenance_problems(lock, provenance_store)
    # signoff: is outside results_sha256, so its hash cannot vouch for it; a block no `quantgate
    # signoff` could have written (a hand-written status: complete) is refused here.
    owners = {role: m.owners.of(role) for role in Role.values()}
    problems += signoff_problems(lock.data(), owners=owners, distinct_signers=m.signoff.distinct_signers)
    _check_gate(lock, m, problems)
    problems += combine_problems(lock)
    _check_artifact(lock, loaded.root, verdict)
    if store is not None:
        for problem in check_remote(lock, store, deep=deep):
            absent = any(word in problem for word in ("not in ", "missing in ", "incomplete in ", "never pushed", "run `quantgate push`"))
            (verdict.notes if absent and not required else problems).append(f"store: {problem}")
    return verdict


def _check_gate(lock: Lock, m: Any, problems: list[str]) -> None:
    final = lock.final
    result = lock.play(final.candidate).result if final else None
    candidate = candidate_of(final.candidate, result) if final and result else None
    baseline = (lock.plays.baseline.result or {}).get("quality")
    if final is None or not isinstance(candidate, dict) or not isinstance(baseline, dict):
        problems.append("the lock names no locked candidate with recorded quality")
        return
    play = final.candidate
    lower = m.evaluation.metric in LOWER_IS_BETTER
    j = judge(play, m.evaluation.metric, lower, baseline, candidate["quality"], m.gate, m.envelope, candidate.get("performance"),
              baseline_performance=(lock.plays.baseline.result or {}).get("performance"),
              envelope_result=lock.plays.envelope.result)
    if j.decision != "pass":
        problems.append(f"the recorded numbers do not pass the manifest's gate (recomputed: {j.decision}): " + "; ".join(j.reasons))
    deltas = lock.deltas
    if deltas is None:
        problems.append("a locked lock without deltas")
        return
    for part, base_value, cand_value, drop in (
        ("overall", baseline["value"], candidate["quality"]["value"], j.drop),
        ("hardest", baseline["hardest"], candidate["quality"]["hardest"], j.hardest_drop),
    ):
        rec = deltas.quality[part]
        for field_name, expected in (("baseline", base_value), ("candidate", cand_value), ("drop", drop)):
            if not _same(getattr(rec, field_name), expected):
                problems.append(f"deltas.quality.{part}.{field_name} is {getattr(rec, field_name)} but the recorded results give {expected}")
    if final.artifact.model_dump(mode="json", exclude_unset=True) != candidate.get("artifact"):
        problems.append(f"final.artifact differs from the {play} result's artifact")
    if list(final.protected_layers) != list(candidate.get("protected_layers") or []):
        problems.append(f"final.protected_layers differs from the {play} result's protected layers")


def _check_artifact(lock: Lock, root: Path, verdict: Verdict) -> None:
    if lock.final is None:
        return
    artifact = lock.final.artifact
    rel = artifact.path
    folder = Path(rel) if Path(rel).is_absolute() else Path(root) / rel
    if not folder.is_dir():
        verdict.notes.append(f"artifact {rel} is not on this machine: its hash was not checked")
        return
    files = artifact.files
    for name, sha in sorted(files.items()):
        file = folder / name
        if not file.is_file():
            verdict.problems.append(f"artifact file {rel}/{name} is missing")
        elif file_sha256(file) != sha:
            verdict.problems.append(f"artifact file {rel}/{name} does not match its locked sha256 {sha[:12]}")
    extra = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() and p.relative_to(folder).as_posix() not in files)
    if extra:
        verdict.problems.append(f"artifact {rel} holds files the lock does not list: {', '.join(extra[:5])}")

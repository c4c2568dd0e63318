"""Results come from CI, not from the pull request: each play's result, recorded in the store under
its cache key with where it was produced.

The attack this stops: anyone who can push to a branch can rewrite a lock's numbers and recompute
``results_sha256`` with quantgate's own code. Such a lock is internally consistent, so ``verify``
alone cannot tell. But the store is written only by the trusted publishing job (``quantgate push``
in the ``workflow_run`` workflow, which runs no pull-request code), so with a store configured:

- ``plan``/``run`` treat a play as cached only if the store holds a result for its cache key *and*
  the lock's result equals it; otherwise the play runs again (the forged numbers are re-measured);
- ``verify --provenance`` reports every locked result the store does not hold, or holds
  differently, naming the play and the first field that differs (exit 1).

A record is ``results-<play>/<cache key>/result.json`` in the store (canonical JSON of ``{play,
cache_key, result, provenance}``); a key is written once: the same result again is skipped, a
different one is refused (a play that is not deterministic, or a tampered store). Without a store
(``artifacts.store`` unset) results are unverified and the plan says so.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from compiler.files import canonical_json, file_sha256
from compiler.playbook.lockmodel import Lock
from compiler.store import Store, push
from compiler.store.base import StoreError
from compiler.vocabulary import PLAYS, Play, Status

RECORD = "result.json"
#: Plays whose lock entry carries a result a runner (or the gate) produced.
RECORDED = (Play.BASELINE, Play.ENVELOPE, Play.PTQ, Play.MIXED_PRECISION, Play.QAT)
#: The GitHub Actions variables that say where a result was produced.
PROVENANCE_ENV = {
    "repository": "GITHUB_REPOSITORY", "workflow": "GITHUB_WORKFLOW_REF", "run_id": "GITHUB_RUN_ID",
    "run_attempt": "GITHUB_RUN_ATTEMPT", "commit_sha": "GITHUB_SHA", "runner_name": "RUNNER_NAME",
    "runner_os": "RUNNER_OS", "runner_arch": "RUNNER_ARCH",
}


def slug(play: str) -> str:
    return f"results-{str(play).replace('_', '-')}"


def provenance(lock: Lock, overrides: dict[str, str] | None = None) -> dict[str, Any]:
    """Where the results were produced: the CI run (from the environment, or ``overrides`` when the
    publishing job speaks for the pull-request run it checked) and the tool versions measured."""
    from compiler import __version__

    found = {key: os.environ.get(var) for key, var in PROVENANCE_ENV.items()}
    found.update({k: v for k, v in (overrides or {}).items() if v})
    versions = ((lock.environment or {}).get("baseline") or {}).get("versions") if isinstance(lock.environment, dict) else None
    return {**found, "quantgate": __version__, "versions": versions}


def _record(play: str, key: str, result: dict, where: dict) -> bytes:
    return (canonical_json({"play": str(play), "cache_key": key, "result": result, "provenance": where}) + "\n").encode()


def stored(store: Store, play: str, key: str) -> dict | None:
    """The record the store holds for ``play`` at ``key`` (``{result, provenance, ...}``), or None.
    The bytes are parsed only; equality is judged by the caller on the ``result`` part."""
    remote = store.inspect(slug(play), key, {RECORD: "0" * 64})
    obj = remote.objects.get(RECORD)
    if not remote.complete or obj is None:
        return None
    with store.open_object(slug(play), key, RECORD, obj) as stream:
        data = stream.read()
    try:
        record = json.loads(data)
    except ValueError:
        return {"result": None, "provenance": None, "unreadable": True}
    return record if isinstance(record, dict) else {"result": None, "unreadable": True}


def first_difference(expected: Any, actual: Any, at: str = "") -> str | None:
    """The first field path where ``actual`` differs from ``expected`` (None: equal)."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        for key in sorted(set(expected) | set(actual)):
            if key not in actual or key not in expected:
                return f"{at}.{key}".lstrip(".")
            found = first_difference(expected[key], actual[key], f"{at}.{key}")
            if found:
                return found
        return None
    if isinstance(expected, list) and isinstance(actual, list):
        if len(expected) != len(actual):
            return f"{at}[{min(len(expected), len(actual))}]".lstrip(".")
        for i, (a, b) in enumerate(zip(expected, actual, strict=True)):
            found = first_difference(a, b, f"{at}[{i}]")
            if found:
                return found
        return None
    return None if canonical_json(expected) == canonical_json(actual) else (at.lstrip(".") or "result")


def results_of(lock: Lock) -> list[tuple[Play, str, dict]]:
    """(play, cache key, result) for every play of the lock that recorded a result."""
    out = []
    for play in RECORDED:
        entry = lock.play(play)
        if entry.result is not None and entry.status != Status.SKIPPED:
            out.append((play, entry.cache_key, entry.result))
    return out


def record_results(store: Store, lock: Lock, where: dict) -> tuple[list[str], list[str]]:
    """Write each locked result to the store (the trusted publishing job only). Returns (written,
    already there). A different result already recorded for a key is a ``StoreConflict``."""
    from compiler.store import StoreConflict

    written, there = [], []
    for play, key, result in results_of(lock):
        held = stored(store, play, key)
        if held is not None:
            diff = first_difference(held.get("result"), result)
            if diff:
                raise StoreConflict(f"{slug(play)}/{key}: the store already records a different {play} result for this cache key "
                                    f"(first difference: {diff}); a play that is not deterministic, or a tampered store")
            there.append(str(play))
            continue
        with tempfile.TemporaryDirectory(prefix=".quantgate-result-") as tmp:
            path = Path(tmp) / RECORD
            path.write_bytes(_record(play, key, result, where))
            push(store, Path(tmp), slug(play), key, {RECORD: file_sha256(path)}, keyed=True)
        written.append(str(play))
    return written, there


def provenance_problems(lock: Lock, store: Store) -> list[str]:
    """Every locked result the store does not hold, or holds differently (play and field named)."""
    problems = []
    for play, key, result in results_of(lock):
        try:
            held = stored(store, play, key)
        except StoreError as exc:
            problems.append(f"{play}: the store could not be read ({exc})")
            continue
        if held is None:
            problems.append(f"{play}: not produced by CI: the store holds no result for its cache key {key[:12]}")
            continue
        diff = first_difference(held.get("result"), result)
        if diff:
            problems.append(f"{play}: not produced by CI: plays.{play}.result.{diff} differs from the result CI recorded "
                            f"(run {((held.get('provenance') or {}).get('run_id')) or '?'})")
    return problems


def trusted_results(lock: Lock | None, store: Store) -> dict[str, bool]:
    """play -> whether the lock's result for it is the one CI recorded (plan uses it to decide
    what counts as cached)."""
    verdict = {str(p): False for p in PLAYS}
    if lock is None:
        return verdict
    for play, key, result in results_of(lock):
        held = stored(store, play, key)
        verdict[str(play)] = held is not None and first_difference(held.get("result"), result) is None
    return verdict

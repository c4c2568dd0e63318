"""Play 8, part 2: the serving flag, ``manifests/<name>.serving.yaml``.

Both artifacts stay deployed; this small file says which one serves, so a rollback is a one-line
config change in git, not a redeploy. Shape (``schema_version: 1``)::

    name: minilm-stsb
    active: quantized                 # or full-precision
    artifacts:
      quantized: {path, sha256, format, files}     # null when nothing was locked
      full-precision: {source, revision, gguf_file, task, weights_sha256}
    lock: manifests/minilm-stsb.lock.yaml
    lock_results_sha256: ...          # which locked decision is being served
    rollback: null                    # or {rule, observed, threshold, for, operator}: why full precision serves

The keys under ``artifacts`` are exactly the values ``active`` takes, so a serving stack reads
``artifacts[active]`` (``runners/serving_loader.py`` is the reference reader).

Contract: ``write_serving(manifest_path, lock) -> bool`` (called after a lock is written) and
``roll_back(path, breaches) -> bool`` (called by ``quantgate monitor``) write atomically and only
when the content changes, and return whether they wrote.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from compiler.errors import InvalidInput, Problem
from compiler.files import dump_yaml, load_yaml, write_if_changed

SCHEMA_VERSION = 1
QUANTIZED = "quantized"
FULL_PRECISION = "full-precision"
ACTIVE_VALUES = (QUANTIZED, FULL_PRECISION)

HEADER = (
    "# Written by quantgate (play 8). The serving stack loads artifacts[active]. `quantgate monitor`\n"
    "# sets active: full-precision on a rollback; set it back to quantized in a reviewed commit.\n"
)


def dump_serving(data: dict) -> str:
    return dump_yaml(data, HEADER)


def read_serving(path: Path) -> dict | None:
    """The serving file as plain data, ``None`` when absent; ``InvalidInput`` when it is not a
    serving file quantgate can act on (unknown ``active``, missing ``artifacts``)."""
    from ruamel.yaml.error import YAMLError

    path = Path(path)
    if not path.is_file():
        return None
    try:
        data = load_yaml(path.read_text(encoding="utf-8"))
    except (YAMLError, UnicodeDecodeError) as exc:
        raise InvalidInput(Problem(path=str(path), message=f"not a readable YAML serving file: {exc}")) from exc
    if not isinstance(data, dict):
        raise InvalidInput(Problem(path=str(path), message="a serving file must be a YAML mapping"))
    problems = []
    if data.get("active") not in ACTIVE_VALUES:
        problems.append(Problem(path=str(path), key_path="active", message=f"must be one of {', '.join(ACTIVE_VALUES)}, not {data.get('active')!r}"))
    artifacts = data.get("artifacts")
    if not isinstance(artifacts, dict) or FULL_PRECISION not in artifacts:
        problems.append(Problem(path=str(path), key_path="artifacts", message=f"must map {QUANTIZED} and {FULL_PRECISION} to their artifacts"))
    elif data.get("active") == QUANTIZED and not artifacts.get(QUANTIZED):
        problems.append(Problem(path=str(path), key_path="active", message="is quantized but there is no quantized artifact"))
    if problems:
        raise InvalidInput(problems)
    return data


# ------------------------------------------------------------------- reading the lock, defensively


def _dig(data: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def quantized_artifact(lock: dict) -> dict | None:
    """The locked artifact ``{path, sha256, format, files}``, or ``None`` when the lock holds none
    (the gate said no). Reads ``final.artifact`` (also ``artifact`` at the top level)."""
    for found in (_dig(lock, "final", "artifact"), _dig(lock, "artifact")):
        if isinstance(found, dict) and found.get("path") and found.get("sha256"):
            return {k: found.get(k) for k in ("path", "sha256", "format", "files") if found.get(k) is not None}
    return None


def baseline_weights_sha256(lock: dict) -> str | None:
    """The full-precision weights hash the baseline measured (``inputs.model.weights_sha256``,
    ``inputs.weights_sha256``, ``baseline.weights_sha256`` or ``plays.baseline.result.weights_sha256``)."""
    for found in (
        _dig(lock, "inputs", "model", "weights_sha256"),
        _dig(lock, "inputs", "model_weights_sha256"),
        _dig(lock, "inputs", "weights_sha256"),
        _dig(lock, "baseline", "weights_sha256"),
        _dig(lock, "plays", "baseline", "result", "weights_sha256"),
        _dig(lock, "plays", "baseline", "weights_sha256"),
    ):
        if isinstance(found, str) and found:
            return found
    return None


def build_serving(manifest, lock: dict, lock_rel: str, previous: dict | None) -> dict:
    """The serving document for a manifest and its lock.

    ``active`` and ``rollback`` carry over from ``previous`` while the quantized artifact is the same
    one (a rollback stays until a person reverts it); a newly locked artifact starts ``quantized``;
    a lock without an artifact serves full precision.
    """
    artifact = quantized_artifact(lock)
    model = manifest.model
    full = {
        "source": model.source,
        "revision": model.revision,
        "gguf_file": model.gguf_file,
        "task": model.task,
        "weights_sha256": baseline_weights_sha256(lock),
    }
    active, rollback = (QUANTIZED if artifact else FULL_PRECISION), None
    if artifact and previous and _dig(previous, "artifacts", QUANTIZED, "sha256") == artifact["sha256"]:
        active, rollback = previous.get("active", active), previous.get("rollback")
    return {
        "schema_version": SCHEMA_VERSION,
        "name": manifest.metadata.name,
        "active": active,
        "artifacts": {QUANTIZED: artifact, FULL_PRECISION: full},
        "lock": lock_rel,
        "lock_results_sha256": lock.get("results_sha256") or _results_sha256(lock),
        "rollback": rollback,
    }


def _results_sha256(lock: dict) -> str:
    from compiler.playbook.lockfile import results_sha256

    return results_sha256(lock)


def _rel(path: Path, root: Path) -> str:
    try:
        return Path(path).resolve().relative_to(Path(root).resolve()).as_posix()
    except ValueError:
        return Path(path).as_posix()


def write_serving(manifest_path: Path, lock: dict) -> bool:
    """Write ``manifests/<name>.serving.yaml`` for the manifest and its lock; returns whether it
    wrote (atomic, only on change)."""
    from compiler.discover import lock_path, serving_path
    from compiler.manifest.load import load_manifest

    manifest_path = Path(manifest_path)
    loaded = load_manifest(manifest_path)
    target = serving_path(manifest_path)
    try:
        previous = read_serving(target)
    except InvalidInput:
        previous = None  # a broken serving file is rebuilt from the lock
    data = build_serving(loaded.manifest, lock, _rel(lock_path(manifest_path), loaded.root), previous)
    return write_if_changed(target, dump_serving(data))


def rolled_back(data: dict, breaches: list[dict]) -> dict:
    """``data`` with ``active: full-precision`` and the reason (the first breach; the others under
    ``also``). Pure: the caller writes and commits it."""
    record = breaches[0] if len(breaches) == 1 else {**breaches[0], "also": breaches[1:]}
    return {**data, "active": FULL_PRECISION, "rollback": record}


def roll_back(path: Path, breaches: list[dict]) -> bool:
    """Set ``active: full-precision`` in the file and record why; returns whether the file changed.
    Already full precision: nothing is written (idempotent)."""
    data = read_serving(path)
    if data is None:
        raise InvalidInput(Problem(path=str(path), message="no serving file to roll back"))
    if data["active"] == FULL_PRECISION:
        return False
    return write_if_changed(Path(path), dump_serving(rolled_back(data, breaches)))

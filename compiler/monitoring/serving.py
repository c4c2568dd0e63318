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

from compiler.errors import InvalidInput, Problem
from compiler.files import dump_yaml, load_yaml, write_if_changed
from compiler.playbook.lockfile import results_sha256
from compiler.playbook.lockmodel import Lock

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


# ---------------------------------------------------------------------------- reading the lock


def typed_lock(lock: Lock | dict) -> Lock:
    """The lock as its model (lock data about to be written is validated once, here, at the boundary)."""
    return lock if isinstance(lock, Lock) else Lock.model_validate({**lock, "results_sha256": results_sha256(lock)})


def quantized_artifact(lock: Lock | dict) -> dict | None:
    """The locked artifact ``{path, sha256, format, files}``, or ``None`` when the lock holds none
    (the gate said no)."""
    final = typed_lock(lock).final
    if final is None:
        return None
    artifact = final.artifact
    return {"path": artifact.path, "sha256": artifact.sha256, "format": artifact.format, "files": dict(artifact.files)}


def build_serving(manifest, lock: Lock | dict, lock_rel: str, previous: dict | None) -> dict:
    """The serving document for a manifest and its lock.

    ``active`` and ``rollback`` carry over from ``previous`` while the quantized artifact is the same
    one (a rollback stays until a person reverts it); a newly locked artifact starts ``quantized``;
    a lock without an artifact serves full precision.
    """
    lock = typed_lock(lock)
    artifact = quantized_artifact(lock)
    model = manifest.model
    full = {
        "source": model.source,
        "revision": model.revision,
        "gguf_file": model.gguf_file,
        "task": model.task,
        "weights_sha256": lock.inputs.model.weights_sha256,
    }
    active, rollback = (QUANTIZED if artifact else FULL_PRECISION), None
    before = ((previous or {}).get("artifacts") or {}).get(QUANTIZED) if isinstance(previous, dict) else None
    if artifact and isinstance(before, dict) and before.get("sha256") == artifact["sha256"]:
        active, rollback = previous.get("active", active), previous.get("rollback")
    return {
        "schema_version": SCHEMA_VERSION,
        "name": manifest.metadata.name,
        "active": active,
        "artifacts": {QUANTIZED: artifact, FULL_PRECISION: full},
        "lock": lock_rel,
        "lock_results_sha256": lock.results_sha256,
        "rollback": rollback,
    }


def _rel(path: Path, root: Path) -> str:
    try:
        return Path(path).resolve().relative_to(Path(root).resolve()).as_posix()
    except ValueError:
        return Path(path).as_posix()


def write_serving(manifest_path: Path, lock: Lock | dict) -> bool:
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

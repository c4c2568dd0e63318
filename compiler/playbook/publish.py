"""Play 7's artifact beyond this machine: push a lock's artifacts to the store, pull them for
deployment, and check them there.

What is pushed for a locked manifest:

- the quantized artifact (``final.artifact``): its files re-hashed against the lock first;
- the full-precision fallback play 8 rolls back to: a repository-local model directory is pushed
  like any artifact (its file list is bound to the lock by ``inputs.model.files_sha256``, the
  canonical hash of exactly that list); a hub model is addressed by its pinned revision instead.

``quantgate push`` then records where they are in the lock's ``store:`` section (kind and content
address, never the URL: moving a bucket changes ``quantgate.yaml``, not the lock). That section is
outside ``results_sha256``, so pushing never changes the numbers a reviewer approved; everything in
it is re-derived and checked against the store and the hashed part of the lock by ``check_remote``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from compiler.errors import InvalidInput, Problem, Refused
from compiler.files import artifact_sha256, artifact_slug, listing, sha256_of
from compiler.playbook.lockfile import read_lock, write_lock
from compiler.playbook.lockmodel import HubModel, Lock, StoredArtifact
from compiler.playbook.provenance import provenance, record_results
from compiler.store import ArtifactMissing, Store, StoredAt, check, pull, push
from compiler.store.base import StoreError

#: Folder names under ``pull --dest``.
QUANTIZED_DIR = "quantized"
FULL_PRECISION_DIR = "full-precision"


def _slug_of(lock: Lock) -> str:
    return Path(lock.final.artifact.path).parent.name if lock.final else artifact_slug(lock.inputs.model.source)


def combine_problems(lock: Lock) -> list[str]:
    """Offline: the locked per-file hashes must combine into the locked artifact address."""
    if lock.final is None:
        return []
    artifact = lock.final.artifact
    combined = artifact_sha256(artifact.files)
    problems = []
    if combined != artifact.sha256:
        problems.append(f"final.artifact.files combine into sha256 {combined}, but final.artifact.sha256 is {artifact.sha256}")
    if Path(artifact.path).name != artifact.sha256:
        problems.append(f"final.artifact.path {artifact.path} does not end in its sha256 {artifact.sha256}")
    if artifact.sizes is not None and set(artifact.sizes) != set(artifact.files):
        problems.append("final.artifact.sizes does not name the same files as final.artifact.files")
    return problems


@dataclass
class Published:
    manifest: str
    uploaded: list[str] = field(default_factory=list)  # "<slug>/<sha>/<name>"
    skipped: list[str] = field(default_factory=list)
    record: dict | None = None
    notes: list[str] = field(default_factory=list)
    results: list[str] = field(default_factory=list)  # plays whose results were recorded in the store now


def push_lock(loaded, lock_file: Path, store: Store, where: dict[str, str] | None = None) -> Published:
    """Upload the locked artifact and the full-precision fallback, record where in the lock, and
    record every play result under its cache key with its provenance (``where`` overrides what the
    environment says, for a publishing job speaking for the pull-request run it checked)."""
    lock = read_lock(lock_file)
    shown = loaded.display_path
    out = Published(manifest=shown)
    if lock is None:
        raise InvalidInput(Problem(path=shown, message="no lock yet: run `quantgate run` first, then push"))
    written, there = record_results(store, lock, provenance(lock, where))
    out.results = written
    if lock.final is None:
        out.notes.append(f"{shown}: the lock records a refusal; its results are recorded, no artifact to publish")
        return out
    problems = combine_problems(lock)
    if problems:
        raise Refused(f"{lock_file}: " + "; ".join(problems))
    root = loaded.root
    artifact = lock.final.artifact
    slug = _slug_of(lock)
    pushed = push(store, root / artifact.path, slug, artifact.sha256, dict(artifact.files))
    _tally(out, slug, artifact.sha256, pushed)
    quantized = StoredArtifact(slug=slug, sha256=artifact.sha256, address=pushed.stored_at.address)

    model = loaded.manifest.model
    fallback: StoredArtifact | HubModel | None = None
    folder = (root / model.source).resolve() if model.is_local else None
    if folder is not None and not folder.is_dir():
        # A git-ignored model the publishing job did not materialise: the quantized artifact is
        # published, the fallback is not, and verify --remote (required: true) says so.
        out.notes.append(f"{shown}: {model.source} is not on this machine: the full-precision fallback was not pushed "
                         "(materialise it in the publishing job to publish it)")
    elif folder is not None:
        files = listing(folder)
        if sha256_of(files) != lock.inputs.model.files_sha256:
            raise Refused(f"{model.source} is not the model that was locked (its files hash to {sha256_of(files)[:12]}, "
                          f"the lock records {str(lock.inputs.model.files_sha256)[:12]}); re-run `quantgate run`")
        base_slug, base_sha = artifact_slug(model.source), artifact_sha256(files)
        sized = {name: (folder / name).stat().st_size for name in files}
        pushed_base = push(store, folder, base_slug, base_sha, files)
        _tally(out, base_slug, base_sha, pushed_base)
        fallback = StoredArtifact(slug=base_slug, sha256=base_sha, address=pushed_base.stored_at.address, files=files, sizes=sized)
    else:
        fallback = HubModel(source=model.source, revision=model.revision)
    record = {"kind": pushed.stored_at.kind, "quantized": quantized.model_dump(mode="json"),
              "full_precision": fallback.model_dump(mode="json", exclude_none=True) if fallback is not None else None}
    data = lock.data()
    data["store"] = record
    write_lock(lock_file, data)
    out.record = record
    return out


def _tally(out: Published, slug: str, sha: str, pushed) -> None:
    out.uploaded += [f"{slug}/{sha[:12]}/{name}" for name in pushed.uploaded]
    out.skipped += [f"{slug}/{sha[:12]}/{name}" for name in pushed.skipped]


def _fallback_files(lock: Lock) -> StoredArtifact | HubModel | None:
    """The stored fallback, after checking its file list against the hashed lock."""
    record = lock.store.full_precision if lock.store else None
    if isinstance(record, StoredArtifact):
        if record.files is None or sha256_of(record.files) != lock.inputs.model.files_sha256:
            raise Refused("store.full_precision.files is not the locked model (its canonical hash differs from inputs.model.files_sha256)")
        if artifact_sha256(record.files) != record.sha256:
            raise Refused("store.full_precision.files do not combine into store.full_precision.sha256")
    return record


def pull_lock(lock: Lock, store: Store, dest: Path) -> dict[str, Path | str]:
    """Fetch the active and the fallback artifact into ``dest/quantized`` and ``dest/full-precision``,
    each verified file by file against the lock before it is renamed into place."""
    if lock.final is None:
        raise Refused("the lock records a refusal: there is no quantized artifact to deploy")
    problems = combine_problems(lock)
    if problems:
        raise Refused("; ".join(problems))
    artifact = lock.final.artifact
    at = _at(lock.store.kind, lock.store.quantized.address) if lock.store and lock.store.quantized else None
    got: dict[str, Path | str] = {}
    fallback = _fallback_files(lock)  # checked before anything is downloaded
    got[QUANTIZED_DIR] = pull(store, _slug_of(lock), artifact.sha256, dict(artifact.files), Path(dest) / QUANTIZED_DIR, at)
    if isinstance(fallback, StoredArtifact):
        got[FULL_PRECISION_DIR] = pull(store, fallback.slug, fallback.sha256, dict(fallback.files or {}), Path(dest) / FULL_PRECISION_DIR,
                                       _at(lock.store.kind, fallback.address))
    elif isinstance(fallback, HubModel):
        got[FULL_PRECISION_DIR] = f"{fallback.source}@{fallback.revision}"
    elif lock.inputs.model.revision:
        got[FULL_PRECISION_DIR] = f"{lock.inputs.model.source}@{lock.inputs.model.revision}"
    else:
        raise ArtifactMissing("the full-precision fallback was never pushed (no store: section in the lock): run `quantgate push`")
    return got


def _at(kind: str, address: str) -> StoredAt | None:
    return StoredAt(kind, address) if kind == "oci" else None


def check_remote(lock: Lock, store: Store, deep: bool = False) -> list[str]:
    """Problems with the locked artifacts in ``store``, without downloading unless ``deep``."""
    if lock.final is None:
        return []
    artifact = lock.final.artifact
    problems: list[str] = []
    kind = lock.store.kind if lock.store else None
    at = _at(kind, lock.store.quantized.address) if lock.store and lock.store.quantized else None
    try:
        problems += check(store, _slug_of(lock), artifact.sha256, dict(artifact.files), artifact.sizes, deep=deep, at=at)
        fallback = _fallback_files(lock)
        if isinstance(fallback, StoredArtifact):
            problems += check(store, fallback.slug, fallback.sha256, dict(fallback.files or {}), fallback.sizes, deep=deep,
                              at=_at(kind, fallback.address))
        elif fallback is None and lock.inputs.model.revision is None:
            problems.append("the full-precision fallback is not in the store (no store: section): run `quantgate push`")
    except Refused as exc:
        problems.append(str(exc))
    except StoreError as exc:
        if not isinstance(exc, ArtifactMissing):
            raise
        problems.append(str(exc))
    return problems

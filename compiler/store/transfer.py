"""push, pull and check: the rules every store follows, on top of a backend's object operations.

- push: the address must be ``artifact_sha256(files)``; every local file is re-hashed against
  ``files`` before anything is uploaded; the store is inspected and every conflict (an object of the
  same name with another size or sha256) is reported before anything is uploaded; data files go up
  first, the completion marker (``artifact.json``, else the store's index / the OCI manifest) last;
  an object already there with the same sha256 and size is skipped, never rewritten.
- pull: each file is streamed into ``.<dest name>.pull-<pid>-<random>`` next to ``dest`` and hashed
  while streaming (quantgate's sha256, not the client library's checks); the folder is renamed to
  ``dest`` only when every file and the artifact address match. A mismatch removes the folder; a
  killed pull leaves only the dot folder, which the next pull of that ``dest`` removes.
- check: the problems of a stored artifact without downloading it (present, complete, exact file
  set, sizes, the store's own digests); ``deep`` streams and hashes every file.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
from pathlib import Path

from compiler.files import artifact_sha256, file_sha256
from compiler.store.base import (
    ArtifactMissing,
    Pushed,
    Remote,
    Store,
    StoreConflict,
    StoredAt,
    StoreMismatch,
    StoreURLInvalid,
    check_names,
    check_sha,
    check_slug,
)

CHUNK = 1 << 20  # bytes per read while streaming (into one reused buffer where the stream allows)


def _blocks(stream):
    """The stream's bytes as memoryviews of one reused buffer (``readinto``), else ``read`` blocks.
    A fresh 4 MiB ``bytes`` per read costs page faults that made pulls 4x slower than a copy."""
    if hasattr(stream, "readinto"):
        buffer = bytearray(CHUNK)
        view = memoryview(buffer)
        while True:
            n = stream.readinto(view)
            if not n:
                return
            yield view[:n]
    else:
        yield from iter(lambda: stream.read(CHUNK), b"")


def _check_address(slug: str, sha256: str, files: dict[str, str], keyed: bool = False) -> None:
    """``keyed``: ``sha256`` is a lookup key (a play's cache key for its result record), not the
    files' content address; every file is still hashed against ``files``."""
    check_slug(slug)
    check_sha(sha256)
    check_names(files)
    if keyed:
        return
    actual = artifact_sha256(files)
    if actual != sha256:
        raise StoreMismatch(f"{slug}/{sha256}: the files listed hash to artifact {actual}, not {sha256}")


def _upload_order(store: Store, files: dict[str, str]) -> list[str]:
    marker = store.marker(files)
    return sorted(n for n in files if n != marker) + ([marker] if marker else [])


def _stream_sha256(store: Store, slug: str, sha256: str, name: str, remote: Remote) -> str:
    digest = hashlib.sha256()
    with store.open_object(slug, sha256, name, remote.objects[name]) as stream:
        for block in _blocks(stream):
            digest.update(block)
    return digest.hexdigest()


def push(store: Store, directory: Path, slug: str, sha256: str, files: dict[str, str], keyed: bool = False) -> Pushed:
    """Upload the artifact in ``directory`` (its files named in ``files``) as ``<slug>/<sha256>``
    (``keyed``: see ``_check_address``)."""
    _check_address(slug, sha256, files, keyed)
    directory = Path(directory)
    sizes: dict[str, int] = {}
    for name in sorted(files):
        path = directory / name
        if not path.is_file():
            raise StoreMismatch(f"{path}: missing; the artifact lists it with sha256 {files[name]}")
        actual = file_sha256(path)
        if actual != files[name]:
            raise StoreMismatch(f"{path}: sha256 is {actual}, the artifact lists {files[name]}; nothing was uploaded")
        sizes[name] = path.stat().st_size

    remote = store.inspect(slug, sha256, files, for_push=True)
    conflicts = list(remote.problems)
    for extra in sorted(set(remote.objects) - set(files)):
        conflicts.append(f"{extra}: in the store but not part of the artifact")
    todo, skipped = [], []
    for name in _upload_order(store, files):
        obj = remote.objects.get(name)
        if obj is None:
            todo.append(name)
            continue
        if obj.size != sizes[name]:
            conflicts.append(f"{name}: the store holds {obj.size} bytes, the artifact has {sizes[name]}")
            continue
        held = obj.sha256 if obj.sha256 is not None else _stream_sha256(store, slug, sha256, name, remote)
        if held != files[name]:
            conflicts.append(f"{name}: the store holds sha256 {held}, the artifact has {files[name]}")
        else:
            skipped.append(name)
    if conflicts:
        raise StoreConflict(f"{store}: {slug}/{sha256} already holds other content, nothing was uploaded or overwritten: "
                            + "; ".join(conflicts))
    uploaded = 0
    for name in todo:
        store.upload(slug, sha256, name, directory / name, files[name], sizes[name])
        uploaded += sizes[name]
    stored_at = store.commit(slug, sha256, files, sizes, remote)
    return Pushed(stored_at=stored_at, uploaded=tuple(todo), skipped=tuple(skipped), bytes_uploaded=uploaded)


def _temp_prefix(dest: Path) -> str:
    return f".{dest.name}.pull-"


def _clean_stale(dest: Path) -> None:
    """Remove temp folders that killed pulls of ``dest`` left (their process is gone)."""
    if not dest.parent.is_dir():
        return
    for leftover in dest.parent.glob(_temp_prefix(dest) + "*"):
        pid_text = leftover.name[len(_temp_prefix(dest)):].split("-", 1)[0]
        try:
            pid = int(pid_text)
            if pid != os.getpid():
                os.kill(pid, 0)
                continue  # another live pull of the same destination
        except (ValueError, ProcessLookupError):
            pass
        except PermissionError:
            continue
        shutil.rmtree(leftover, ignore_errors=True)


def _same_tree(dest: Path, files: dict[str, str]) -> bool:
    present = {p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file()}
    return present == set(files) and all(file_sha256(dest / n) == h for n, h in files.items())


def pull(store: Store, slug: str, sha256: str, files: dict[str, str], dest: Path, at: StoredAt | None = None,
         keyed: bool = False) -> Path:
    """Download ``<slug>/<sha256>`` into the folder ``dest`` (created; its parent too), verified.
    ``at``: pin the OCI manifest the lock recorded (optional; fsspec stores ignore it)."""
    _check_address(slug, sha256, files, keyed)
    dest = Path(dest).absolute()
    remote = store.inspect(slug, sha256, files, at)
    if not remote.complete and not remote.objects:
        raise ArtifactMissing(f"{store}: {slug}/{sha256} is not in the store")
    if not remote.complete:
        raise ArtifactMissing(f"{store}: {slug}/{sha256} is incomplete in the store (an interrupted push?)")
    missing = sorted(set(files) - set(remote.objects))
    if missing:
        raise ArtifactMissing(f"{store}: {slug}/{sha256} is missing {', '.join(missing)}")
    for name in sorted(files):
        obj = remote.objects[name]
        if obj.sha256 is not None and obj.sha256 != files[name]:
            raise StoreMismatch(f"{store}: {slug}/{sha256}/{name}: the store records sha256 {obj.sha256}, expected {files[name]}")
    if dest.exists():
        if dest.is_dir() and _same_tree(dest, files):
            return dest
        raise StoreConflict(f"{dest}: already exists with other content; not overwritten")
    dest.parent.mkdir(parents=True, exist_ok=True)
    _clean_stale(dest)
    tmp = dest.parent / f"{_temp_prefix(dest)}{os.getpid()}-{secrets.token_hex(4)}"
    tmp.mkdir()
    try:
        actual: dict[str, str] = {}
        for name in sorted(files):
            target = tmp / name
            target.parent.mkdir(parents=True, exist_ok=True)
            digest = hashlib.sha256()
            with store.open_object(slug, sha256, name, remote.objects[name]) as stream, open(target, "wb") as out:
                for block in _blocks(stream):
                    digest.update(block)
                    out.write(block)
            actual[name] = digest.hexdigest()
            if actual[name] != files[name]:
                raise StoreMismatch(f"{store}: {slug}/{sha256}/{name}: downloaded bytes hash to sha256 {actual[name]}, "
                                    f"expected {files[name]}; nothing was written to {dest}")
        if not keyed and artifact_sha256(actual) != sha256:  # implied by the per-file checks; kept as the contract
            raise StoreMismatch(f"{store}: {slug}/{sha256}: downloaded files hash to artifact {artifact_sha256(actual)}")
        try:
            os.replace(tmp, dest)
        except OSError:
            if dest.is_dir() and _same_tree(dest, files):  # a concurrent pull got there first
                shutil.rmtree(tmp, ignore_errors=True)
                return dest
            raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


def check(store: Store, slug: str, sha256: str, files: dict[str, str], sizes: dict[str, int] | None = None,
          deep: bool = False, at: StoredAt | None = None) -> list[str]:
    """Problems with the stored ``<slug>/<sha256>`` (empty: it is there, complete and as recorded)."""
    try:
        _check_address(slug, sha256, files)
    except (StoreMismatch, StoreURLInvalid) as exc:
        return [str(exc)]
    remote = store.inspect(slug, sha256, files, at)
    where = f"{slug}/{sha256}"
    if not remote.complete and not remote.objects:
        return [f"{where}: not in {store}"]
    problems = [f"{where}: {p}" for p in remote.problems]
    if not remote.complete:
        problems.append(f"{where}: incomplete in {store} (no completion marker: an interrupted push?)")
    for name in sorted(set(files) - set(remote.objects)):
        problems.append(f"{where}/{name}: missing in {store}")
    for name in sorted(set(remote.objects) - set(files)):
        problems.append(f"{where}/{name}: in {store} but not part of the artifact")
    for name in sorted(set(files) & set(remote.objects)):
        obj = remote.objects[name]
        if sizes is not None and name in sizes and obj.size != sizes[name]:
            problems.append(f"{where}/{name}: {obj.size} bytes in the store, expected {sizes[name]}")
        elif obj.sha256 is not None and obj.sha256 != files[name]:
            problems.append(f"{where}/{name}: the store records sha256 {obj.sha256}, expected {files[name]}")
        elif deep:
            held = _stream_sha256(store, slug, sha256, name, remote)
            if held != files[name]:
                problems.append(f"{where}/{name}: stored bytes hash to sha256 {held}, expected {files[name]}")
    return problems

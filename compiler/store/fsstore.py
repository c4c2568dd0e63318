"""Object and folder stores through fsspec: ``s3://``, ``gs://``, ``file://`` and repository folders.

Layout: ``<store root>/<slug>/<sha256>/<file name>``, the same as the local ``artifacts/`` folder,
so the default store *is* today's folder. The completion marker is ``artifact.json`` when the
artifact has one (uploaded last), else the store's index ``.quantgate-index.json`` (written last).

Objects in S3 and GCS appear whole when their upload completes; on a local file system each file is
written under ``.<name>.part-<pid>-<random>`` and renamed, so a killed push never leaves a partial
file under a real name. Listings are never cached (another writer may have changed the bucket).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from compiler.files import canonical_json, write_if_changed
from compiler.store.base import (
    INDEX_FILE,
    INDEX_KIND,
    INDEX_SCHEMA,
    RECORD_FILE,
    ArtifactMissing,
    Remote,
    RemoteObject,
    Store,
    StoredAt,
    StoreUnreachable,
)

READ_BLOCK = 8 << 20
MAX_RECORD = 16 << 20  # artifact.json is read whole to trust its file hashes; never a big file


def index_bytes(slug: str, sha256: str, files: dict[str, str], sizes: dict[str, int]) -> bytes:
    body = {"schema": INDEX_SCHEMA, "kind": INDEX_KIND, "slug": slug, "sha256": sha256, "files": files, "sizes": sizes}
    return (canonical_json(body) + "\n").encode("utf-8")


def _is_part(name: str) -> bool:
    base = name.rsplit("/", 1)[-1]
    return base.startswith(".") and ".part-" in base


class FsspecStore(Store):
    def __init__(self, kind: str, url: str, fs: Any, root: str, local: bool):
        self.kind = kind
        self.url = url
        self.fs = fs
        self.root = root.rstrip("/")
        self.local = local

    # -- paths and errors --

    def _prefix(self, slug: str, sha256: str) -> str:
        return f"{self.root}/{slug}/{sha256}"

    @contextlib.contextmanager
    def _errors(self, what: str, missing: type = ArtifactMissing) -> Iterator[None]:
        try:
            yield
        except (StoreUnreachable, ArtifactMissing):
            raise
        except FileNotFoundError:
            raise missing(f"{self.url}: {what}: not found" + (" (does the bucket exist?)" if not self.local else "")) from None
        except PermissionError as exc:
            raise StoreUnreachable(f"{self.url}: {what}: access denied ({_short(exc)})") from None
        except Exception as exc:  # noqa: BLE001 - botocore / aiohttp / gcsfs errors have no common base
            raise StoreUnreachable(f"{self.url}: {what}: {type(exc).__name__}: {_short(exc)}") from None

    # -- Store --

    def inspect(self, slug: str, sha256: str, files: dict[str, str], at: StoredAt | None = None,
                for_push: bool = False) -> Remote:
        prefix = self._prefix(slug, sha256)
        with self._errors("listing"):
            try:
                found = self.fs.find(prefix, detail=True) if not self.local else _local_find(prefix)
            except FileNotFoundError:
                found = {}
            if not found and not self.local and not self.fs.exists(self.root.split("/", 1)[0]):
                raise StoreUnreachable(f"{self.url}: bucket {self.root.split('/', 1)[0]!r} does not exist or is not visible "
                                       "with these credentials")
        objects: dict[str, RemoteObject] = {}
        index_path = None
        for path, info in found.items():
            if info.get("type", "file") != "file":
                continue
            # fsspec paths carry no protocol; some backends drop a leading "/" of the prefix.
            name = path.split(prefix.strip("/") + "/", 1)[-1]
            if _is_part(name):
                continue
            if name == INDEX_FILE:
                index_path = path
                continue
            objects[name] = RemoteObject(size=int(info.get("size") or 0), sha256=None, locator=path)
        remote = Remote(complete=False, objects=objects)
        if RECORD_FILE in files:
            if RECORD_FILE in objects:
                remote.complete = True
                self._trust_record(remote, slug, sha256, files)
        elif index_path is not None:
            remote.complete = True
            with self._errors("reading the index"):
                data = self._read_small(index_path)
            try:
                index = json.loads(data)
                claims, claimed_sizes = index["files"], index["sizes"]
                if not isinstance(claims, dict) or not isinstance(claimed_sizes, dict):
                    raise TypeError
            except (ValueError, KeyError, TypeError):
                remote.problems.append(f"{INDEX_FILE} is not a quantgate index")
                return remote
            if claims != files:
                remote.problems.append(f"{INDEX_FILE} lists other files than the artifact")
            for name, obj in objects.items():
                if name in claims and claimed_sizes.get(name) == obj.size:
                    obj.sha256 = claims[name]
        return remote

    def _trust_record(self, remote: Remote, slug: str, sha256: str, files: dict[str, str]) -> None:
        """``artifact.json`` is small: hash it; when it is the recorded one, its ``files`` are the
        store's claim for every other file (a shallow check and an idempotent push rely on it)."""
        import hashlib

        obj = remote.objects[RECORD_FILE]
        if obj.size > MAX_RECORD:
            return  # not the small record it should be: the push compares hashes by streaming
        with self._errors(f"reading {RECORD_FILE}"):
            data = self._read_small(obj.locator)
        obj.sha256 = hashlib.sha256(data).hexdigest()
        if obj.sha256 != files[RECORD_FILE]:
            return
        try:
            claims = json.loads(data).get("files", {})
        except (ValueError, AttributeError):
            return
        for name, other in remote.objects.items():
            if name != RECORD_FILE and isinstance(claims, dict) and name in claims:
                other.sha256 = claims[name]

    def _read_small(self, path: str) -> bytes:
        if self.local:
            return Path(path).read_bytes()
        return self.fs.cat_file(path)

    @contextlib.contextmanager
    def open_object(self, slug: str, sha256: str, name: str, obj: RemoteObject) -> Iterator[BinaryIO]:
        with self._errors(f"reading {slug}/{sha256}/{name}"):
            if self.local:
                handle = open(obj.locator, "rb")  # noqa: SIM115 - closed by the with below
            else:
                handle = self.fs.open(obj.locator, "rb", block_size=READ_BLOCK, cache_type="readahead")
        with handle, self._errors(f"reading {slug}/{sha256}/{name}"):
            yield handle

    def upload(self, slug: str, sha256: str, name: str, path: Path, digest: str, size: int) -> None:
        target = f"{self._prefix(slug, sha256)}/{name}"
        with self._errors(f"uploading {name}", StoreUnreachable):
            if self.local:
                target_path = Path(target)
                target_path.parent.mkdir(parents=True, exist_ok=True)
                part = target_path.parent / f".{target_path.name}.part-{os.getpid()}-{secrets.token_hex(4)}"
                try:
                    shutil.copyfile(path, part)
                    os.replace(part, target_path)
                except BaseException:
                    part.unlink(missing_ok=True)
                    raise
            else:
                self.fs.put_file(str(path), target)

    def commit(self, slug: str, sha256: str, files: dict[str, str], sizes: dict[str, int], remote: Remote) -> StoredAt:
        if RECORD_FILE not in files:
            data = index_bytes(slug, sha256, files, sizes)
            target = f"{self._prefix(slug, sha256)}/{INDEX_FILE}"
            with self._errors("writing the index", StoreUnreachable):
                if self.local:
                    write_if_changed(Path(target), data)
                elif not remote.complete:
                    self.fs.pipe_file(target, data)
        return StoredAt(self.kind, f"{slug}/{sha256}/")


def _local_find(prefix: str) -> dict[str, dict[str, Any]]:
    out = {}
    base = Path(prefix)
    if not base.is_dir():
        return out
    for dirpath, _dirs, names in os.walk(base):
        for name in names:
            full = os.path.join(dirpath, name)
            out[full] = {"type": "file", "size": os.stat(full).st_size}
    return out


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:300] if text else type(exc).__name__

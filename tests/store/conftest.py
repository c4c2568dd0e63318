"""Fixtures for the store suite: real servers on loopback (one registry and one moto server per
session) and ``backend``, one case per store kind with the test-only ways to reach behind the store
(flip a byte, delete an object, plant a conflicting object) in its backing storage."""

from __future__ import annotations

import itertools
import json
import os
from pathlib import Path

import pytest
from servers import MotoS3, Registry

from compiler.files import artifact_sha256, listing
from compiler.store import open_store

_counter = itertools.count()


@pytest.fixture(scope="session")
def registry(tmp_path_factory):
    with Registry(tmp_path_factory.mktemp("registry")) as reg:  # RuntimeError (a failure) without the binary
        yield reg


@pytest.fixture(scope="session")
def moto_s3(tmp_path_factory):
    with MotoS3(tmp_path_factory.mktemp("moto")) as s3:
        saved = {k: os.environ.get(k) for k in list(s3.env) + ["AWS_MAX_ATTEMPTS"]}
        os.environ.update(s3.env)
        os.environ["AWS_MAX_ATTEMPTS"] = "2"
        try:
            yield s3
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


def flip(data: bytes, at: int | None = None) -> bytes:
    at = len(data) // 2 if at is None else at
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1:]


class Backend:
    """One store under test: ``url``, ``root`` (the repository root), ``env`` for subprocesses."""

    def __init__(self, kind: str, root: Path, url: str | None, env: dict[str, str] | None = None):
        self.kind, self.root, self.url, self.env = kind, root, url, env or {}

    def store(self):
        return open_store(self.url, self.root)

    # Reaching behind the store (the "attacker" / bit rot / another writer):
    def read(self, slug: str, sha: str, name: str, files: dict[str, str]) -> bytes:
        raise NotImplementedError

    def write(self, slug: str, sha: str, name: str, data: bytes, files: dict[str, str]) -> None:
        raise NotImplementedError

    def remove(self, slug: str, sha: str, name: str, files: dict[str, str]) -> None:
        raise NotImplementedError

    def tamper(self, slug: str, sha: str, name: str, files: dict[str, str]) -> None:
        self.write(slug, sha, name, flip(self.read(slug, sha, name, files)), files)

    def plant(self, slug: str, sha: str, name: str, data: bytes, files: dict[str, str]) -> None:
        """Put an object of the artifact's name ``name`` with other bytes, as another writer would."""
        self.write(slug, sha, name, data, files)


class FolderBackend(Backend):
    def __init__(self, kind, root, url, folder: Path):
        super().__init__(kind, root, url)
        self.folder = folder

    def _path(self, slug, sha, name):
        return self.folder / slug / sha / name

    def read(self, slug, sha, name, files):
        return self._path(slug, sha, name).read_bytes()

    def write(self, slug, sha, name, data, files):
        path = self._path(slug, sha, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    def remove(self, slug, sha, name, files):
        self._path(slug, sha, name).unlink()


class S3Backend(Backend):
    def __init__(self, root, s3: MotoS3, prefix: str):
        super().__init__("s3", root, f"s3://{s3.bucket}/{prefix}", dict(s3.env))
        self.fs = s3.filesystem()
        self.base = f"{s3.bucket}/{prefix}"

    def _path(self, slug, sha, name):
        return f"{self.base}/{slug}/{sha}/{name}"

    def read(self, slug, sha, name, files):
        return self.fs.cat_file(self._path(slug, sha, name))

    def write(self, slug, sha, name, data, files):
        self.fs.pipe_file(self._path(slug, sha, name), data)

    def remove(self, slug, sha, name, files):
        self.fs.rm(self._path(slug, sha, name))


class OciBackend(Backend):
    def __init__(self, root, registry: Registry, namespace: str):
        super().__init__("oci", root, f"{registry.url}/{namespace}")
        self.registry = registry

    def read(self, slug, sha, name, files):
        return self.registry.blob_path(files[name]).read_bytes()

    def write(self, slug, sha, name, data, files):
        self.registry.blob_path(files[name]).write_bytes(data)  # behind the registry's back

    def remove(self, slug, sha, name, files):
        self.registry.blob_path(files[name]).unlink()

    def plant(self, slug, sha, name, data, files):
        """Another manifest under the artifact's tag, naming ``name`` with other bytes."""
        import hashlib

        from compiler.store.oci import manifest_for

        store = self.store()
        repo = store._repo(slug)
        other = dict(files, **{name: hashlib.sha256(data).hexdigest()})
        sizes = {n: len(data) if n == name else 1 for n in other}
        for n, digest in other.items():
            blob = data if n == name else b"x"
            if n != name:
                digest = hashlib.sha256(blob).hexdigest()
                other[n] = digest
            store.upload_blob(repo, digest, blob, len(blob))
        config, manifest = manifest_for(slug, sha, other, sizes)
        store.upload_blob(repo, hashlib.sha256(config).hexdigest(), config, len(config))
        self.planted = store.put_manifest(repo, sha, manifest)


BACKENDS = ["folder", "file", "s3", "oci"]


@pytest.fixture(params=BACKENDS)
def backend(request, tmp_path) -> Backend:
    root = tmp_path / "repo"
    root.mkdir()
    unique = f"t{os.getpid()}x{next(_counter)}"
    if request.param == "folder":
        return FolderBackend("folder", root, None, root / "artifacts")
    if request.param == "file":
        folder = tmp_path / "bucket"
        return FolderBackend("file", root, f"file://{folder}", folder)
    if request.param == "s3":
        return S3Backend(root, request.getfixturevalue("moto_s3"), unique)
    return OciBackend(root, request.getfixturevalue("registry"), unique)


def make_artifact(folder: Path, record: bool = True, big: int = 5 << 20) -> tuple[str, dict[str, str]]:
    """A few generated files (one ``big`` bytes), plus ``artifact.json`` listing the others like
    ``runners.artifacts`` writes it. Random bytes: every test's blobs are its own."""
    (folder / "tokenizer").mkdir(parents=True)
    (folder / "model.bin").write_bytes(os.urandom(big))
    (folder / "config.json").write_text(json.dumps({"hidden": 8, "nonce": os.urandom(8).hex()}), encoding="utf-8")
    (folder / "tokenizer" / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", os.urandom(4).hex()]), encoding="utf-8")
    (folder / "empty.txt").write_bytes(b"")
    if record:
        body = {"schema": 1, "format": "test", "files": listing(folder)}
        (folder / "artifact.json").write_text(json.dumps(body, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    files = listing(folder)
    return artifact_sha256(files), files


@pytest.fixture
def artifact(tmp_path):
    """``artifact(record=True, big=5 MiB) -> (directory, sha256, files, sizes)``."""
    made = itertools.count()

    def build(record: bool = True, big: int = 5 << 20):
        folder = tmp_path / f"src{next(made)}" / "model"
        sha, files = make_artifact(folder, record, big)
        sizes = {name: (folder / name).stat().st_size for name in files}
        return folder, sha, files, sizes

    return build

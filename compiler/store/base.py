"""The store's types and errors, shared by every backend.

A backend (``OciStore``, ``FsspecStore``) implements a handful of object operations on one artifact,
``<slug>/<sha256>``; ``compiler.store.transfer`` builds push, pull and check on top of them, so the
rules (hash first, data before the completion marker, never overwrite, verify while streaming) live
in one place.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from compiler.errors import (
    Conflict,
    InvalidInput,
    Problem,
    QuantgateError,
    Refused,
    RunnerFailed,
)

#: The file whose presence means "this artifact is complete" for an artifact that has one
#: (``runners.artifacts`` writes it; it lists every other file's sha256). Uploaded last.
RECORD_FILE = "artifact.json"
#: What the store writes last for a directory without ``artifact.json`` (a repository-local
#: full-precision model pushed for rollback): canonical JSON ``{schema, kind, slug, sha256, files,
#: sizes}``. A dot name, so ``compiler.files.listing`` never counts it as part of a model directory.
INDEX_FILE = ".quantgate-index.json"
INDEX_KIND = "quantgate-store-index"
INDEX_SCHEMA = 1

_HEX64 = re.compile(r"[0-9a-f]{64}")


# -- errors --------------------------------------------------------------------------------------


class StoreError(QuantgateError):
    """Base of every store error (each also derives from the compiler.errors class of its exit code)."""


class StoreURLInvalid(StoreError, InvalidInput):
    """Exit 2: the store URL (or an argument) is malformed."""

    def __init__(self, message: str, where: str = "store"):
        InvalidInput.__init__(self, Problem(path=where, message=message))


class StoreUnreachable(StoreError, RunnerFailed):
    """Exit 3: the store cannot be reached, refused the credentials, or failed."""


class StoreMismatch(StoreError, Refused):
    """Exit 1: bytes do not hash as recorded (a local file before push, a pulled file)."""


class ArtifactMissing(StoreError, Refused):
    """Exit 1: the store does not hold (all of) the artifact the caller asked for."""


class StoreConflict(StoreError, Conflict):
    """Exit 4: the store already holds an object of that name with other content; nothing is overwritten."""


# -- results -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredAt:
    """What a lock records about where an artifact lives, independent of the store's URL and
    credentials: ``kind`` is ``oci``, ``s3``, ``gs``, ``file`` or ``folder``; ``address`` is the OCI
    manifest digest (``sha256:<hex>``) or, for object and folder stores, the object prefix relative to
    the store root (``<slug>/<sha256>/``)."""

    kind: str
    address: str

    def as_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "address": self.address}


@dataclass(frozen=True)
class Pushed:
    stored_at: StoredAt
    uploaded: tuple[str, ...]  # file names, in upload order (the completion marker last)
    skipped: tuple[str, ...]  # already present with the same sha256 and size
    bytes_uploaded: int = 0


@dataclass
class RemoteObject:
    """One file of an artifact as the store sees it, without downloading it. ``sha256`` is the
    store's own claim when it keeps one (an OCI layer digest, the hash a verified ``artifact.json``
    or index records), else None; ``locator`` is what ``open_object`` needs (a path, a digest)."""

    size: int
    sha256: str | None
    locator: str


@dataclass
class Remote:
    """An artifact as the store sees it. ``complete``: its completion marker (OCI manifest,
    ``artifact.json`` or the index) is there. ``problems``: inconsistencies only the backend can
    see (a manifest layer without a title, a blob whose size disagrees with its manifest)."""

    complete: bool
    objects: dict[str, RemoteObject] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    state: object = None  # backend-private (the manifest it read)


class Store(ABC):
    """A content-addressed artifact store. ``url`` is for messages only (no credentials, ever)."""

    kind: str
    url: str

    def __str__(self) -> str:
        return self.url

    @abstractmethod
    def inspect(self, slug: str, sha256: str, files: dict[str, str], at: StoredAt | None = None,
                for_push: bool = False) -> Remote:
        """What the store holds of ``<slug>/<sha256>``, without downloading file contents
        (``for_push``: ask for write access up front, e.g. a registry token with push scope)."""

    @abstractmethod
    def open_object(self, slug: str, sha256: str, name: str, obj: RemoteObject) -> AbstractContextManager[BinaryIO]:
        """A stream of one file's bytes (``read(n)``)."""

    @abstractmethod
    def upload(self, slug: str, sha256: str, name: str, path: Path, digest: str, size: int) -> None:
        """Store one local file (whole-object atomic: a reader never sees a partial object)."""

    @abstractmethod
    def commit(self, slug: str, sha256: str, files: dict[str, str], sizes: dict[str, int], remote: Remote) -> StoredAt:
        """Write what marks the artifact complete, after every data file (index, OCI manifest)."""

    def marker(self, files: dict[str, str]) -> str | None:
        """The file of ``files`` that is uploaded last because its presence means complete."""
        return RECORD_FILE if RECORD_FILE in files else None

    def close(self) -> None:  # noqa: B027 - optional hook: most stores hold nothing to release
        """Release connections (an OCI session); the store stays usable and reconnects on demand."""


# -- argument checks -----------------------------------------------------------------------------

_SLUG = re.compile(r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*")


def check_slug(slug: str) -> None:
    """Slugs are ``runners.artifacts.slug`` output, and must also be an OCI repository component."""
    if not isinstance(slug, str) or not _SLUG.fullmatch(slug) or len(slug) > 128:
        raise StoreURLInvalid(f"artifact slug {slug!r} is not lowercase [a-z0-9] words joined by '.', '_' or '-'", "artifact")


def check_sha(sha256: str) -> None:
    if not isinstance(sha256, str) or not _HEX64.fullmatch(sha256):
        raise StoreURLInvalid(f"artifact sha256 {sha256!r} is not 64 lowercase hex digits", "artifact")


def check_names(files: dict[str, str]) -> None:
    """File names are relative posix paths that stay inside the artifact (a pull writes them)."""
    if not files:
        raise StoreURLInvalid("an artifact needs at least one file", "artifact")
    for name, digest in files.items():
        parts = name.split("/")
        if (not name or name.startswith("/") or "\\" in name or "\0" in name
                or any(p in ("", ".", "..") for p in parts)):
            raise StoreURLInvalid(f"file name {name!r} is not a relative path inside the artifact", "artifact")
        if name == INDEX_FILE:
            raise StoreURLInvalid(f"file name {name!r} is reserved for the store's index", "artifact")
        if not isinstance(digest, str) or not _HEX64.fullmatch(digest):
            raise StoreURLInvalid(f"{name}: sha256 {digest!r} is not 64 lowercase hex digits", "artifact")

"""Content-addressed artifact stores: push, pull and check ``<slug>/<sha256>`` artifacts.

Pure Python (never imports torch). ``open_store(url, root)`` picks the backend from the URL:

===============================  ============================================================
``None`` or ``""``               the local folder ``<root>/artifacts`` (today's layout)
``some/dir``                     a folder relative to the repository root ``root`` (must stay inside)
``file:///abs/path``             an absolute folder (through fsspec)
``s3://bucket/prefix``           S3 or an S3-compatible server (s3fs); endpoint from
                                 ``AWS_ENDPOINT_URL_S3`` or ``AWS_ENDPOINT_URL``, credentials from
                                 the standard AWS chain (env, profile, instance role)
``gs://bucket/prefix``           Google Cloud Storage (gcsfs; application-default credentials)
``oci://host[:port]/namespace``  an OCI registry over HTTPS (repository ``<namespace>/<slug>``)
``oci+http://host:port/ns``      the same over plain HTTP (loopback / test registries)
===============================  ============================================================

URLs carry no credentials (a URL with ``user@`` is refused); they come from the environment only.
What a lock records is ``Pushed.stored_at`` (``StoredAt(kind, address)``): the OCI manifest digest,
or ``<slug>/<sha256>/`` relative to the store root; never the URL, so a moved bucket keeps its locks.

Errors (all ``StoreError``, each also the ``compiler.errors`` class of its exit code):
``StoreURLInvalid`` (2), ``StoreMismatch`` and ``ArtifactMissing`` (1: a verification said no),
``StoreUnreachable`` (3), ``StoreConflict`` (4: an object of that name holds other bytes).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import urlsplit

from compiler.store.base import (
    INDEX_FILE,
    RECORD_FILE,
    ArtifactMissing,
    Pushed,
    Store,
    StoreConflict,
    StoredAt,
    StoreError,
    StoreMismatch,
    StoreUnreachable,
    StoreURLInvalid,
)
from compiler.store.transfer import check, pull, push

__all__ = [
    "INDEX_FILE", "RECORD_FILE", "ArtifactMissing", "Pushed", "Store", "StoreConflict", "StoreError", "StoreMismatch",
    "StoreURLInvalid", "StoreUnreachable", "StoredAt", "check", "open_store", "pull", "push",
]

_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*")
_HOST = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*|\[[0-9a-fA-F:.]+\])(?::[0-9]{1,5})?")
_BUCKET = re.compile(r"[a-z0-9][a-z0-9._-]{1,221}[a-z0-9]")


def _redact(url: str) -> str:
    return re.sub(r"//[^/@]*@", "//***@", url)


def open_store(url: str | None, root: Path, **options) -> Store:
    """The store named by ``url`` (see the module docstring); ``root`` is the repository root.
    ``options`` go to the fsspec filesystem (e.g. ``endpoint_url=`` for s3); nothing is contacted yet."""
    from compiler.store.fsstore import FsspecStore

    root = Path(root).absolute()
    if url is None or str(url).strip() == "":
        folder = root / "artifacts"
        return FsspecStore("folder", "artifacts/", _local_fs(), str(folder), local=True)
    url = str(url).strip()
    shown = _redact(url)
    if "://" not in url:
        path = Path(url)
        if path.is_absolute() or url.startswith("~"):
            raise StoreURLInvalid(f"{shown!r}: a bare store path is relative to the repository; use file:///abs/path for an absolute folder")
        if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", url):
            raise StoreURLInvalid(f"{shown!r}: not a store URL (expected oci://, s3://, gs://, file:// or a relative folder)")
        folder = (root / path).resolve()
        if folder != root.resolve() and root.resolve() not in folder.parents:
            raise StoreURLInvalid(f"{shown!r}: the folder is outside the repository; use file:///abs/path")
        return FsspecStore("folder", url.rstrip("/") + "/", _local_fs(), str(folder), local=True)
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise StoreURLInvalid(f"{shown!r}: {exc}") from None
    scheme = parts.scheme.lower()
    if parts.username is not None or parts.password is not None:
        raise StoreURLInvalid(f"{shown!r}: store URLs carry no credentials; they come from the environment")
    if parts.query or parts.fragment:
        raise StoreURLInvalid(f"{shown!r}: store URLs take no '?' or '#' part (configure the endpoint through the environment)")
    if scheme in ("oci", "oci+https", "oci+http"):
        from compiler.store.oci import OciStore

        host = parts.netloc
        namespace = parts.path.strip("/")
        if not host or not _HOST.fullmatch(host):
            raise StoreURLInvalid(f"{shown!r}: expected oci://host[:port]/namespace")
        if not namespace or not all(_COMPONENT.fullmatch(c) for c in namespace.split("/")):
            raise StoreURLInvalid(f"{shown!r}: the namespace must be lowercase path components (oci://host/org/models)")
        return OciStore(url, "http" if scheme == "oci+http" else "https", host, namespace)
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise StoreURLInvalid(f"{shown!r}: expected file:///absolute/path")
        path = parts.path
        if not path.startswith("/") or path.rstrip("/") == "":
            raise StoreURLInvalid(f"{shown!r}: expected file:///absolute/path")
        return FsspecStore("file", url, _local_fs(), os.path.normpath(path), local=True)
    if scheme in ("s3", "gs", "gcs"):
        bucket = parts.netloc
        if not _BUCKET.fullmatch(bucket or ""):
            raise StoreURLInvalid(f"{shown!r}: expected {scheme}://bucket/prefix")
        prefix = parts.path.strip("/")
        if "//" in parts.path.strip("/") or any(c in (".", "..") for c in prefix.split("/") if prefix):
            raise StoreURLInvalid(f"{shown!r}: the prefix has an empty, '.' or '..' component")
        fs = _s3_fs(url, options) if scheme == "s3" else _gcs_fs(url, options)
        kind = "s3" if scheme == "s3" else "gs"
        return FsspecStore(kind, url, fs, f"{bucket}/{prefix}" if prefix else bucket, local=False)
    raise StoreURLInvalid(f"{shown!r}: unsupported store scheme {scheme!r} (expected oci://, oci+http://, s3://, gs://, file:// or a relative folder)")


def _local_fs():
    from fsspec.implementations.local import LocalFileSystem

    return LocalFileSystem()


def _s3_fs(url: str, options: dict):
    try:
        import s3fs
    except ImportError:
        raise StoreUnreachable(f"{url}: s3:// stores need s3fs: pip install 'quantgate[store]'") from None
    options = dict(options)
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if endpoint and "endpoint_url" not in options:
        options["endpoint_url"] = endpoint
    options.setdefault("use_listings_cache", False)
    options.setdefault("skip_instance_cache", True)
    return s3fs.S3FileSystem(**options)


def _gcs_fs(url: str, options: dict):
    try:
        import gcsfs
    except ImportError:
        raise StoreUnreachable(f"{url}: gs:// stores need gcsfs: pip install 'quantgate[store]'") from None
    options = dict(options)
    options.setdefault("use_listings_cache", False)
    options.setdefault("skip_instance_cache", True)
    return gcsfs.GCSFileSystem(**options)

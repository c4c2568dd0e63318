"""An OCI registry as an artifact store, spoken over the OCI distribution HTTP API with ``requests``.

One artifact is one image manifest (``application/vnd.oci.image.manifest.v1+json``) in the
repository ``<namespace>/<slug>``, tagged with the artifact's sha256 (64 hex digits, a valid tag):

- each file is a layer whose digest is the file's sha256 (``mediaType``
  ``application/vnd.quantgate.file.v1``, annotation ``org.opencontainers.image.title`` = file name),
  layers sorted by name;
- the config blob (``application/vnd.quantgate.artifact.config.v1+json``) is the store index:
  canonical JSON ``{schema, kind, slug, sha256, files, sizes}``;
- the manifest is canonical JSON with no timestamps, so the same artifact always has the same
  manifest digest, which is what a lock records (``StoredAt("oci", "sha256:...")``).

Blobs go up with a monolithic upload (``POST /v2/<repo>/blobs/uploads/`` then ``PUT <location>
?digest=``), ``artifact.json`` last, then the config, then the manifest: the manifest's presence
means complete. A tag that already names another manifest is never overwritten.

Auth: on a ``401`` with ``WWW-Authenticate: Bearer realm=..,service=..`` a token is fetched from the
realm for ``repository:<repo>:pull[,push]``, with basic auth ``user:token`` when a token is in the
environment (``QUANTGATE_OCI_TOKEN``; for ghcr.io also ``GITHUB_TOKEN``; user
``QUANTGATE_OCI_USERNAME``, else ``GITHUB_ACTOR``, else ``quantgate``), anonymously otherwise. A
``Basic`` challenge gets ``user:token`` directly. Credentials never leave the environment for
anything but those requests, and are never sent over plain HTTP except to a loopback host.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import json
import mmap
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urljoin

from compiler.files import canonical_json
from compiler.store.base import (
    ArtifactMissing,
    Remote,
    RemoteObject,
    Store,
    StoredAt,
    StoreMismatch,
    StoreUnreachable,
)
from compiler.store.fsstore import index_bytes

MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
ARTIFACT_TYPE = "application/vnd.quantgate.artifact.v1"
CONFIG_TYPE = "application/vnd.quantgate.artifact.config.v1+json"
LAYER_TYPE = "application/vnd.quantgate.file.v1"
TITLE = "org.opencontainers.image.title"
TIMEOUT = (10, 300)  # connect, read seconds
READ_BLOCK = 1 << 22


def manifest_for(slug: str, sha256: str, files: dict[str, str], sizes: dict[str, int]) -> tuple[bytes, bytes]:
    """(config blob, manifest bytes) of an artifact: deterministic, so re-pushes are no-ops."""
    config = index_bytes(slug, sha256, files, sizes)
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "artifactType": ARTIFACT_TYPE,
        "config": {"mediaType": CONFIG_TYPE, "digest": "sha256:" + hashlib.sha256(config).hexdigest(), "size": len(config)},
        "layers": [
            {"mediaType": LAYER_TYPE, "digest": f"sha256:{files[name]}", "size": sizes[name], "annotations": {TITLE: name}}
            for name in sorted(files)
        ],
        "annotations": {"org.quantgate.slug": slug, "org.quantgate.sha256": sha256},
    }
    return config, canonical_json(manifest).encode("utf-8")


def _loopback(host: str) -> bool:
    name = host.rsplit(":", 1)[0] if host.count(":") == 1 or host.startswith("[") else host
    name = name.strip("[]")
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


_CHALLENGE = re.compile(r'(\w+)="([^"]*)"')


class OciStore(Store):
    kind = "oci"

    def __init__(self, url: str, scheme: str, host: str, namespace: str):
        import requests

        self.url = url
        self.scheme = scheme
        self.host = host
        self.namespace = namespace
        self.base = f"{scheme}://{host}"
        self.session = requests.Session()
        self.session.headers["User-Agent"] = "quantgate-store"
        self._auth: dict[str, str] = {}  # repository -> Authorization header value
        self._auth_actions: dict[str, str] = {}

    # -- credentials --

    def _credentials(self) -> tuple[str, str] | None:
        token = os.environ.get("QUANTGATE_OCI_TOKEN")
        if not token and self.host.split(":")[0] == "ghcr.io":
            token = os.environ.get("GITHUB_TOKEN")
        if not token:
            return None
        if self.scheme != "https" and not _loopback(self.host):
            raise StoreUnreachable(f"{self.url}: refusing to send registry credentials over plain HTTP to a non-loopback host")
        user = os.environ.get("QUANTGATE_OCI_USERNAME") or os.environ.get("GITHUB_ACTOR") or "quantgate"
        return user, token

    def _authenticate(self, repo: str, actions: str, challenge: str) -> None:
        scheme = challenge.split(" ", 1)[0].lower()
        creds = self._credentials()
        if scheme == "basic":
            if creds is None:
                raise StoreUnreachable(f"{self.url}: the registry wants credentials: set QUANTGATE_OCI_TOKEN")
            import base64

            self._auth[repo] = "Basic " + base64.b64encode(f"{creds[0]}:{creds[1]}".encode()).decode()
        elif scheme == "bearer":
            params = dict(_CHALLENGE.findall(challenge))
            realm = params.get("realm")
            if not realm:
                raise StoreUnreachable(f"{self.url}: the registry's Bearer challenge names no realm")
            query = {"scope": f"repository:{repo}:{actions}"}
            if params.get("service"):
                query["service"] = params["service"]
            try:
                response = self.session.get(realm, params=query, auth=creds, timeout=TIMEOUT)
            except Exception as exc:  # noqa: BLE001 - any failure to get a token is "unreachable"
                raise StoreUnreachable(f"{self.url}: token service unreachable ({type(exc).__name__})") from None
            if response.status_code in (401, 403):
                who = "the token in QUANTGATE_OCI_TOKEN/GITHUB_TOKEN" if creds else "anonymous access (set QUANTGATE_OCI_TOKEN)"
                raise StoreUnreachable(f"{self.url}: the registry's token service refused {who} for {repo} ({actions})")
            if response.status_code != 200:
                raise StoreUnreachable(f"{self.url}: token service answered HTTP {response.status_code}")
            try:
                body = response.json()
                token = body.get("token") or body.get("access_token")
            except ValueError:
                token = None
            if not token:
                raise StoreUnreachable(f"{self.url}: the token service answered without a token")
            self._auth[repo] = f"Bearer {token}"
        else:
            raise StoreUnreachable(f"{self.url}: unsupported registry auth scheme {scheme!r}")
        self._auth_actions[repo] = actions

    # -- HTTP --

    def _request(self, method: str, repo: str, path: str, *, actions: str = "pull", data: Any = None,
                 headers: dict[str, str] | None = None, stream: bool = False, ok: tuple[int, ...] = (200,),
                 missing_ok: bool = False):
        import requests

        url = path if path.startswith(("http://", "https://")) else urljoin(self.base, path)
        for attempt in range(2):
            send = dict(headers or {})
            if repo in self._auth and (actions == "pull" or self._auth_actions.get(repo) == actions):
                send["Authorization"] = self._auth[repo]
            body = data() if callable(data) else data
            try:
                response = self.session.request(method, url, data=body, headers=send, stream=stream,
                                                timeout=TIMEOUT, allow_redirects=True)
            except requests.exceptions.RequestException as exc:
                raise StoreUnreachable(f"{self.url}: unreachable ({type(exc).__name__}: {_reason(exc)})") from None
            finally:
                if hasattr(body, "close"):
                    body.close()
            if response.status_code == 401 and attempt == 0 and "WWW-Authenticate" in response.headers:
                response.close()
                self._authenticate(repo, actions, response.headers["WWW-Authenticate"])
                continue
            break
        if response.status_code in ok:
            return response
        if response.status_code == 404 and missing_ok:
            response.close()
            return None
        detail = _registry_error(response)
        response.close()
        if response.status_code in (401, 403):
            raise StoreUnreachable(f"{self.url}: {method} {repo}: not authorized (HTTP {response.status_code}{detail}); "
                                   "set QUANTGATE_OCI_TOKEN (ghcr.io: GITHUB_TOKEN)")
        raise StoreUnreachable(f"{self.url}: {method} {path.split('?')[0]}: HTTP {response.status_code}{detail}")

    def _repo(self, slug: str) -> str:
        return f"{self.namespace}/{slug}"

    def head_blob(self, repo: str, digest: str, actions: str = "pull") -> int | None:
        response = self._request("HEAD", repo, f"/v2/{repo}/blobs/sha256:{digest}", actions=actions, missing_ok=True)
        if response is None:
            return None
        response.close()
        return int(response.headers.get("Content-Length", "-1"))

    def get_manifest(self, repo: str, reference: str, actions: str = "pull") -> bytes | None:
        response = self._request("GET", repo, f"/v2/{repo}/manifests/{reference}", headers={"Accept": MANIFEST_TYPE},
                                 actions=actions, missing_ok=True)
        if response is None:
            return None
        with response:
            return response.content

    def upload_blob(self, repo: str, digest: str, data: Any, size: int) -> None:
        """Monolithic upload; ``data`` is bytes or a callable opening a fresh file object."""
        start = self._request("POST", repo, f"/v2/{repo}/blobs/uploads/", actions="pull,push", ok=(202,))
        start.close()
        location = start.headers.get("Location")
        if not location:
            raise StoreUnreachable(f"{self.url}: the registry started an upload without a Location")
        location = urljoin(self.base, location)
        location += ("&" if "?" in location else "?") + f"digest=sha256:{digest}"
        done = self._request("PUT", repo, location, actions="pull,push", data=data, ok=(201,),
                             headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)})
        done.close()

    def put_manifest(self, repo: str, reference: str, manifest: bytes) -> str:
        response = self._request("PUT", repo, f"/v2/{repo}/manifests/{reference}", actions="pull,push",
                                 data=manifest, headers={"Content-Type": MANIFEST_TYPE}, ok=(201,))
        response.close()
        ours = "sha256:" + hashlib.sha256(manifest).hexdigest()
        theirs = response.headers.get("Docker-Content-Digest")
        if theirs and theirs != ours:
            raise StoreMismatch(f"{self.url}: the registry stored manifest {theirs}, we sent {ours}")
        return ours

    # -- Store --

    def close(self) -> None:
        self.session.close()

    def inspect(self, slug: str, sha256: str, files: dict[str, str], at: StoredAt | None = None,
                for_push: bool = False) -> Remote:
        repo = self._repo(slug)
        actions = "pull,push" if for_push else "pull"
        reference = at.address if at is not None and at.kind == "oci" else sha256
        raw = self.get_manifest(repo, reference, actions)
        if raw is None:
            remote = Remote(complete=False)
            for name in sorted(files):  # an interrupted push may have left some blobs
                size = self.head_blob(repo, files[name], actions)
                if size is not None:
                    remote.objects[name] = RemoteObject(size=size, sha256=files[name], locator=files[name])
            return remote
        digest = "sha256:" + hashlib.sha256(raw).hexdigest()
        remote = Remote(complete=True, state={"digest": digest, "raw": raw})
        if at is not None and at.kind == "oci" and digest != at.address:
            remote.problems.append(f"the registry served manifest {digest} for {at.address}")
        try:
            manifest = json.loads(raw)
            layers = manifest["layers"]
        except (ValueError, KeyError, TypeError):
            remote.problems.append(f"manifest {digest} is not an OCI image manifest")
            return remote
        for layer in layers:
            name = (layer.get("annotations") or {}).get(TITLE)
            layer_digest = str(layer.get("digest", ""))
            if not name or not layer_digest.startswith("sha256:"):
                remote.problems.append(f"manifest {digest} has a layer without a title or sha256 digest")
                continue
            hexdigest = layer_digest.split(":", 1)[1]
            size = self.head_blob(repo, hexdigest, actions)
            if size is None:
                continue  # listed but the blob is gone: reported as missing
            if size != layer.get("size"):
                remote.problems.append(f"{name}: blob is {size} bytes, its manifest says {layer.get('size')}")
            remote.objects[name] = RemoteObject(size=size, sha256=hexdigest, locator=hexdigest)
        return remote

    @contextlib.contextmanager
    def open_object(self, slug: str, sha256: str, name: str, obj: RemoteObject) -> Iterator[BinaryIO]:
        repo = self._repo(slug)
        response = self._request("GET", repo, f"/v2/{repo}/blobs/sha256:{obj.locator}", stream=True, missing_ok=True)
        if response is None:
            raise ArtifactMissing(f"{self.url}: {slug}/{sha256}/{name}: blob sha256:{obj.locator} is gone")
        with response:
            yield _Stream(response, self.url)

    def upload(self, slug: str, sha256: str, name: str, path, digest: str, size: int) -> None:
        # Small files go as bytes (requests sends an empty file object chunked, which registries
        # reject); large ones as a memory map, handed to the socket in one sendall (a file object
        # would go in 16 KiB writes).
        if size < (1 << 20):
            self.upload_blob(self._repo(slug), digest, Path(path).read_bytes(), size)
            return
        with open(path, "rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            view = memoryview(mapped)
            try:
                self.upload_blob(self._repo(slug), digest, view, size)
            finally:
                view.release()

    def commit(self, slug: str, sha256: str, files: dict[str, str], sizes: dict[str, int], remote: Remote) -> StoredAt:
        repo = self._repo(slug)
        if remote.complete and isinstance(remote.state, dict):
            return StoredAt(self.kind, remote.state["digest"])  # the same files are already published
        config, manifest = manifest_for(slug, sha256, files, sizes)
        config_digest = hashlib.sha256(config).hexdigest()
        if self.head_blob(repo, config_digest, actions="pull,push") is None:
            self.upload_blob(repo, config_digest, config, len(config))
        return StoredAt(self.kind, self.put_manifest(repo, sha256, manifest))


class _Stream:
    """``readinto``/``read`` over a streamed response body (the raw bytes: blobs are not content-encoded)."""

    def __init__(self, response: Any, url: str):
        self._raw = response.raw
        self._url = url

    def _guard(self, call, *args):
        import requests
        import urllib3

        try:
            return call(*args)
        except (requests.exceptions.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise StoreUnreachable(f"{self._url}: download interrupted ({type(exc).__name__})") from None

    def readinto(self, buffer) -> int:
        return self._guard(self._raw.readinto, buffer)

    def read(self, n: int = -1) -> bytes:
        return self._guard(self._raw.read, None if n < 0 else n)


def _registry_error(response: Any) -> str:
    try:
        errors = response.json().get("errors") or []
        codes = ", ".join(str(e.get("code")) for e in errors if isinstance(e, dict))
        return f": {codes}" if codes else ""
    except Exception:  # noqa: BLE001 - the error body is a nicety
        return ""


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:200]

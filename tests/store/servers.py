"""Real stores on loopback for the store tests and bench/store.py.

- ``Registry``: the CNCF distribution registry (Debian package ``docker-registry``, binary
  ``docker-registry``; ``QUANTGATE_REGISTRY_BIN`` overrides) on 127.0.0.1 with a free port, a temp
  filesystem storage and a generated config. Missing binary: ``RuntimeError`` (tests fail, never skip).
- ``MotoS3``: ``moto_server`` (``python -m moto.server``) on 127.0.0.1 in a subprocess, a bucket, and
  the environment the s3 store reads (fake keys, ``AWS_ENDPOINT_URL_S3``).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests
from typing_extensions import Self


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait(url: str, proc: subprocess.Popen, what: str, log: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}: {log.read_text(errors='replace')[-2000:]}")
        try:
            if requests.get(url, timeout=1).status_code < 500:
                return
        except requests.exceptions.RequestException:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not answer {url} within {timeout:.0f} s: {log.read_text(errors='replace')[-2000:]}")


def _stop(proc: subprocess.Popen | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def registry_binary() -> str:
    explicit = os.environ.get("QUANTGATE_REGISTRY_BIN")
    unpacked = Path(__file__).resolve().parents[2] / ".quantgate" / "tools" / "docker-registry" / "usr" / "bin" / "docker-registry"
    for candidate in ([explicit] if explicit else []) + ["docker-registry", "/usr/bin/docker-registry", str(unpacked)]:
        found = shutil.which(candidate)
        if found:
            return found
    raise RuntimeError("the OCI registry binary 'docker-registry' is not installed: run scripts/test (it installs the "
                       "Debian package docker-registry, or unpacks it under .quantgate/tools) or set QUANTGATE_REGISTRY_BIN")


class Registry:
    """``with Registry(workdir) as reg: reg.url`` -> ``oci+http://127.0.0.1:<port>/quantgate``."""

    namespace = "quantgate"

    def __init__(self, workdir: Path):
        self.workdir = Path(workdir)
        self.storage = self.workdir / "storage"
        self.port = 0
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"oci+http://127.0.0.1:{self.port}/{self.namespace}"

    def blob_path(self, hexdigest: str) -> Path:
        return self.storage / "docker" / "registry" / "v2" / "blobs" / "sha256" / hexdigest[:2] / hexdigest / "data"

    def __enter__(self) -> Self:
        binary = registry_binary()
        self.storage.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        config = self.workdir / "config.yml"
        config.write_text(
            "version: 0.1\n"
            "log: {level: error, accesslog: {disabled: true}}\n"
            f"storage:\n  filesystem: {{rootdirectory: {self.storage}}}\n  delete: {{enabled: true}}\n"
            "  maintenance: {uploadpurging: {enabled: false}}\n"
            f"http:\n  addr: 127.0.0.1:{self.port}\n  secret: quantgate-test-secret\n",
            encoding="utf-8")
        log = self.workdir / "registry.log"
        with open(log, "wb") as out:
            self.proc = subprocess.Popen([binary, "serve", str(config)], stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)
        _wait(f"http://127.0.0.1:{self.port}/v2/", self.proc, "docker-registry", log)
        return self

    def __exit__(self, *exc) -> None:
        _stop(self.proc)


class MotoS3:
    """``with MotoS3(workdir) as s3: s3.url, s3.env`` -> a bucket on a loopback moto server."""

    bucket = "quantgate-test"

    def __init__(self, workdir: Path):
        self.workdir = Path(workdir)
        self.port = 0
        self.proc: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/store"

    @property
    def env(self) -> dict[str, str]:
        return {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing",
                "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL_S3": self.endpoint}

    def filesystem(self):
        import s3fs

        return s3fs.S3FileSystem(key="testing", secret="testing", endpoint_url=self.endpoint,
                                 use_listings_cache=False, skip_instance_cache=True)

    def __enter__(self) -> Self:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        log = self.workdir / "moto.log"
        with open(log, "wb") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                                         stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        _wait(f"{self.endpoint}/moto-api/", self.proc, "moto_server", log)
        self.filesystem().mkdir(self.bucket)
        return self

    def __exit__(self, *exc) -> None:
        _stop(self.proc)

"""A deployed model in a real git repository: manifest, lock and serving flag committed, a bare
remote as ``origin``; and a Prometheus-API-shaped server on loopback (pytest-httpserver)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from compiler.monitoring.serving import write_serving
from compiler.playbook.lockfile import write_lock

DEMO = Path(__file__).resolve().parents[2] / "manifests" / "minilm-stsb.yaml"
ARTIFACT_SHA = "a" * 64
WEIGHTS_SHA = "b" * 64

# Healthy values per rule; each test overrides what it breaches.
HEALTHY = {"quality_floor": 0.84, "error_rate_ceiling": 0.004, "latency_p95_ms": 41.5}
BREACH = {"quality_floor": 0.71, "error_rate_ceiling": 0.09, "latency_p95_ms": 232.0}


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def manifest_text(name: str = "demo", rollback: str | None = None, metric: str | None = None) -> str:
    text = DEMO.read_text(encoding="utf-8").replace("name: minilm-stsb", f"name: {name}")
    if rollback is not None:
        text = re.sub(r"^rollback:.*$", rollback, text, flags=re.M)
    if metric is not None:
        text = text.replace("metric: spearman", f"metric: {metric}")
    return text


def make_lock(name: str = "demo", artifact_sha: str | None = ARTIFACT_SHA) -> dict:
    """A lock of the shape ``compiler.playbook.lockmodel.Lock`` accepts; monitoring reads ``final.artifact``
    and ``inputs.model.weights_sha256`` from it."""
    def play(number: int, status: str = "passed") -> dict:
        return {"number": number, "status": status, "cache_key": f"{number:064x}", "why": None, "result": None}

    final = None
    if artifact_sha:
        final = {
            "candidate": "ptq", "method": "ptq", "weights": "int8", "activations": "dynamic-int8", "group_size": None,
            "backend": "onnxruntime", "backend_version": "1.22.0", "config": {},
            "calibration": {"path": "data/stsb/sts-train.tsv", "sha256": "e" * 64, "samples": 256, "seed": 0},
            "protected_layers": [], "quantized_layers": 36,
            "artifact": {"path": f"artifacts/{name}/{artifact_sha}", "sha256": artifact_sha,
                         "files": {"model.onnx": "c" * 64}, "format": "onnx"},
        }
    names = ("baseline", "envelope", "ptq", "gate", "mixed_precision", "qat", "lock", "monitor")
    return {
        "schema_version": 1, "name": name,
        "manifest": {"path": f"manifests/{name}.yaml", "sha256": "f" * 64, "sections": {}},
        "verdict": "locked" if artifact_sha else "refused",
        "next_step": None if artifact_sha else "the gate said no",
        "inputs": {
            "model": {"source": "./models/all-MiniLM-L6-v2", "revision": None, "gguf_file": None,
                      "files_sha256": "9" * 64, "weights_sha256": WEIGHTS_SHA},
            "evaluation_data": {"path": "data/stsb/sts-test.tsv", "sha256": "8" * 64},
            "calibration_data": {"path": "data/stsb/sts-train.tsv", "sha256": "e" * 64},
            "backend": {"requested": "auto", "resolved": "onnxruntime"},
        },
        "plays": {n: play(i + 1) for i, n in enumerate(names)},
        "final": final, "deltas": None,
        "evaluations": {"full": 2, "by_play": {"baseline": 1, "ptq": 1}},
        "environment": {}, "signoff": {"status": "pending", "head_sha": None, "records": [], "missing": []},
    }


@pytest.fixture
def deployed(tmp_path: Path) -> Path:
    """A repository whose ``demo`` manifest is locked and serving its quantized artifact."""
    remote = tmp_path / "remote.git"
    repo = tmp_path / "repo"
    git(tmp_path, "init", "--quiet", "--bare", "-b", "main", str(remote))
    git(tmp_path, "init", "--quiet", "-b", "main", str(repo))
    git(repo, "config", "user.name", "Tester")
    git(repo, "config", "user.email", "tester@example.com")
    git(repo, "remote", "add", "origin", str(remote))
    (repo / "manifests").mkdir()
    manifest = repo / "manifests" / "demo.yaml"
    manifest.write_text(manifest_text(), encoding="utf-8")
    lock = make_lock()
    write_lock(repo / "manifests" / "demo.lock.yaml", lock)
    assert write_serving(manifest, lock)
    git(repo, "add", "-A")
    git(repo, "commit", "--quiet", "-m", "deploy demo")
    git(repo, "push", "--quiet", "origin", "main")
    return repo


def vector(value: float | None, labels: dict | None = None) -> dict:
    """A real ``/api/v1/query`` success body with one series (none when ``value`` is None)."""
    result = [] if value is None else [{"metric": labels or {}, "value": [1764180000.123, repr(float(value))]}]
    return {"status": "success", "data": {"resultType": "vector", "result": result}}


def rule_of(query: str) -> str:
    if "quantgate_model_quality" in query:
        return "quality_floor"
    if "quantgate_requests_failed_total" in query:
        return "error_rate_ceiling"
    if "quantgate_request_duration_seconds_bucket" in query:
        return "latency_p95_ms"
    raise AssertionError(f"unexpected query {query}")


class FakePrometheus:
    """Serves ``GET /api/v1/query`` from per-rule values, recording the queries it was asked."""

    def __init__(self, server):
        self.server = server
        self.values = dict(HEALTHY)
        self.queries: list[str] = []
        self.raw: dict[str, tuple[int, str]] = {}  # rule -> (status, body) served verbatim
        from werkzeug import Response

        def handle(request):
            query = request.args.get("query", "")
            self.queries.append(query)
            rule = rule_of(query)
            if rule in self.raw:
                status, body = self.raw[rule]
                return Response(body, status=status, content_type="application/json")
            return Response(json.dumps(vector(self.values[rule], {"model": "demo"})), content_type="application/json")

        server.expect_request("/api/v1/query", method="GET").respond_with_handler(handle)

    @property
    def url(self) -> str:
        return self.server.url_for("/").rstrip("/")


@pytest.fixture
def prometheus(httpserver) -> FakePrometheus:
    return FakePrometheus(httpserver)

"""The lock file's shape as pydantic models: the source of ``schemas/lock.schema.json``.

The lock is written by ``compiler.playbook.lockfile`` from plain data, checked against this model,
and read back *into* it (``read_lock`` returns a ``Lock``), so readers use attributes, never
defensive ``dict.get`` chains. Play results are the runner's result dataclasses
(``runners.base``) as dicts, described here loosely (``dict``) because the runner owns their fields.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from compiler.vocabulary import Play, Role, SignoffStatus, Status, Verdict

CandidatePlay = Literal["ptq", "mixed_precision", "qat"]


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ManifestRef(_Closed):
    path: str = Field(description="The manifest, repository-relative.")
    sha256: str = Field(description="sha256 of the manifest file's bytes when it was locked.")
    sections: dict[str, str] = Field(description="sha256 per top-level section (names what changed).")


class ModelInput(_Closed):
    source: str
    revision: str | None
    gguf_file: str | None
    files_sha256: str | None = Field(description="Content hash of a local model directory; null for hub ids (the revision pins them).")
    weights_sha256: str | None = Field(description="Canonical tensor hash measured by the baseline.")


class DataInput(_Closed):
    path: str
    sha256: str | None


class BackendInput(_Closed):
    requested: str
    resolved: str


class Inputs(_Closed):
    model: ModelInput
    evaluation_data: DataInput
    calibration_data: DataInput
    backend: BackendInput


class PlayRecord(_Closed):
    number: int = Field(ge=1, le=8)
    status: Status
    cache_key: str
    why: str | None = None
    result: dict[str, Any] | None = Field(None, description="The runner's result (baseline without per-example scores); gate: its judgments.")


class Plays(_Closed):
    baseline: PlayRecord
    envelope: PlayRecord
    ptq: PlayRecord
    gate: PlayRecord
    mixed_precision: PlayRecord
    qat: PlayRecord
    lock: PlayRecord
    monitor: PlayRecord


class FitComparison(_Closed):
    against: Literal["evaluation", "production"]
    fit: float
    length: float
    unknown: float
    hidden: float
    segments: list[int]
    chars_per_token: list[float]
    unknown_rate: list[float]
    hidden_shift: float


class CalibrationFit(_Closed):
    """``runners.base.CalibrationFit``: how well the calibration set matches the workload (docs/manifest.md)."""

    fit: float = Field(ge=0, le=1, description="The lowest comparison's fit; 1: the calibration set looks like the workload to the model.")
    min_fit: float = Field(description="quantization.calibration.min_fit when it was measured.")
    low: bool
    layers: list[int]
    comparisons: list[FitComparison]


class Calibration(_Closed):
    path: str
    sha256: str
    samples: int
    seed: int
    fit: CalibrationFit | None = Field(None, description="The ptq play's calibration fit (absent in locks written before it was measured).")


class Artifact(_Closed):
    path: str
    sha256: str = Field(description="The artifact's address: sha256 over the sorted `name\\0sha256\\n` lines of `files`.")
    files: dict[str, str]
    format: str
    sizes: dict[str, int] | None = Field(None, description="Bytes per file (what `verify --remote` compares without downloading).")


class StoredArtifact(_Closed):
    slug: str
    sha256: str
    address: str = Field(description="Where the store holds it: the OCI manifest digest, or `<slug>/<sha256>/` under the store root.")
    files: dict[str, str] | None = Field(None, description="The full-precision model's files (their canonical hash is inputs.model.files_sha256).")
    sizes: dict[str, int] | None = None


class HubModel(_Closed):
    source: str
    revision: str | None = Field(description="A hub model is addressed by its pinned revision; it is not copied into the store.")


class StoreRecord(_Closed):
    """Written by `quantgate push` after the upload (outside results_sha256: the results do not change,
    and every field is checked against the store and the hashed lock by `verify --remote`)."""

    kind: str = Field(description="oci | s3 | gs | file | folder. The store URL itself lives in quantgate.yaml, never here.")
    quantized: StoredArtifact | None
    full_precision: StoredArtifact | HubModel | None


class Final(_Closed):
    candidate: CandidatePlay
    method: str
    weights: str
    activations: str
    group_size: int | None
    backend: str
    backend_version: str
    config: dict[str, Any]
    calibration: Calibration
    protected_layers: list[str] = Field(description="Exact module names kept at full precision.")
    quantized_layers: int
    artifact: Artifact


class QualityDelta(_Closed):
    baseline: int | float
    candidate: int | float
    drop: int | float = Field(description="How much worse the candidate is (direction-aware; relative when gate.relative).")


class PerfDelta(_Closed):
    baseline: int | float | None
    candidate: int | float | None
    ratio: int | float | None


class Deltas(_Closed):
    metric: str
    lower_is_better: bool
    quality: dict[Literal["overall", "hardest"], QualityDelta]
    performance: dict[Literal["latency_p50_ms", "latency_p95_ms", "peak_memory_bytes", "footprint_bytes"], PerfDelta]


class Evaluations(_Closed):
    full: int = Field(description="Full evaluations spent on the evaluation set, all plays together.")
    by_play: dict[str, int]


class SignoffRecord(_Closed):
    role: Role
    login: str
    review_id: int | None
    commit_sha: str | None


class Signoff(_Closed):
    status: SignoffStatus
    head_sha: str | None
    records: list[SignoffRecord]
    missing: list[Role]


class Lock(_Closed):
    """``manifests/<name>.lock.yaml``: written by ``quantgate run``; only ``signoff`` is filled later."""

    schema_version: Literal[1]
    name: str
    manifest: ManifestRef
    verdict: Verdict
    next_step: str | None = Field(description="What a human can do when the verdict is refused.")
    inputs: Inputs
    plays: Plays
    final: Final | None
    deltas: Deltas | None
    evaluations: Evaluations
    results_sha256: str = Field(description="sha256 of canonical JSON of everything but results_sha256, environment, signoff and store.")
    environment: dict[str, Any] = Field(description="Where the numbers were measured (outside results_sha256: it differs by machine).")
    signoff: Signoff
    store: StoreRecord | None = None


    def play(self, name: str) -> PlayRecord:
        return getattr(self.plays, Play(name).value)

    def calibration_fit(self, ptq_key: str) -> CalibrationFit | None:
        """The calibration fit the ptq play recorded under ``ptq_key`` (None: other key, or none recorded)."""
        entry = self.plays.ptq
        if entry.cache_key != ptq_key or not entry.result or not entry.result.get("calibration_fit"):
            return None
        return CalibrationFit.model_validate(entry.result["calibration_fit"])

    def data(self) -> dict[str, Any]:
        """The lock as the plain data it was written from (for templates and rewriting)."""
        return self.model_dump(mode="json", exclude_unset=True)

    @property
    def locked(self) -> bool:
        return self.verdict == Verdict.LOCKED

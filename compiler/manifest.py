"""The manifest people write: pydantic models, frozen, unknown keys refused.

One name per concept: the same key names appear in the lock, the plan, the code and the docs.
Semantic checks that need only the manifest itself live here as validators; checks that need the
repository (paths exist, names unique, the trust allowlist) live in ``compiler.validate``.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from compiler.quantities import parse_duration, parse_size

API_VERSION = "quantgate/v1"
KIND = "QuantizationManifest"

Task = Literal["sentence-similarity", "text-classification", "causal-lm"]
Metric = Literal["spearman", "pearson", "accuracy", "macro_f1", "perplexity", "exact_match"]
DatasetFormat = Literal["tsv", "csv", "jsonl", "text"]
Role = Literal["ml_engineer", "platform_lead", "product_owner", "engineering_manager", "on_call"]

#: Which metrics each task can report, the first being the default.
TASK_METRICS: dict[str, tuple[str, ...]] = {
    "sentence-similarity": ("spearman", "pearson"),
    "text-classification": ("accuracy", "macro_f1"),
    "causal-lm": ("perplexity", "exact_match"),
}
#: Metrics where a lower value is better; every other metric is higher-is-better.
LOWER_IS_BETTER = frozenset({"perplexity"})
#: The column roles each task needs in its evaluation dataset (``text`` format needs none).
TASK_COLUMNS: dict[str, tuple[str, ...]] = {
    "sentence-similarity": ("score", "text_a", "text_b"),
    "text-classification": ("label", "text"),
    "causal-lm": ("prompt", "completion"),
}
OPTIONAL_COLUMNS: dict[str, tuple[str, ...]] = {
    "sentence-similarity": ("id",),
    "text-classification": ("text_b", "id"),
    "causal-lm": ("id",),
}

_LOGIN = r"[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38}"
_TEAM = r"[A-Za-z0-9_.-]{1,100}"
OWNER_RE = re.compile(rf"^@(?:{_LOGIN}|{_LOGIN}/{_TEAM})$")
HUB_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
SHA_RE = re.compile(r"^[0-9a-f]{40}$")
NAME_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


class Strict(BaseModel):
    """Base for every manifest section: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Metadata(Strict):
    name: str = Field(description="Unique slug across manifests/ (lowercase letters, digits, '-').")
    description: str = Field("", max_length=2000, description="One line for humans; rendered escaped.")

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not NAME_RE.match(v):
            raise ValueError("must be 1-63 lowercase letters, digits or '-', starting and ending alphanumeric")
        return v


class Owners(Strict):
    """GitHub logins (``@alice``) or teams (``@org/team``) per playbook role."""

    ml_engineer: list[str] = Field(default_factory=list, description="Signs baseline, ptq, gate, lock.")
    platform_lead: list[str] = Field(default_factory=list, description="Signs the envelope.")
    product_owner: list[str] = Field(default_factory=list, description="Co-signs the gate, reviews the lock.")
    engineering_manager: list[str] = Field(default_factory=list, description="Signs QAT.")
    on_call: list[str] = Field(default_factory=list, description="Receives rollback alerts.")

    @field_validator("*")
    @classmethod
    def _owners(cls, v: list[str]) -> list[str]:
        for owner in v:
            if not OWNER_RE.match(owner):
                raise ValueError(f"{owner!r} is not a GitHub login ('@alice') or team ('@org/team')")
        if len(set(o.lower() for o in v)) != len(v):
            raise ValueError("lists the same owner twice")
        return v

    def of(self, role: str) -> list[str]:
        return list(getattr(self, role))


class Model(Strict):
    source: str = Field(description="Hub id ('org/name', needs a pinned revision) or a repo-relative directory ('./models/x').")
    revision: str | None = Field(None, description="Full 40-hex commit sha; required for hub ids, refused for directories.")
    task: Task
    gguf_file: str | None = Field(None, description="GGUF file inside the source to load (transformers gguf_file=).")
    trust_remote_code: bool = Field(False, description="Only honoured when quantgate.yaml allowlists this exact source.")

    @property
    def is_local(self) -> bool:
        return self.source.startswith("./")

    @model_validator(mode="after")
    def _revision(self) -> "Model":
        if not self.is_local and not HUB_ID_RE.match(self.source):
            raise ValueError(f"source: {self.source!r} is neither a hub id ('org/name') nor a repo-relative directory ('./models/name')")
        if self.is_local:
            if self.revision is not None:
                raise ValueError("revision: a repo-relative model directory is pinned by its content; remove 'revision'")
        elif self.revision is None:
            raise ValueError("revision: a hub model needs a pinned 40-hex commit sha")
        elif not SHA_RE.match(self.revision):
            raise ValueError(f"revision: {self.revision!r} is not a full 40-hex commit sha (branch and tag names move)")
        return self


class DatasetRef(Strict):
    path: str = Field(description="Repo-relative file.")
    format: DatasetFormat
    columns: dict[str, Union[int, str]] = Field(default_factory=dict, description="role -> 0-based column index (tsv/csv without header) or name (csv header / jsonl key).")
    header: bool = Field(False, description="tsv/csv: the first row names the columns.")
    limit: int | None = Field(None, gt=0, description="Use only the first N examples (deterministic order).")


class Evaluation(Strict):
    dataset: DatasetRef
    metric: Metric
    hardest_fraction: float = Field(0.10, gt=0, le=0.5, description="Share of examples the full-precision model does worst on; gated separately.")
    stride: int | None = Field(None, gt=0, description="causal-lm text: sliding-window stride in tokens (default: sequence_length // 2).")


class Envelope(Strict):
    device: Literal["cpu", "cuda"] = "cpu"
    memory_per_device: str = Field(description="e.g. '1GiB', '512MB'.")
    headroom: float = Field(0.25, ge=0, lt=1, description="Share kept free for KV cache and activations.")
    batch_size: int = Field(1, gt=0)
    sequence_length: int = Field(128, gt=0)
    latency_p95_ms: float | None = Field(None, gt=0)

    @field_validator("memory_per_device")
    @classmethod
    def _size(cls, v: str) -> str:
        parse_size(v)
        return v

    @property
    def memory_bytes(self) -> int:
        return parse_size(self.memory_per_device)


class Calibration(Strict):
    dataset: DatasetRef
    samples: int = Field(256, gt=0, le=100_000)
    seed: int = 0


class Quantization(Strict):
    weights: Literal["int8", "int4", "fp8"]
    activations: Literal["none", "dynamic-int8"] = "none"
    group_size: int | None = Field(None, description="Weight group size (int4); None: per channel.")
    backend: Literal["auto", "torchao", "onnxruntime", "optimum-quanto"] = "auto"
    calibration: Calibration
    protected_layers: list[str] = Field(default_factory=list, description="fnmatch globs over module names kept at full precision; each must match.")

    @field_validator("group_size")
    @classmethod
    def _group(cls, v: int | None) -> int | None:
        if v is not None and (v < 8 or v & (v - 1)):
            raise ValueError("must be a power of two, at least 8")
        return v


class Gate(Strict):
    max_drop: float = Field(ge=0, description="Allowed degradation of the primary metric against the baseline.")
    hardest_max_drop: float = Field(ge=0, description="Allowed degradation on the hardest slice.")
    close_margin: float = Field(ge=0, description="Missed by at most this: 'close' (mixed precision); beyond: 'broken'.")
    relative: bool = Field(False, description="Drops are fractions of the baseline value instead of metric units.")

    @model_validator(mode="after")
    def _margin(self) -> "Gate":
        if self.close_margin < self.max_drop:
            raise ValueError(f"close_margin ({self.close_margin}) must be at least max_drop ({self.max_drop})")
        return self


class MixedPrecision(Strict):
    enabled: bool = True
    max_protected_fraction: float = Field(0.3, gt=0, le=1, description="Most of the quantizable layers that may stay at full precision.")


class Qat(Strict):
    enabled: bool = False
    justification: str | None = Field(None, description="Written business case; required when enabled.")
    steps: int = Field(200, gt=0, le=100_000)
    learning_rate: float = Field(1e-5, gt=0, lt=1)
    seed: int = 0

    @model_validator(mode="after")
    def _justified(self) -> "Qat":
        if self.enabled and not (self.justification or "").strip():
            raise ValueError("justification: QAT is a training run; enabling it needs a written justification")
        return self


class RollbackFor(Strict):
    """How long a breach must hold before it fires (Prometheus ``for:``)."""

    quality_floor: str = "10m"
    error_rate_ceiling: str = "5m"
    latency_p95_ms: str = "5m"

    @field_validator("*")
    @classmethod
    def _duration(cls, v: str) -> str:
        parse_duration(v)
        return v


class Rollback(Strict):
    quality_floor: float | None = Field(None, description="Live quality below this reverts to full precision.")
    error_rate_ceiling: float | None = Field(None, ge=0, le=1, description="Share of failed requests above this reverts.")
    latency_p95_ms: float | None = Field(None, gt=0, description="Live p95 latency above this reverts.")
    for_: RollbackFor = Field(default_factory=RollbackFor, alias="for")


class Signoff(Strict):
    distinct_signers: bool = Field(True, description="Co-signs (e.g. gate: ml_engineer + product_owner) need distinct people.")


class Manifest(Strict):
    api_version: Literal["quantgate/v1"] = Field(alias="apiVersion")
    kind: Literal["QuantizationManifest"]
    metadata: Metadata
    owners: Owners
    model: Model
    evaluation: Evaluation
    envelope: Envelope
    quantization: Quantization
    gate: Gate
    mixed_precision: MixedPrecision = Field(default_factory=MixedPrecision)
    qat: Qat = Field(default_factory=Qat)
    rollback: Rollback = Field(default_factory=Rollback)
    signoff: Signoff = Field(default_factory=Signoff)

    @model_validator(mode="after")
    def _consistent(self) -> "Manifest":
        task = self.model.task
        if self.evaluation.metric not in TASK_METRICS[task]:
            raise ValueError(f"evaluation.metric: {self.evaluation.metric!r} does not apply to task {task!r}; use one of {', '.join(TASK_METRICS[task])}")
        if self.qat.enabled and not self.owners.engineering_manager:
            raise ValueError("owners.engineering_manager: QAT is enabled, so an engineering manager must sign it")
        return self

"""The manifest people write: pydantic models, frozen, unknown keys refused.

One name per concept: the same key names appear in the lock, the plan, the code and the docs.
Semantic checks that need only the manifest itself live here as validators; checks that need the
repository (paths exist, names unique, the trust allowlist) live in ``compiler.manifest.checks``.
"""

from __future__ import annotations

import difflib
import re
from typing import Literal, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from compiler.errors import FieldErrors
from compiler.manifest.quantities import parse_duration, parse_size
from compiler.vocabulary import GITHUB_LOGIN, PLAY_SIGNERS, Play
from runners.base import DEFAULT_MIN_FIT
from runners.registry import ALGORITHMS, BACKEND_NAMES

API_VERSION = "quantgate/v1"
KIND = "QuantizationManifest"

Task = Literal["sentence-similarity", "text-classification", "causal-lm"]
Metric = Literal["spearman", "pearson", "accuracy", "macro_f1", "perplexity", "exact_match"]
DatasetFormat = Literal["tsv", "csv", "jsonl", "text"]

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
#: The input columns a calibration dataset needs per task (labels are never needed to calibrate).
CALIBRATION_COLUMNS: dict[str, tuple[str, ...]] = {
    "sentence-similarity": ("text_a",),
    "text-classification": ("text",),
    "causal-lm": ("prompt",),
}

_TEAM = r"[A-Za-z0-9_.-]{1,100}"
OWNER_RE = re.compile(rf"^@(?:{GITHUB_LOGIN}|{GITHUB_LOGIN}/{_TEAM})$")
HUB_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
SHA_RE = re.compile(r"^[0-9a-f]{40}$")
NAME_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_GLOB_CHARS_RE = re.compile(r"^[A-Za-z0-9_.*?\[\]!-]+$")



class Strict(BaseModel):
    """Base for every manifest section: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def _relative_path_problem(text: str) -> str | None:
    """Why ``text`` is not a repo-relative path that stays inside the repository (None: fine)."""
    if not text.strip():
        return "must not be empty"
    if text.startswith(("/", "\\", "~")) or re.match(r"^[A-Za-z]:", text):
        return f"{text!r} is absolute; use a path relative to the repository root"
    parts = re.split(r"[/\\]", text)
    if ".." in parts:
        return f"{text!r} leaves the repository ('..'); data and models must live inside it"
    if "\\" in text:
        return f"{text!r} uses '\\'; write paths with '/'"
    return None


class Metadata(Strict):
    """Who this manifest is about."""

    name: str = Field(description="Unique slug across manifests/ (1-63 lowercase letters, digits, '-'); names the lock, report and artifacts.")
    description: str = Field("", max_length=2000, description="One line for humans; rendered escaped in PR comments and reports.")

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not NAME_RE.match(v):
            raise ValueError(f"{v!r}: a name is 1-63 lowercase letters, digits or '-', starting and ending with a letter or digit")
        return v


class Owners(Strict):
    """GitHub logins (``@alice``) or teams (``@org/team``) per playbook role; their pull-request
    reviews are the sign-offs. Every role that signs a play that can run needs at least one owner."""

    ml_engineer: list[str] = Field(default_factory=list, description="Signs baseline, ptq, mixed precision, gate and lock.")
    platform_lead: list[str] = Field(default_factory=list, description="Signs the envelope.")
    product_owner: list[str] = Field(default_factory=list, description="Co-signs the gate, reviews the lock and the rollback rules.")
    engineering_manager: list[str] = Field(default_factory=list, description="Signs QAT (required when qat.enabled).")
    on_call: list[str] = Field(default_factory=list, description="Receives rollback alerts (required when rollback has a rule).")

    @field_validator("*")
    @classmethod
    def _owners(cls, v: list[str]) -> list[str]:
        problems = []
        seen: set[str] = set()
        for i, owner in enumerate(v):
            if not OWNER_RE.match(owner):
                hint = " (add the '@')" if OWNER_RE.match("@" + owner) else ""
                problems.append(((i,), f"{owner!r} is not a GitHub login ('@alice') or team ('@org/team'){hint}"))
            elif owner.lower() in seen:
                problems.append(((i,), f"{owner!r} is listed twice"))
            seen.add(owner.lower())
        if problems:
            raise FieldErrors(*problems)
        return v

    def of(self, role: str) -> list[str]:
        return list(getattr(self, role))


class Model(Strict):
    """The full-precision model to quantize. Hub ids are pinned to a commit; a repo-relative directory
    (``./models/x``, typically git-ignored and materialised by a setup step) is pinned by its content."""

    source: str = Field(description="Hub id ('org/name', needs a pinned revision; read through the HF cache, HF_HUB_OFFLINE honoured) or a repo-relative directory ('./models/x').")
    revision: str | None = Field(None, description="Full 40-hex commit sha; required for hub ids, refused for directories.")
    task: Task = Field(description="sentence-similarity | text-classification | causal-lm; decides the metrics and dataset columns.")
    gguf_file: str | None = Field(None, description="GGUF file inside the source to load (transformers gguf_file=); a file name, no directories.")
    trust_remote_code: bool = Field(False, description="Run the model repository's own Python code. Refused unless quantgate.yaml lists this exact source in trusted_remote_code.")

    @property
    def is_local(self) -> bool:
        return self.source.startswith("./")

    @model_validator(mode="after")
    def _revision(self) -> Model:
        problems = []
        if self.is_local:
            why = _relative_path_problem(self.source[2:] or "")
            if why:
                problems.append(("source", why))
            if self.revision is not None:
                problems.append(("revision", "a repo-relative model directory is pinned by its content; remove 'revision'"))
        elif not HUB_ID_RE.match(self.source):
            hint = " (a local directory starts with './')" if "/" in self.source and not self.source.startswith("/") else ""
            problems.append(("source", f"{self.source!r} is neither a hub id ('org/name') nor a repo-relative directory ('./models/name'){hint}"))
        elif self.revision is None:
            problems.append(("source", "a hub model needs 'revision:' with a pinned 40-hex commit sha"))
        elif not SHA_RE.match(self.revision):
            problems.append(("revision", f"{self.revision!r} is not a full 40-hex commit sha (branch and tag names move)"))
        if self.gguf_file is not None and (not self.gguf_file.endswith(".gguf") or re.search(r"[/\\]", self.gguf_file)):
            problems.append(("gguf_file", f"{self.gguf_file!r}: give the file name of a '.gguf' file inside the source, no directories"))
        if problems:
            raise FieldErrors(*problems)
        return self


class DatasetRef(Strict):
    """A data file in the repository. ``tsv``/``csv``: one example per row, columns by 0-based index
    (or by name with ``header: true``); ``jsonl``: one object per line, columns by key; ``text``
    (causal-lm only): one document, cut into windows of ``envelope.sequence_length`` tokens."""

    path: str = Field(description="Repo-relative file ('data/stsb/sts-test.tsv'); no absolute paths, no '..'.")
    format: DatasetFormat = Field(description="tsv | csv | jsonl | text.")
    columns: dict[str, Union[int, str]] = Field(default_factory=dict, description="Column role -> 0-based index (tsv/csv without header) or name (tsv/csv with header, jsonl key). Roles per task: sentence-similarity score, text_a, text_b (id); text-classification label, text (text_b, id); causal-lm prompt, completion (id). Empty for format text.")
    header: bool = Field(False, description="tsv/csv: the first row names the columns.")
    limit: int | None = Field(None, gt=0, description="Use only the first N examples in file order (for format text: the first N token windows).")
    skip: int = Field(0, ge=0, description=(
        "Pass over the first N examples before any is used (before limit). For format text: N token windows: evaluation windows "
        "as evaluation.stride advances them, calibration windows end to end. Keeps a calibration set disjoint from the evaluation "
        "set drawn from the same file."))

    @field_validator("path")
    @classmethod
    def _path(cls, v: str) -> str:
        why = _relative_path_problem(v)
        if why:
            raise ValueError(why)
        return v

    def column_problems(self, required: tuple[str, ...], allowed: tuple[str, ...], task: str) -> list[tuple[tuple, str]]:
        """Problems with ``columns`` for a dataset that must provide ``required`` roles (relative
        locations for ``FieldErrors``)."""
        out: list[tuple[tuple, str]] = []
        if self.format == "text":
            if self.columns:
                out.append((("columns",), "format text has no columns (the whole file is one document); remove 'columns'"))
            if task != "causal-lm":
                out.append((("format",), f"format text is for causal-lm only; task {task!r} needs tsv, csv or jsonl"))
            return out
        for role, ref in self.columns.items():
            if role not in allowed:
                close = [a for a in allowed if a.replace("_", "") == role.replace("_", "")] or difflib.get_close_matches(role, allowed, 1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                out.append((("columns", role, FieldErrors.KEY), f"unknown column role {role!r} for task {task!r}{hint}; roles: {', '.join(allowed)}"))
            elif self.format == "jsonl" or self.header:
                if not isinstance(ref, str):
                    out.append((("columns", role), f"{'jsonl' if self.format == 'jsonl' else 'a file with header: true'} names columns: give the column name, not an index"))
            elif not isinstance(ref, int) or ref < 0:
                out.append((("columns", role), f"{self.format} without header: give a 0-based column index (or set header: true to use names)"))
        missing = [r for r in required if r not in self.columns]
        if missing:
            out.append((("columns",), f"task {task!r} needs column{'s' if len(missing) > 1 else ''} {', '.join(missing)}"))
        return out


#: What ``evaluation.generation.format`` checks in a greedy reply (``runners.generate.format_valid``).
GenerationFormat = Literal["none", "json"]


class Generation(Strict):
    """causal-lm: greedy replies to a fixed prompt set, baseline against candidate (formatting drift).

    Each prompt is wrapped in the tokenizer's chat template when the tokenizer has one (instruct
    models answer in their trained format), else tokenized as written."""

    prompts: DatasetRef = Field(description="The prompt set: jsonl, tsv or csv with a 'prompt' column (and optionally 'id'); one prompt per row.")
    max_new_tokens: int = Field(24, gt=0, le=256, description="Greedy tokens generated per prompt (fewer when the model ends its reply); each is one forward over the prompt so far, so keep it small.")
    compare_tokens: int | None = Field(None, gt=0, description="N: a prompt agrees when the candidate's first N generated tokens equal the baseline's (default: max_new_tokens).")
    format: GenerationFormat = Field("none", description="none | json: json counts a reply as valid when it opens (after whitespace and an optional Markdown code fence) with a complete JSON object or array; text after it is ignored.")

    @model_validator(mode="after")
    def _compare(self) -> Generation:
        if self.compare_tokens is not None and self.compare_tokens > self.max_new_tokens:
            raise FieldErrors(("compare_tokens", f"{self.compare_tokens} is more than max_new_tokens ({self.max_new_tokens}): only generated tokens can be compared"))
        return self

    @property
    def compared(self) -> int:
        """N, the tokens compared per prompt."""
        return self.compare_tokens if self.compare_tokens is not None else self.max_new_tokens


class Evaluation(Strict):
    """Plays 1 and 4: the fixed evaluation set the team controls, and the primary metric."""

    dataset: DatasetRef = Field(description="The evaluation set.")
    metric: Metric = Field(description="Primary metric; must fit the task (sentence-similarity: spearman|pearson, text-classification: accuracy|macro_f1, causal-lm: perplexity|exact_match).")
    hardest_fraction: float = Field(0.10, gt=0, le=0.5, description="Share of examples the full-precision model does worst on; gated separately with gate.hardest_max_drop.")
    stride: int | None = Field(None, gt=0, description="causal-lm with format text: tokens each window advances (default envelope.sequence_length // 2); each window scores only its tokens not scored by the previous one.")
    position_buckets: int = Field(4, ge=1, le=16, description="causal-lm with format text: perplexity is also reported per position in the window, in this many equal buckets of envelope.sequence_length (every window's every position; the last bucket is the late context gate.late_context_max_drop gates).")
    generation: Generation | None = Field(None, description="causal-lm: greedy replies to a fixed prompt set, compared with the baseline's (gate.min_generation_agreement, gate.max_format_drop).")


class Envelope(Strict):
    """Play 2: the deployment target, checked before anything is quantized."""

    device: Literal["cpu", "cuda"] = Field("cpu", description="cpu | cuda.")
    memory_per_device: str = Field(description="Memory budget of one device, e.g. '1GiB', '512MB'.")
    headroom: float = Field(0.25, ge=0, lt=1, description="Share of memory_per_device kept free as a safety margin beyond the estimated weights, KV cache and activations.")
    batch_size: int = Field(1, gt=0, description="Serving batch size (also used for evaluation and latency).")
    sequence_length: int = Field(128, gt=0, description="Tokens per input (truncation length; window length for format text).")
    latency_p95_ms: float | None = Field(None, gt=0, description="Latency target per batch at p95, in milliseconds; none: not checked.")

    @field_validator("memory_per_device")
    @classmethod
    def _size(cls, v: str) -> str:
        parse_size(v)
        return v

    @property
    def memory_bytes(self) -> int:
        return parse_size(self.memory_per_device)


class Calibration(Strict):
    """Real inputs the quantizer observes; a deliberate, recorded choice (play 3)."""

    dataset: DatasetRef = Field(description="Calibration inputs (labels not needed: only the text columns are read).")
    samples: int = Field(256, gt=0, le=100_000, description="How many examples (windows for format text) to draw.")
    seed: int = Field(0, description="Seed for drawing the samples.")
    production: DatasetRef | None = Field(None, description="A sample of production inputs (same columns as the calibration set); the calibration fit is also measured against it, and the lower figure counts.")
    min_fit: float = Field(DEFAULT_MIN_FIT, ge=0, le=1, description=f"Calibration fit (0-1, 1: the calibration set looks like the evaluation set and production inputs to the model) below which the calibration set is flagged before quantizing (default {DEFAULT_MIN_FIT}; docs/manifest.md).")
    on_low_fit: Literal["warn", "fail"] = Field("warn", description="warn: the plan, run and report warn about a low fit; fail: the ptq play stops before quantizing.")


class Quantization(Strict):
    """Play 3: the target precision and how to get there."""

    weights: Literal["int8", "int4", "fp8"] = Field(description="Weight precision: int8 | int4 | fp8 (fp8 where a backend supports it).")
    activations: Literal["none", "dynamic-int8"] = Field("none", description="none (weight-only, the safest) | dynamic-int8.")
    group_size: int | None = Field(None, description="Weight group size (a power of two, at least 8; typical for int4); none: per channel.")
    algorithm: Literal[ALGORITHMS] = Field(  # type: ignore[valid-type]
        "rtn", description=(
            "How weights are rounded. rtn: each to its nearest grid point, no data needed (the cheap first try; int8 weight-only "
            "is lossless with it). gptq: column by column, spreading each rounding error over the columns not yet rounded using the "
            "calibration set's input statistics (causal-lm; worth it for int4, minutes on a CPU). awq, smoothquant: activation-aware "
            "(llm-compressor), built on an accelerator only: plan refuses them on a cpu envelope."))
    backend: Literal[("auto", *BACKEND_NAMES)] = Field(  # type: ignore[valid-type]
        "auto", description="Backend (the registry's names); auto picks the first registered backend whose declared capabilities cover this task, device, precision and methods.")
    calibration: Calibration = Field(description="Calibration data.")
    protected_layers: list[str] = Field(default_factory=list, description="fnmatch globs over module names kept at full precision ('pooler.*'); each must match at least one layer.")

    @field_validator("group_size")
    @classmethod
    def _group(cls, v: int | None) -> int | None:
        if v is not None and (v < 8 or v & (v - 1)):
            raise ValueError(f"{v} is not a power of two of at least 8 (e.g. 32, 64, 128)")
        return v

    @field_validator("protected_layers")
    @classmethod
    def _globs(cls, v: list[str]) -> list[str]:
        problems = []
        for i, glob in enumerate(v):
            why = _glob_problem(glob)
            if why:
                problems.append(((i,), why))
            elif glob in v[:i]:
                problems.append(((i,), f"{glob!r} is listed twice"))
        if problems:
            raise FieldErrors(*problems)
        return v


def _glob_problem(glob: str) -> str | None:
    """Why ``glob`` is not a sane fnmatch pattern over dotted module names (None: fine)."""
    if not glob:
        return "an empty pattern matches nothing"
    if not _GLOB_CHARS_RE.match(glob):
        return f"{glob!r}: module-name globs use letters, digits, '_', '.', '-', '*', '?' and [...] only"
    depth = 0
    for ch in glob:
        if ch == "[":
            if depth:
                return f"{glob!r}: '[' inside [...]"
            depth = 1
        elif ch == "]":
            if not depth:
                return f"{glob!r}: ']' without '['"
            depth = 0
    if depth:
        return f"{glob!r}: '[' is never closed"
    if ".." in glob or glob.startswith(".") or glob.endswith("."):
        return f"{glob!r}: module names have no empty parts"
    if set(glob) <= {"*", "."}:
        return f"{glob!r} protects every layer: use quantization: none instead, or name the layers"
    return None


class Gate(Strict):
    """Play 4: how much quality may be lost against the baseline, overall and on the hardest slice."""

    max_drop: float = Field(ge=0, description="Allowed degradation of the primary metric against the baseline (metric units, or a fraction with relative: true).")
    hardest_max_drop: float = Field(ge=0, description="Allowed degradation on the hardest slice (evaluation.hardest_fraction).")
    close_margin: float = Field(ge=0, description="A candidate that misses max_drop by at most this is 'close' (mixed precision runs); beyond, 'broken' (QAT or stop). At least max_drop.")
    relative: bool = Field(False, description="Drops are fractions of the baseline value instead of metric units (use for perplexity).")
    accept_wrong_move: str | None = Field(None, description=(
        "Lock a candidate even when quantizing is the wrong move (the envelope said wrong-move, or the candidate is slower at "
        "p95 than full precision while full precision already fits the envelope's memory). The written reason reviewers read; "
        "without it such a candidate does not pass the gate."))
    min_generation_agreement: float | None = Field(None, ge=0, le=1, description=(
        "causal-lm with evaluation.generation: the generation agreement (share of prompts whose first compare_tokens greedy "
        "tokens equal the baseline's exactly) must be at least this; none: not gated."))
    max_format_drop: float | None = Field(None, ge=0, le=1, description=(
        "causal-lm with evaluation.generation.format: the candidate's format-valid rate may be at most this below the "
        "baseline's (a share of prompts, absolute: 0.1 = 10 points); none: not gated."))
    late_context_max_drop: float | None = Field(None, ge=0, description=(
        "causal-lm with format text: allowed perplexity rise in the last position bucket (evaluation.position_buckets), "
        "in perplexity units or, with relative: true, a fraction of the baseline's last bucket; none: not gated."))

    @model_validator(mode="after")
    def _margin(self) -> Gate:
        if self.close_margin < self.max_drop:
            raise FieldErrors(("close_margin", f"{self.close_margin} must be at least max_drop ({self.max_drop})"))
        if self.accept_wrong_move is not None and not self.accept_wrong_move.strip():
            raise FieldErrors(("accept_wrong_move", "accepting a wrong move needs a written reason (why lock a candidate that buys nothing the envelope asks for)"))
        return self


class MixedPrecision(Strict):
    """Play 5: keep the most sensitive layers at full precision when PTQ is close."""

    enabled: bool = Field(True, description="Run play 5 when the gate says 'close'.")
    max_protected_fraction: float = Field(0.3, gt=0, le=1, description="Most of the quantizable layers that may stay at full precision.")


class Qat(Strict):
    """Play 6: quantization-aware training; only with a written business case and a manager's sign-off."""

    enabled: bool = Field(False, description="Allow play 6 when mixed precision still misses.")
    justification: str | None = Field(None, description="Written business case; required when enabled.")
    steps: int = Field(200, gt=0, le=100_000, description="Training steps.")
    learning_rate: float = Field(1e-5, gt=0, lt=1, description="Optimizer learning rate.")
    seed: int = Field(0, description="Training seed.")

    @model_validator(mode="after")
    def _justified(self) -> Qat:
        if self.enabled and not (self.justification or "").strip():
            raise FieldErrors(("justification", "QAT is a training run: enabling it needs a written justification"))
        return self


class RollbackFor(Strict):
    """How long a breach must hold before it fires (Prometheus ``for:``)."""

    quality_floor: str = Field("10m", description="Duration like '10m', '1h30m', '30s'.")
    error_rate_ceiling: str = Field("5m", description="Duration like '5m'.")
    latency_p95_ms: str = Field("5m", description="Duration like '5m'.")

    @field_validator("*")
    @classmethod
    def _duration(cls, v: str) -> str:
        parse_duration(v)
        return v


class Rollback(Strict):
    """Play 8: rules decided in advance; a breach reverts to the full-precision artifact."""

    quality_floor: float | None = Field(None, description="Live quality worse than this reverts (below it; above it for lower-is-better metrics such as perplexity).")
    error_rate_ceiling: float | None = Field(None, ge=0, le=1, description="Share of failed requests above this reverts.")
    latency_p95_ms: float | None = Field(None, gt=0, description="Live p95 latency above this reverts.")
    for_: RollbackFor = Field(default_factory=RollbackFor, alias="for", description="How long each breach must hold.")

    @property
    def has_rules(self) -> bool:
        return any(v is not None for v in (self.quality_floor, self.error_rate_ceiling, self.latency_p95_ms))


class Signoff(Strict):
    """How pull-request reviews count as sign-offs."""

    distinct_signers: bool = Field(True, description="Co-signs (e.g. gate: ml_engineer + product_owner) need distinct people.")


class Manifest(Strict):
    """One model's quantization request: what the team wants, not how to get it."""

    api_version: Literal["quantgate/v1"] = Field(alias="apiVersion", description="Always quantgate/v1.")
    kind: Literal["QuantizationManifest"] = Field(description="Always QuantizationManifest.")
    metadata: Metadata = Field(description="Name and description.")
    owners: Owners = Field(description="Who signs which play.")
    model: Model = Field(description="The full-precision model.")
    evaluation: Evaluation = Field(description="Evaluation set and metric (plays 1 and 4).")
    envelope: Envelope = Field(description="Deployment target (play 2).")
    quantization: Quantization = Field(description="Target precision, backend, calibration (play 3).")
    gate: Gate = Field(description="Quality tolerance (play 4).")
    mixed_precision: MixedPrecision = Field(default_factory=MixedPrecision, description="Play 5.")
    qat: Qat = Field(default_factory=Qat, description="Play 6.")
    rollback: Rollback = Field(default_factory=Rollback, description="Play 8 rules.")
    signoff: Signoff = Field(default_factory=Signoff, description="Sign-off policy.")

    @property
    def lower_is_better(self) -> bool:
        return self.evaluation.metric in LOWER_IS_BETTER

    def required_roles(self) -> dict[str, tuple[str, ...]]:
        """role -> the plays it signs, for the plays this manifest can run."""
        return required_roles(self.mixed_precision, self.qat, self.rollback)

    @model_validator(mode="after")
    def _consistent(self) -> Manifest:
        problems = consistency_problems({name: getattr(self, name) for name in type(self).model_fields})
        if problems:
            raise FieldErrors(*problems)
        return self


def required_roles(mixed_precision: MixedPrecision, qat: Qat, rollback: Rollback) -> dict[str, tuple[str, ...]]:
    """role -> the plays it signs, for the plays that can run."""
    plays = [Play.BASELINE, Play.ENVELOPE, Play.PTQ, Play.GATE, Play.LOCK]
    if mixed_precision.enabled:
        plays.append(Play.MIXED_PRECISION)
    if qat.enabled:
        plays.append(Play.QAT)
    if rollback.has_rules:
        plays.append(Play.MONITOR)
    roles: dict[str, tuple[str, ...]] = {}
    for play in plays:
        for role in PLAY_SIGNERS[play]:
            roles[role.value] = roles.get(role.value, ()) + (play.value,)
    return roles


def consistency_problems(parts: dict) -> list[tuple[tuple, str]]:
    """Checks across sections, as ``(location, message)``. ``parts`` maps section names to validated
    section models; a check whose sections are absent (invalid) is skipped, so the loader can run
    these even when other sections have errors and report everything in one pass."""
    problems: list[tuple[tuple, str]] = []
    model, evaluation, envelope = parts.get("model"), parts.get("evaluation"), parts.get("envelope")
    quantization, owners = parts.get("quantization"), parts.get("owners")
    task = model.task if model is not None else None
    if task and evaluation is not None:
        if evaluation.metric not in TASK_METRICS[task]:
            problems.append((("evaluation", "metric"), f"{evaluation.metric!r} does not apply to task {task!r}; use one of {', '.join(TASK_METRICS[task])}"))
        dataset = evaluation.dataset
        allowed = TASK_COLUMNS[task] + OPTIONAL_COLUMNS[task]
        for at, message in dataset.column_problems(TASK_COLUMNS[task], allowed, task):
            problems.append((("evaluation", "dataset") + at, message))
        if dataset.format == "text" and task == "causal-lm" and evaluation.metric != "perplexity":
            problems.append((("evaluation", "metric"), "format text has no reference completions: the metric is perplexity"))
        if evaluation.stride is not None and dataset.format != "text":
            problems.append((("evaluation", "stride"), "stride applies to causal-lm evaluation on format text only"))
    if evaluation is not None and envelope is not None and evaluation.stride is not None:
        if evaluation.stride > envelope.sequence_length:
            problems.append((("evaluation", "stride"), f"{evaluation.stride} is longer than envelope.sequence_length ({envelope.sequence_length}): tokens between windows would never be scored"))
    problems.extend(causal_lm_problems(task, evaluation, envelope, parts.get("gate")))
    if task and quantization is not None:
        allowed = TASK_COLUMNS[task] + OPTIONAL_COLUMNS[task]
        for at, message in quantization.calibration.dataset.column_problems(CALIBRATION_COLUMNS[task], allowed, task):
            problems.append((("quantization", "calibration", "dataset") + at, message))
        if quantization.calibration.production is not None:
            for at, message in quantization.calibration.production.column_problems(CALIBRATION_COLUMNS[task], allowed, task):
                problems.append((("quantization", "calibration", "production") + at, message))
    sections = [parts.get(name) for name in ("mixed_precision", "qat", "rollback")]
    if owners is not None and all(section is not None for section in sections):
        for role, plays in required_roles(*sections).items():
            if not owners.of(role):
                why = {"engineering_manager": "qat is enabled", "on_call": "rollback has rules"}.get(role, "")
                problems.append((("owners", role), f"needs at least one owner: {role} signs {', '.join(plays)}" + (f" ({why})" if why else "")))
    return problems


def causal_lm_problems(task: str | None, evaluation: Evaluation | None, envelope: Envelope | None, gate: Gate | None) -> list[tuple[tuple, str]]:
    """The causal-lm checks (``evaluation.generation``, ``evaluation.position_buckets`` and the gate
    tolerances on them): each applies only where the data can measure it. Sections that are None
    (invalid) skip the checks that need them."""
    problems: list[tuple[tuple, str]] = []
    generation = evaluation.generation if evaluation is not None else None
    text = evaluation is not None and evaluation.dataset.format == "text"
    if generation is not None and task is not None:
        at = ("evaluation", "generation")
        if task != "causal-lm":
            problems.append((at, f"generation compares greedy replies of a causal LM; task {task!r} does not generate: remove 'generation'"))
        elif generation.prompts.format == "text":
            problems.append((at + ("prompts", "format"), "a prompt set has one prompt per row: use jsonl, tsv or csv with a 'prompt' column"))
        else:
            for where, message in generation.prompts.column_problems(("prompt",), ("prompt", "id"), task):
                problems.append((at + ("prompts",) + where, message.replace(f"for task {task!r}", "for a prompt set")))
        if envelope is not None and generation.max_new_tokens >= envelope.sequence_length:
            problems.append((at + ("max_new_tokens",), f"{generation.max_new_tokens} leaves no room for the prompt in envelope.sequence_length ({envelope.sequence_length})"))
    if evaluation is not None and "position_buckets" in evaluation.model_fields_set:
        if task is not None and (task != "causal-lm" or not text):
            problems.append((("evaluation", "position_buckets"), "position buckets split perplexity windows: they apply to causal-lm evaluation on format text only"))
        elif envelope is not None and evaluation.position_buckets > envelope.sequence_length - 1:
            problems.append((("evaluation", "position_buckets"), f"{evaluation.position_buckets} buckets for {envelope.sequence_length - 1} scored positions per window (envelope.sequence_length - 1): some would be empty"))
    if gate is not None and evaluation is not None:
        if gate.min_generation_agreement is not None and generation is None:
            problems.append((("gate", "min_generation_agreement"), "gates greedy replies: add evaluation.generation with a prompt set"))
        if gate.max_format_drop is not None:
            if generation is None:
                problems.append((("gate", "max_format_drop"), "gates the format of greedy replies: add evaluation.generation with a prompt set and a format"))
            elif generation.format == "none":
                problems.append((("gate", "max_format_drop"), "evaluation.generation.format is none, so no format is checked: set format (json) or remove max_format_drop"))
        if gate.late_context_max_drop is not None and task is not None and (task != "causal-lm" or not text):
            problems.append((("gate", "late_context_max_drop"), "gates perplexity in the last position bucket: it needs causal-lm evaluation on format text"))
    return problems

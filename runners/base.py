"""The runner interface the compiler calls: typed requests in, typed results out.

This module is pure Python (no torch): the compiler imports it to build requests and read results.
Every result is a frozen dataclass made of plain values so it round-trips through JSON
(``to_dict`` / ``from_dict``) for the journal and the lock. Implementations live in other modules of
``runners/`` and import torch lazily.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

T = TypeVar("T")

#: progress(done, total, what): called by long plays; total may be 0 when unknown.
Progress = Callable[[int, int, str], None]


def no_progress(done: int, total: int, what: str) -> None:
    """The default progress sink."""


class RunnerError(Exception):
    """A play could not run (model failed to load, backend crashed): exit code 3 in the CLI."""


class RunnerInputError(RunnerError):
    """The request is wrong in a way the user can fix (a malformed data row, a glob matching nothing).

    ``location`` is ``path:line`` (or ``path:line:col``) when the problem is in a file.
    """

    def __init__(self, message: str, location: str | None = None):
        super().__init__(f"{location}: {message}" if location else message)
        self.location = location
        self.detail = message


def to_dict(obj: Any) -> Any:
    """A result as plain JSON-able values (dataclasses -> dicts, tuples -> lists)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {str(k): to_dict(v) for k, v in obj.items()}
    return obj


def from_dict(cls: type[T], data: Any) -> T:
    """Rebuild a result dataclass from ``to_dict`` output (nested dataclasses included)."""
    import typing

    if data is None:
        return None  # type: ignore[return-value]
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if f.name not in data:
            continue
        kwargs[f.name] = _coerce(hints[f.name], data[f.name])
    return cls(**kwargs)


def _coerce(hint: Any, value: Any) -> Any:
    import typing

    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if value is None:
        return None
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        for arg in args:
            if arg is type(None):
                continue
            if dataclasses.is_dataclass(arg):
                return from_dict(arg, value)
        return value
    if origin is tuple:
        inner = args[0] if args else Any
        return tuple(_coerce(inner, v) for v in value)
    if origin is list:
        inner = args[0] if args else Any
        return [_coerce(inner, v) for v in value]
    if origin is dict and len(args) == 2:
        return {k: _coerce(args[1], v) for k, v in value.items()}
    return value


# --------------------------------------------------------------------------------------- requests


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset file, already resolved to an absolute path by the compiler."""

    path: str
    format: str  # tsv | csv | jsonl | text
    columns: dict[str, Any] = field(default_factory=dict)  # role -> index or name
    header: bool = False
    limit: int | None = None
    skip: int = 0  # examples (format text: windows) passed over before any is used


@dataclass(frozen=True)
class ModelSpec:
    source: str  # hub id, or absolute directory
    revision: str | None
    task: str  # sentence-similarity | text-classification | causal-lm
    gguf_file: str | None = None
    trust_remote_code: bool = False  # already checked against the repository allowlist
    allow_pickle: bool = False  # quantgate.yaml pickle_allowed names this source (base branch policy)


@dataclass(frozen=True)
class GenerationSpec:
    """Greedy replies to a fixed prompt set (causal-lm), compared between baseline and candidate."""

    prompts: DatasetSpec  # a 'prompt' column (and optionally 'id')
    max_new_tokens: int
    compare_tokens: int  # N: a prompt agrees when the first N generated tokens equal the baseline's
    format: str = "none"  # none | json (runners.generate.format_valid)


@dataclass(frozen=True)
class EvalSpec:
    task: str
    metric: str
    lower_is_better: bool
    dataset: DatasetSpec
    hardest_fraction: float
    batch_size: int
    sequence_length: int
    stride: int | None = None
    position_buckets: int = 0  # causal-lm text: perplexity per position bucket (0: none)
    generation: GenerationSpec | None = None


@dataclass(frozen=True)
class EnvelopeSpec:
    device: str  # cpu | cuda
    memory_bytes: int
    headroom: float
    batch_size: int
    sequence_length: int
    latency_p95_ms: float | None


#: The calibration fit below which a calibration set is flagged (manifest default; docs/manifest.md
#: gives the measurements behind it).
DEFAULT_MIN_FIT = 0.6


@dataclass(frozen=True)
class QuantSpec:
    weights: str  # int8 | int4 | fp8
    activations: str  # none | dynamic-int8
    group_size: int | None
    backend: str  # a registered backend name, never 'auto' (the compiler resolves it)
    calibration: DatasetSpec
    samples: int
    seed: int
    protected_layers: tuple[str, ...] = ()
    algorithm: str = "rtn"  # runners.registry.ALGORITHMS
    min_fit: float = DEFAULT_MIN_FIT  # calibration fit below this is low (runners.calibration_fit)
    on_low_fit: str = "warn"  # warn | fail: what a low fit does to the ptq play
    production: DatasetSpec | None = None  # a sample of production inputs the calibration set must also fit


@dataclass(frozen=True)
class QualityBar:
    """What the gate accepts, computed by the compiler from the baseline and the manifest's gate."""

    metric: str
    lower_is_better: bool
    overall: float  # the worst acceptable value overall
    hardest: float  # the worst acceptable value on the hardest slice

    def accepts(self, overall: float, hardest: float) -> bool:
        if self.lower_is_better:
            return overall <= self.overall and hardest <= self.hardest
        return overall >= self.overall and hardest >= self.hardest


@dataclass(frozen=True)
class QatSpec:
    justification: str  # the runner refuses to start without it
    steps: int
    learning_rate: float
    seed: int


# ---------------------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Quality:
    metric: str
    value: float  # the primary metric over all examples
    hardest: float  # the primary metric over the baseline's hardest slice
    n_examples: int
    extra: dict[str, float] = field(default_factory=dict)  # other metrics (pearson, macro_f1, ...)


@dataclass(frozen=True)
class Performance:
    device: str
    batch_size: int
    sequence_length: int
    latency_p50_ms: float
    latency_p95_ms: float
    runs: int
    peak_memory_bytes: int  # CPU: peak RSS growth of a fresh process from before the load through the latency runs
    footprint_bytes: int
    threads: int
    forward_memory_bytes: int = 0  # what one forward adds to what is resident (the envelope's measured activations)
    memory_method: str = ""  # how peak_memory_bytes was measured, in words (docs/measuring.md)


@dataclass(frozen=True)
class Environment:
    device_name: str
    cpu_flags: tuple[str, ...]
    versions: dict[str, str]  # library -> version
    threads: int


@dataclass(frozen=True)
class ModelInfo:
    """Facts about the architecture the envelope check needs (no weights)."""

    architecture: str
    parameters: int
    dtype_bytes: int
    num_layers: int
    hidden_size: int
    num_attention_heads: int
    num_kv_heads: int
    head_dim: int
    quantizable_layers: tuple[str, ...]  # module names of the Linear layers a backend would quantize
    quantizable_parameters: int = 0  # weight elements in quantizable_layers (the envelope sizes them)
    vocab_size: int = 0  # output logits per token for causal-lm (the envelope's activation estimate)


@dataclass(frozen=True)
class Example:
    id: str
    score: float  # per-example score, higher = better for the model (docs say how, per task)


@dataclass(frozen=True)
class Generated:
    """One prompt's greedy reply: the generated token ids (ending with EOS when the model ended it)."""

    id: str
    tokens: tuple[int, ...]


@dataclass(frozen=True)
class BaselineResult:
    weights_sha256: str  # canonical hash over tensors, not file bytes
    model_info: ModelInfo
    quality: Quality
    hardest_ids: tuple[str, ...]
    examples: tuple[Example, ...]
    performance: Performance
    environment: Environment
    data_sha256: str  # of the evaluation file
    hardest_definition: str = ""  # the hardest slice in words ("88 of 879 examples, pairs whose ...")
    generations: tuple[Generated, ...] = ()  # evaluation.generation: the replies candidates are compared with (journal only, like examples)


@dataclass(frozen=True)
class EnvelopeResult:
    verdict: str  # pass | warn | fail | wrong-move
    reasons: tuple[str, ...]
    memory_needed_bytes: int
    memory_budget_bytes: int
    native_support: bool
    bound: str  # memory | compute (an estimate)
    estimates: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Artifact:
    path: str  # repo-relative directory, content addressed
    sha256: str  # over the sorted (name, file sha256) list
    files: dict[str, str]  # relative file name -> sha256
    format: str  # torch | onnx | quanto
    sizes: dict[str, int] = field(default_factory=dict)  # relative file name -> bytes (the store checks them)


@dataclass(frozen=True)
class Degraded:
    id: str
    baseline: float
    candidate: float


@dataclass(frozen=True)
class FitComparison:
    """The calibration set against one other set (``runners.calibration_fit``). Each component is a
    Bhattacharyya overlap in [0, 1] (1: indistinguishable); ``fit`` is their product."""

    against: str  # evaluation | production
    fit: float
    length: float  # overlap of the per-segment characters-per-token (and, for rows, token-count) distributions
    unknown: float  # overlap of the per-segment unknown / byte-fallback token rates
    hidden: float  # overlap of the segments' mean hidden states at the first layers
    segments: tuple[int, int]  # segments compared (calibration, other)
    chars_per_token: tuple[float, float]  # mean (calibration, other)
    unknown_rate: tuple[float, float]  # share of unknown / byte-fallback tokens (calibration, other)
    hidden_shift: float  # mean over dimensions of the squared, bias-corrected mean shift in within-set standard deviations


@dataclass(frozen=True)
class CalibrationFit:
    """How well the calibration set matches the workload, in the model's own terms."""

    fit: float  # the lowest comparison's fit, in [0, 1]; 1 = the same distribution
    min_fit: float  # the manifest's threshold when measured
    low: bool  # fit < min_fit
    layers: tuple[int, ...]  # hidden-state layers compared (1 = the first block's output)
    comparisons: tuple[FitComparison, ...]


@dataclass(frozen=True)
class CandidateResult:
    method: str  # ptq | mixed_precision | qat
    backend: str
    backend_version: str
    config: dict[str, Any]  # the exact backend config used
    protected_layers: tuple[str, ...]  # exact module names kept at full precision
    quantized_layers: int
    calibration_samples: int
    calibration_sha256: str
    artifact: Artifact
    quality: Quality  # measured on the artifact as reloaded in a fresh process
    performance: Performance
    most_degraded: tuple[Degraded, ...] = ()
    calibration_fit: CalibrationFit | None = None  # ptq: measured before quantizing


@dataclass(frozen=True)
class Evaluation:
    """One evaluation spent by mixed precision: which layers stayed full precision, what it scored."""

    kind: str  # full | proxy
    protected_layers: tuple[str, ...]
    value: float
    hardest: float
    footprint_bytes: int
    seconds: float
    passed: bool


@dataclass(frozen=True)
class MixedPrecisionResult:
    passed: bool
    sensitivity: dict[str, float]  # layer -> proxy error (higher = more sensitive)
    evaluations: tuple[Evaluation, ...]
    full_evaluations: int
    one_at_a_time_cost: int  # full evaluations a one-op-at-a-time fallback would have spent
    cap_layers: int  # max_protected_fraction applied to the quantizable layer count
    best: CandidateResult | None


@dataclass(frozen=True)
class QatResult:
    candidate: CandidateResult
    steps: int
    losses: tuple[float, ...]


class Runner(Protocol):
    """What the compiler calls: ``preflight`` once per run, then one method per play that touches a model."""

    def preflight(self, quant: QuantSpec) -> None:
        """Raise ``RunnerInputError`` when this runner cannot quantize with ``quant.backend`` here (e.g.
        it is not installed), before any play loads a model. The plan was resolved from declared
        capabilities only; this is where the machine's installation is checked."""

    def baseline(self, model: ModelSpec, evaluation: EvalSpec, envelope: EnvelopeSpec, progress: Progress = no_progress) -> BaselineResult: ...

    def envelope(self, info: ModelInfo, quant: QuantSpec, envelope: EnvelopeSpec, baseline: Performance | None) -> EnvelopeResult: ...

    def ptq(self, model: ModelSpec, quant: QuantSpec, evaluation: EvalSpec, envelope: EnvelopeSpec, baseline: BaselineResult, artifact_root: str, progress: Progress = no_progress) -> CandidateResult: ...

    def mixed_precision(self, model: ModelSpec, quant: QuantSpec, evaluation: EvalSpec, envelope: EnvelopeSpec, baseline: BaselineResult, bar: QualityBar, max_protected_fraction: float, artifact_root: str, progress: Progress = no_progress) -> MixedPrecisionResult: ...

    def qat(self, model: ModelSpec, quant: QuantSpec, qat: QatSpec, evaluation: EvalSpec, envelope: EnvelopeSpec, baseline: BaselineResult, artifact_root: str, progress: Progress = no_progress) -> QatResult: ...

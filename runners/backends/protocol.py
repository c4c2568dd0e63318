"""The backend contract: what a backend declares (``Capabilities``) and what it implements
(``QuantizationBackend``). Pure Python: the planner reads capabilities without importing torch.

A backend is one module under ``runners/backends/`` plus one ``runners.registry.Backend`` entry that
names the module and declares its ``Capabilities``. The registry answers every planning question from
the declaration alone (deterministic on any machine, installed or not); the runner imports the module
only when a play runs, and ``tests/quantize/test_conformance.py`` holds every registered backend to
this contract (build every declared mode, save, reload in a fresh process, same outputs).

Lifecycle of one play (``runners.ptq.Quantizer``):

1. ``prepare(model, tokenizer, task, calibration, workdir) -> Prepared``: one-time work on the
   full-precision model (an ONNX export, activation statistics). Every backend receives the drawn
   calibration examples; a backend that rounds to nearest ignores them and declares
   ``needs_calibration=False``.
2. ``Prepared.quantize(plan) -> Quantized``: one candidate; the full-precision model stays untouched so
   mixed precision can build many.
3. ``Quantized.save(directory) -> config``: the weight files, and the exact backend config (JSON values,
   ``weights_files`` listing the files that count as the footprint) that ``artifact.json`` records.
4. ``reload(directory, config, model_class, task) -> (module_or_None, forward)``: the candidate rebuilt
   from the artifact's files alone (``runners.artifacts.load_artifact``, in a fresh process).

A backend offers only what it can build *and* reload faithfully; what it cannot is left out of its
capabilities, so it is refused (in words) by the planner and again by the runner.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from runners.datasets import Record

#: The group size int4 uses when the manifest leaves ``group_size`` unset (torchao, ONNX Runtime).
DEFAULT_INT4_GROUP = 32

#: (input_ids, attention_mask) -> the task's output tensor (hidden states or logits).
Forward = Callable[[Any, Any], Any]


@dataclass(frozen=True)
class Capabilities:
    """What a backend can build and reload faithfully, declared without importing it."""

    devices: tuple[str, ...]  # envelope devices it deploys to: cpu | cuda
    modes: tuple[tuple[str, str], ...]  # the exact (weights, activations) pairs it builds
    tasks: tuple[str, ...]
    methods: tuple[str, ...]  # ptq | mixed_precision | qat
    artifact_format: str  # artifact.json's format: torch | onnx | quanto
    distributions: tuple[str, ...]  # pip distributions whose versions artifact.json records; the first is the backend's version
    requires: tuple[str, ...]  # pip distributions that must be installed to run it (the runner checks, the planner does not)
    extra: str = "run"  # the quantgate extra that installs ``requires``
    group_sizes: tuple[int | None, ...] | None = None  # weight group sizes honoured (None in it: unset); None: any
    default_group_size: int = DEFAULT_INT4_GROUP  # the int4 group used when the manifest leaves it unset
    needs_calibration: bool = False  # True: prepare() derives statistics from the calibration examples
    needs_accelerator: bool = False  # True: building needs a GPU even when the envelope is cpu
    algorithms: tuple[str, ...] = ("rtn",)  # quantization.algorithm values it runs (runners.registry.ALGORITHMS)

    @property
    def weights(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(w for w, _ in self.modes))

    @property
    def activations(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(a for _, a in self.modes))


@dataclass(frozen=True)
class LayerPlan:
    """What to build: the scheme, and exactly which Linear modules are quantized or kept."""

    task: str
    weights: str  # int8 | int4
    activations: str  # none | dynamic-int8
    group_size: int | None
    quantized: tuple[str, ...]  # module names quantized
    protected: tuple[str, ...]  # module names kept at full precision
    algorithm: str = "rtn"  # quantization.algorithm (a backend runs the ones its capabilities declare)

    @property
    def int4_group(self) -> int:
        return self.group_size or DEFAULT_INT4_GROUP


class Quantized(Protocol):
    """One built candidate, in this process."""

    forward: Forward

    def footprint_bytes(self) -> int:
        """What its weights take (the envelope and the lock compare this)."""

    def save(self, directory: Path) -> dict[str, Any]:
        """Write the weight files (and what reload needs) into ``directory``; return the exact config,
        JSON values only, with ``weights_files``. Same candidate, same bytes: nothing machine-specific."""


class Prepared(Protocol):
    """The full-precision model after the backend's one-time work."""

    def quantize(self, plan: LayerPlan) -> Quantized:
        """Build the candidate ``plan`` describes without changing the full-precision model."""


@runtime_checkable
class QuantizationBackend(Protocol):
    """What a module under ``runners/backends/`` provides (modules satisfy protocols structurally)."""

    def prepare(self, model: Any, tokenizer: Any, task: str, calibration: Sequence[Record], workdir: Path) -> Prepared:
        """One-time work on the full-precision ``model``; ``calibration``: the manifest's calibration
        examples as drawn (seeded) by the runner. ``workdir`` is scratch space removed afterwards."""

    def reload(self, directory: Path, config: dict[str, Any], model_class: Any, task: str) -> tuple[Any, Forward]:
        """The candidate rebuilt from ``directory`` alone: (torch module, or None when there is none; forward)."""

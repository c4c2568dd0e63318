"""Backends registered by name with declared capabilities. Pure Python: no torch import.

The planner asks "can any installed backend do this?" through ``capable`` and ``resolve`` before any
model is loaded. Installation is checked with ``importlib.util.find_spec`` (nothing is imported) and
versions with ``importlib.metadata``. Registration is explicit: a backend is a ``Backend`` entry in
``BACKENDS``; its implementation module (``runners/backends/<name>_backend.py``) is imported only when
a play runs.

Capabilities are declared as the exact (weights, activations) ``modes`` a backend can build *and*
reload faithfully, plus the weight ``group_sizes`` it honours; ``refusal`` says in words why a backend
cannot run a request, so the planner can refuse a plan before any model is loaded.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from dataclasses import dataclass


@dataclass(frozen=True)
class Backend:
    name: str
    module: str  # implementation module, imported lazily by the runner
    requires: tuple[str, ...]  # importable top-level packages it needs
    devices: tuple[str, ...]
    weights: tuple[str, ...]
    activations: tuple[str, ...]
    tasks: tuple[str, ...]
    artifact_format: str
    methods: tuple[str, ...]  # ptq | mixed_precision | qat
    preference: int  # lower wins for backend: auto, among capable ones
    modes: tuple[tuple[str, str], ...] = ()  # (weights, activations) pairs; empty: every combination
    group_sizes: tuple[int | None, ...] | None = None  # weight group sizes honoured; None: any
    distribution: str = ""  # the pip distribution whose version is recorded with each result

    def installed(self) -> bool:
        return all(_has_module(pkg) for pkg in self.requires)

    def supports(self, device: str, weights: str, activations: str, task: str, method: str = "ptq",
                 group_size: int | None = None) -> bool:
        return self.refusal(device, weights, activations, task, method, group_size) is None

    def refusal(self, device: str, weights: str, activations: str, task: str, method: str = "ptq",
                group_size: int | None = None) -> str | None:
        """Why this backend cannot run the request, or None when it can."""
        if device not in self.devices:
            return f"{self.name} runs on {', '.join(self.devices)}, not {device}"
        if weights not in self.weights or activations not in self.activations or (
                self.modes and (weights, activations) not in self.modes):
            offered = ", ".join(f"{w} weights with {a} activations" for w, a in self.modes) if self.modes else ""
            return f"{self.name} cannot build {weights} weights with {activations} activations" + (f" (it offers {offered})" if offered else "")
        if task not in self.tasks:
            return f"{self.name} does not handle task {task}"
        if method not in self.methods:
            return f"{self.name} does not run {method}"
        if self.group_sizes is not None and group_size not in self.group_sizes:
            sizes = ", ".join("default" if g is None else str(g) for g in self.group_sizes)
            return f"{self.name} cannot save a weight group size of {group_size} faithfully (it honours: {sizes})"
        return None


def _has_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:  # a dotted name whose parent package is missing
        return False


ALL_TASKS = ("sentence-similarity", "text-classification", "causal-lm")

BACKENDS: dict[str, Backend] = {
    b.name: b
    for b in (
        Backend(
            name="onnxruntime",
            module="runners.backends.onnxruntime_backend",
            requires=("onnxruntime", "onnx", "onnx_ir", "torch"),
            devices=("cpu",),
            weights=("int8", "int4"),
            activations=("none", "dynamic-int8"),
            # int8+dynamic: quantize_dynamic (per channel, embedding gather too); weight-only int8
            # and int4: MatMulNBits (block = group size, 32 by default).
            modes=(("int8", "dynamic-int8"), ("int8", "none"), ("int4", "none")),
            tasks=("sentence-similarity", "text-classification"),
            artifact_format="onnx",
            methods=("ptq", "mixed_precision"),
            preference=0,
            distribution="onnxruntime",
        ),
        Backend(
            name="torchao",
            module="runners.backends.torchao_backend",
            requires=("torchao", "torch"),
            devices=("cpu", "cuda"),
            weights=("int8", "int4"),
            activations=("none", "dynamic-int8"),
            modes=(("int8", "none"), ("int8", "dynamic-int8"), ("int4", "none")),
            tasks=ALL_TASKS,
            artifact_format="torch",
            methods=("ptq", "mixed_precision", "qat"),
            preference=1,
            distribution="torchao",
        ),
        Backend(
            name="optimum-quanto",
            module="runners.backends.quanto_backend",
            requires=("optimum.quanto", "torch"),
            devices=("cpu", "cuda"),
            weights=("int8", "int4"),
            # Static activation calibration does not survive save/reload: weight-only only.
            activations=("none",),
            modes=(("int8", "none"), ("int4", "none")),
            tasks=ALL_TASKS,
            artifact_format="quanto",
            methods=("ptq", "mixed_precision"),
            preference=2,
            # quanto does not save the group size; only its default (128 for int4) reloads faithfully.
            group_sizes=(None, 128),
            distribution="optimum-quanto",
        ),
    )
}


def version(name: str) -> str:
    """The installed version of the backend's distribution ('' when not installed)."""
    backend = BACKENDS[name]
    try:
        return importlib.metadata.version(backend.distribution or backend.name)
    except importlib.metadata.PackageNotFoundError:
        return ""


def capable(device: str, weights: str, activations: str, task: str, method: str = "ptq", installed_only: bool = True,
            group_size: int | None = None) -> list[str]:
    """Names of the backends that can run this, best first."""
    found = [
        b for b in BACKENDS.values()
        if b.supports(device, weights, activations, task, method, group_size) and (not installed_only or b.installed())
    ]
    return [b.name for b in sorted(found, key=lambda b: b.preference)]


def resolve(requested: str, device: str, weights: str, activations: str, task: str, methods: tuple[str, ...] = ("ptq",),
            group_size: int | None = None) -> str | None:
    """The backend a manifest's ``backend:`` means for this envelope, or None when none can.

    ``auto`` picks the most preferred installed backend that supports every method in ``methods``
    (e.g. ptq and mixed_precision when mixed precision is enabled), else the best for ptq alone.
    A named backend must be installed and support ``methods[0]``.
    """
    if requested != "auto":
        backend = BACKENDS.get(requested)
        if backend is None or not backend.installed():
            return None
        return requested if backend.supports(device, weights, activations, task, methods[0], group_size) else None
    first = capable(device, weights, activations, task, methods[0], group_size=group_size)
    every = [n for n in first if all(BACKENDS[n].supports(device, weights, activations, task, m, group_size) for m in methods)]
    for names in (every, first):
        if names:
            return names[0]
    return None


def explain(requested: str, device: str, weights: str, activations: str, task: str, method: str = "ptq",
            group_size: int | None = None) -> list[str]:
    """One line per registered backend saying why it cannot run this (for the planner's refusal)."""
    names = list(BACKENDS) if requested == "auto" else [requested]
    lines = []
    for name in names:
        backend = BACKENDS.get(name)
        if backend is None:
            lines.append(f"{name}: not a registered backend (known: {', '.join(BACKENDS)})")
        elif not backend.installed():
            lines.append(f"{name}: not installed (needs {', '.join(backend.requires)})")
        else:
            why = backend.refusal(device, weights, activations, task, method, group_size)
            if why:
                lines.append(f"{name}: {why}")
    return lines

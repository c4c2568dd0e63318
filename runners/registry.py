"""Backends registered by name with declared capabilities. Pure Python: no torch import.

The planner asks "can any installed backend do this?" through ``capable`` and ``resolve`` before any
model is loaded. Installation is checked with ``importlib.util.find_spec`` (nothing is imported).
Registration is explicit: a backend is a ``Backend`` entry in ``BACKENDS``; its implementation module
is imported only when a play runs.
"""

from __future__ import annotations

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

    def installed(self) -> bool:
        return all(importlib.util.find_spec(pkg) is not None for pkg in self.requires)

    def supports(self, device: str, weights: str, activations: str, task: str, method: str = "ptq") -> bool:
        return (
            device in self.devices
            and weights in self.weights
            and activations in self.activations
            and task in self.tasks
            and method in self.methods
        )


ALL_TASKS = ("sentence-similarity", "text-classification", "causal-lm")

BACKENDS: dict[str, Backend] = {
    b.name: b
    for b in (
        Backend(
            name="onnxruntime",
            module="runners.backends.onnxruntime_backend",
            requires=("onnxruntime", "onnx", "torch"),
            devices=("cpu",),
            weights=("int8", "int4"),
            activations=("none", "dynamic-int8"),
            tasks=("sentence-similarity", "text-classification"),
            artifact_format="onnx",
            methods=("ptq", "mixed_precision"),
            preference=0,
        ),
        Backend(
            name="torchao",
            module="runners.backends.torchao_backend",
            requires=("torchao", "torch"),
            devices=("cpu", "cuda"),
            weights=("int8", "int4"),
            activations=("none", "dynamic-int8"),
            tasks=ALL_TASKS,
            artifact_format="torch",
            methods=("ptq", "mixed_precision", "qat"),
            preference=1,
        ),
        Backend(
            name="optimum-quanto",
            module="runners.backends.quanto_backend",
            requires=("optimum.quanto", "torch"),
            devices=("cpu", "cuda"),
            weights=("int8", "int4"),
            activations=("none",),
            tasks=ALL_TASKS,
            artifact_format="quanto",
            methods=("ptq",),
            preference=2,
        ),
    )
}


def capable(device: str, weights: str, activations: str, task: str, method: str = "ptq", installed_only: bool = True) -> list[str]:
    """Names of the backends that can run this, best first."""
    found = [
        b for b in BACKENDS.values()
        if b.supports(device, weights, activations, task, method) and (not installed_only or b.installed())
    ]
    return [b.name for b in sorted(found, key=lambda b: b.preference)]


def resolve(requested: str, device: str, weights: str, activations: str, task: str, methods: tuple[str, ...] = ("ptq",)) -> str | None:
    """The backend a manifest's ``backend:`` means for this envelope, or None when none can.

    ``auto`` picks the most preferred installed backend that supports every method in ``methods``
    (e.g. ptq and mixed_precision when mixed precision is enabled), else the best for ptq alone.
    """
    if requested != "auto":
        backend = BACKENDS.get(requested)
        if backend is None or not backend.installed():
            return None
        return requested if backend.supports(device, weights, activations, task, methods[0]) else None
    for names in ([n for n in capable(device, weights, activations, task, methods[0]) if all(BACKENDS[n].supports(device, weights, activations, task, m) for m in methods)],
                  capable(device, weights, activations, task, methods[0])):
        if names:
            return names[0]
    return None

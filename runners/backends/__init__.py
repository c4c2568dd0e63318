"""Quantizing backends, one module per backend named in ``runners.registry.BACKENDS``.

Every backend module provides the same four functions (typed, no ``**kwargs``):

- ``check(plan: LayerPlan) -> None``: raise ``RunnerInputError`` for what it cannot build and reload
  faithfully (the registry declares the same limits without importing anything);
- ``prepare(model, tokenizer, task, workdir) -> Prepared``: one-time work on the full-precision
  model (e.g. the ONNX export); ``Prepared.quantize(plan) -> Quantized`` builds one candidate and
  leaves the full-precision model untouched, so mixed precision can build many;
- ``Quantized.forward`` runs the candidate in this process, ``Quantized.footprint_bytes()`` is what
  its weights take, ``Quantized.save(directory) -> dict`` writes the weight files and returns the
  exact backend config (JSON values) to record;
- ``reload(directory, config, model_class) -> (module_or_None, Forward)``: rebuild the candidate from
  an artifact directory (``runners.artifacts.load_artifact`` calls it in a fresh process).

``load(name)`` imports the module a registry entry names; nothing is discovered by scanning.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType

from runners.base import RunnerInputError
from runners.registry import BACKENDS

#: The group size int4 uses when the manifest leaves ``group_size`` unset (torchao, ONNX Runtime).
DEFAULT_INT4_GROUP = 32


@dataclass(frozen=True)
class LayerPlan:
    """What to build: the scheme, and exactly which Linear modules are quantized or kept."""

    task: str
    weights: str  # int8 | int4
    activations: str  # none | dynamic-int8
    group_size: int | None
    quantized: tuple[str, ...]  # module names quantized
    protected: tuple[str, ...]  # module names kept at full precision

    @property
    def int4_group(self) -> int:
        return self.group_size or DEFAULT_INT4_GROUP


def load(name: str) -> ModuleType:
    """The implementation module of a registered backend."""
    backend = BACKENDS.get(name)
    if backend is None:
        raise RunnerInputError(f"quantization.backend: {name!r} is not a registered backend (known: {', '.join(BACKENDS)})")
    return importlib.import_module(backend.module)

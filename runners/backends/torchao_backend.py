"""torchao: torch artifacts (``model.pt``, a state dict of torchao tensor subclasses).

Modes: int8 weight-only (``Int8WeightOnlyConfig``), int8 dynamic activations + int8 weights
(``Int8DynamicActivationInt8WeightConfig``), int4 weight-only (``IntxWeightOnlyConfig`` with
``PerGroup(group)``; ``Int4WeightOnlyConfig`` has no CPU path). Per-layer choice goes through
``FqnToConfig`` with ``None`` for protected layers (it refuses a ``filter_fn``).

Reload: the architecture is rebuilt from the artifact's ``config.json`` and the state dict is loaded
with ``assign=True``, which puts the quantized tensor subclasses back in place. ``torch.load`` runs
with ``weights_only=True`` (torchao registers its tensor classes as safe globals).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from runners.backends import in_place
from runners.backends.protocol import Forward, LayerPlan
from runners.base import RunnerInputError
from runners.datasets import Record

WEIGHTS_FILE = "model.pt"


def base_config(plan: LayerPlan) -> Any:
    """The torchao config applied to every quantized layer (the registry declares the same modes)."""
    import torch
    from torchao.quantization import Int8DynamicActivationInt8WeightConfig, Int8WeightOnlyConfig, IntxWeightOnlyConfig
    from torchao.quantization.granularity import PerGroup

    mode = (plan.weights, plan.activations)
    if mode == ("int8", "none"):
        return Int8WeightOnlyConfig()
    if mode == ("int8", "dynamic-int8"):
        return Int8DynamicActivationInt8WeightConfig()
    if mode == ("int4", "none"):
        return IntxWeightOnlyConfig(weight_dtype=torch.int4, granularity=PerGroup(plan.int4_group))
    raise RunnerInputError(f"quantization: torchao cannot build {plan.weights} weights with {plan.activations} activations")


def describe(plan: LayerPlan) -> dict[str, Any]:
    """The exact config as recorded (class name and its arguments)."""
    cfg = base_config(plan)
    return {"config": type(cfg).__name__, "repr": repr(cfg), "group_size": plan.int4_group if plan.weights == "int4" else None}


def quantize_(model: Any, plan: LayerPlan) -> None:
    """Quantize ``model`` in place: the plan's quantized layers get the base config, the rest stay."""
    from torchao.quantization import FqnToConfig
    from torchao.quantization import quantize_ as ao_quantize_

    config = base_config(plan)
    mapping: dict[str, Any] = {name: config for name in plan.quantized}
    mapping.update({name: None for name in plan.protected})
    ao_quantize_(model, FqnToConfig(mapping), filter_fn=None)


class Quantized(in_place.ModuleCandidate):
    def save(self, directory: Path) -> dict[str, Any]:
        import torch

        # The archive's inner folder is named after the file, so the name is fixed for stable bytes.
        torch.save(self.model.state_dict(), directory / WEIGHTS_FILE)
        self.model.config.save_pretrained(directory)
        return {**describe(self.plan), "weights_files": [WEIGHTS_FILE]}


def prepare(model: Any, tokenizer: Any, task: str, calibration: Sequence[Record], workdir: Path) -> in_place.Prepared:
    return in_place.prepare(model, task, calibration, quantize_, Quantized)


def reload(directory: Path, config: dict[str, Any], model_class: Any, task: str) -> tuple[Any, Forward]:
    import torch
    import torchao  # noqa: F401  (registers the tensor subclasses torch.load meets)
    from transformers import AutoConfig

    from runners.models import make_forward

    state = torch.load(directory / WEIGHTS_FILE, weights_only=True, map_location="cpu")
    model = model_class.from_config(AutoConfig.from_pretrained(directory))
    model.load_state_dict(state, assign=True)
    model.eval()
    return model, make_forward(model, task)

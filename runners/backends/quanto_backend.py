"""optimum-quanto: weight-only int8/int4 (``model.safetensors`` + ``quantization_map.json``).

Only what reloads faithfully is offered: quanto's static activation calibration does not survive
save/reload, and its int4 group size is not saved (reload always uses the default, 128), so its
registry entry declares weight-only modes and group sizes (unset, 128) only; anything else is refused
from that declaration (planner and runner) rather than silently shipping a different model. Reload is quanto's documented path: rebuild the
architecture, ``requantize(model, state_dict, quantization_map)``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from runners.backends import in_place
from runners.backends.protocol import Forward, LayerPlan
from runners.base import RunnerInputError
from runners.datasets import Record

WEIGHTS_FILE = "model.safetensors"
MAP_FILE = "quantization_map.json"
DEFAULT_GROUP = 128  # quanto's int4 group size; the only one a reload reproduces (the registry declares it)


def quantize_(model: Any, plan: LayerPlan) -> None:
    """Quantize and freeze ``model`` in place: only the plan's quantized Linear layers."""
    from optimum.quanto import freeze, qint4, qint8, quantize

    if plan.activations != "none" or plan.weights not in ("int8", "int4"):
        raise RunnerInputError(f"quantization: optimum-quanto cannot build {plan.weights} weights with {plan.activations} activations")
    # include= is matched with fnmatch; module names are plain dotted names, so each matches itself.
    quantize(model, weights=qint8 if plan.weights == "int8" else qint4, include=list(plan.quantized))
    freeze(model)


def make_forward(model: Any, task: str) -> Forward:
    """The task's forward, run outside inference mode: quanto's int4 weights unpack through an op
    that fails on inference tensors ("Cannot set version_counter"), and latency runs in inference mode."""
    import torch

    from runners.models import make_forward as task_forward

    inner = task_forward(model, task)

    def forward(input_ids: Any, attention_mask: Any) -> Any:
        with torch.inference_mode(False), torch.no_grad():
            return inner(input_ids.clone(), attention_mask.clone())

    return forward


class Quantized(in_place.ModuleCandidate):
    make_forward = staticmethod(make_forward)

    def save(self, directory: Path) -> dict[str, Any]:
        from optimum.quanto import quantization_map
        from safetensors.torch import save_file

        state = {k: v.contiguous() for k, v in self.model.state_dict().items()}
        save_file(state, str(directory / WEIGHTS_FILE))
        (directory / MAP_FILE).write_text(json.dumps(quantization_map(self.model), sort_keys=True, indent=1) + "\n")
        self.model.config.save_pretrained(directory)
        return {"weights": "qint8" if self.plan.weights == "int8" else "qint4",
                "group_size": DEFAULT_GROUP if self.plan.weights == "int4" else None,
                "weights_files": [WEIGHTS_FILE, MAP_FILE]}


def prepare(model: Any, tokenizer: Any, task: str, calibration: Sequence[Record], workdir: Path) -> in_place.Prepared:
    return in_place.prepare(model, task, calibration, quantize_, Quantized)


def reload(directory: Path, config: dict[str, Any], model_class: Any, task: str) -> tuple[Any, Forward]:
    from optimum.quanto import requantize
    from safetensors.torch import load_file
    from transformers import AutoConfig

    model = model_class.from_config(AutoConfig.from_pretrained(directory))
    requantize(model, load_file(str(directory / WEIGHTS_FILE)), json.loads((directory / MAP_FILE).read_text()))
    model.eval()
    return model, make_forward(model, task)

"""llm-compressor: the accelerator-only algorithms (AWQ int4 weight-only, SmoothQuant + GPTQ W8A8).

Declared in ``runners.registry`` with ``devices=("cuda",)`` and ``needs_accelerator=True``, so plan
refuses both on a CPU envelope, in words, before anything runs. On a CPU neither is worth building:
AWQ refuses to run without an accelerator (patched to run, it took 1180 s on SmolLM2-135M and gave a
worse perplexity than GPTQ), and SmoothQuant W8A8 only pays off where a GPU runtime executes int8
activations. The quantgate test suite runs on CPU and never builds them (the conformance suite skips
backends that need an accelerator); this module is the path a GPU runner takes.

Install: ``pip install 'quantgate[gpu]'`` in its own environment. llm-compressor 0.14 pins
transformers 5.15-5.17, older than the 5.24 the rest of the stack resolves to, so a GPU runner
environment is built for it rather than shared with the CPU one.

Artifact: the compressed-tensors checkpoint llm-compressor saves (``model.safetensors`` +
``config.json`` with ``quantization_config``), what vLLM serves. Reloaded with transformers (which
decompresses it to float layers), so the judged outputs are those of the saved integers and scales.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from runners.backends import in_place
from runners.backends.protocol import Forward, LayerPlan
from runners.base import RunnerInputError
from runners.datasets import Record

WEIGHTS_FILE = "model.safetensors"
#: Longest calibration window (tokens) handed to ``oneshot``.
MAX_TOKENS = 2048


def recipe(plan: LayerPlan, algorithm: str, output_layer: str) -> list[Any]:
    """The llm-compressor modifiers for ``algorithm``; protected layers and the output layer are ignored."""
    from llmcompressor.modifiers.awq import AWQModifier
    from llmcompressor.modifiers.quantization import GPTQModifier
    from llmcompressor.modifiers.smoothquant import SmoothQuantModifier

    ignore = [output_layer, *plan.protected]
    if algorithm == "awq" and (plan.weights, plan.activations) == ("int4", "none"):
        weights = {"num_bits": 4, "type": "int", "symmetric": True, "strategy": "group", "group_size": plan.int4_group}
        return [AWQModifier(ignore=ignore, config_groups={"group_0": {"targets": ["Linear"], "weights": weights}})]
    if algorithm == "smoothquant" and (plan.weights, plan.activations) == ("int8", "dynamic-int8"):
        return [SmoothQuantModifier(smoothing_strength=0.8), GPTQModifier(targets=["Linear"], scheme="W8A8", ignore=ignore)]
    raise RunnerInputError(f"quantization: llm-compressor runs awq for int4 weights and smoothquant for int8 weights with "
                           f"dynamic-int8 activations, not {algorithm} for {plan.weights}/{plan.activations}")


class Quantized(in_place.ModuleCandidate):
    def save(self, directory: Path) -> dict[str, Any]:
        self.model.save_pretrained(directory, save_compressed=True)
        return {"algorithm": self.plan.algorithm, "format": "compressed-tensors", "weights_files": [WEIGHTS_FILE]}


class Prepared:
    def __init__(self, model: Any, tokenizer: Any, task: str, calibration: Sequence[Record]):
        self.model, self.tokenizer, self.task = model, tokenizer, task
        self.texts = [t for r in calibration for t in r.texts if t and t.strip()]

    def quantize(self, plan: LayerPlan) -> Quantized:
        from datasets import Dataset
        from llmcompressor import oneshot

        model = copy.deepcopy(self.model)
        output = model.get_output_embeddings()
        output_name = next(n for n, m in model.named_modules() if m is output)
        encoded = self.tokenizer(self.texts, add_special_tokens=False, truncation=True, max_length=MAX_TOKENS)
        data = Dataset.from_dict({"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]})
        oneshot(model=model, dataset=data, recipe=recipe(plan, plan.algorithm, output_name), max_seq_length=MAX_TOKENS,
                num_calibration_samples=len(self.texts))
        return Quantized(model, plan, self.task)


def prepare(model: Any, tokenizer: Any, task: str, calibration: Sequence[Record], workdir: Path) -> Prepared:
    if task != "causal-lm":
        raise RunnerInputError(f"quantization: llm-compressor is registered for causal-lm models, not {task}")
    return Prepared(model, tokenizer, task, calibration)


def reload(directory: Path, config: dict[str, Any], model_class: Any, task: str) -> tuple[Any, Forward]:
    import torch

    from runners.models import make_forward

    model = model_class.from_pretrained(directory, dtype=torch.float32)
    model.eval()
    return model, make_forward(model, task)

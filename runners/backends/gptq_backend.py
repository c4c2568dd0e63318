"""GPTQ for causal LMs, calibrated on the manifest's calibration set; two artifacts from one solve.

How it runs (``Prepared.quantize``): the calibration windows go through the model once to capture the
inputs of the first decoder layer; then, layer by layer, a forward pass over those inputs measures
``X^T X`` for every Linear the plan quantizes (``runners.backends.gptq_solver`` rounds each with it),
and a second pass with the rounded weights produces the next layer's inputs, so every layer is
calibrated on the activations the quantized model really feeds it. Protected layers stay at full
precision and are not solved; the layers after them are solved against their full-precision outputs.

What it writes (``Quantized.save``):

- ``model.pt`` + ``config.json``: the CPU artifact. Every quantized Linear holds torchao's
  ``IntxUnpackedToInt8Tensor`` built from GPTQ's integers and scales (the layout round-to-nearest
  int4/int8 through torchao uses), so it reloads with ``runners.backends.torchao_backend.reload``,
  runs on any CPU and is judged like every other candidate. This is the file the footprint counts.
- ``compressed-tensors/``: the same integers and scales as a compressed-tensors ``pack-quantized``
  checkpoint (``config.json`` with ``quantization_config``, ``model.safetensors``, the tokenizer):
  what vLLM serves on GPUs and what transformers loads (decompressed to float) on CPU. Before the
  files are kept, that checkpoint is loaded back with ``transformers`` and its logits must match the
  CPU artifact's to ``CHECKPOINT_TOLERANCE``; the difference is recorded as ``checkpoint_max_abs_diff``.

Why not llm-compressor: it is what the numbers in the issue were measured with, but 0.14 pins
transformers 5.15-5.17 (this stack resolves 5.24) and pulls datasets, auto-round and nvidia-ml-py; the
algorithm is ~100 lines and compressed-tensors (which llm-compressor itself saves with) has no such pin.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from runners.backends import in_place, torchao_backend
from runners.backends.gptq_solver import BLOCK, DAMP, Grid, Solved, solve
from runners.backends.protocol import Forward, LayerPlan
from runners.base import RunnerError, RunnerInputError
from runners.datasets import Record

WEIGHTS_FILE = torchao_backend.WEIGHTS_FILE
CHECKPOINT_DIR = "compressed-tensors"
#: Largest |logit difference| between the CPU artifact and its compressed-tensors checkpoint: both
#: dequantize the same integers with the same scales; only float summation order may differ.
CHECKPOINT_TOLERANCE = 1e-3
#: Longest calibration window fed to the model (tokens); longer texts are cut.
MAX_TOKENS = 2048
#: Windows per forward pass while calibrating (equal lengths only, so no padding enters X^T X).
BATCH = 8
#: Static activation ordering (``gptq_solver``). Measured on SmolLM2 int4 g64, 32 calibration windows of
#: 512 tokens, perplexity over 16 windows of 512: fp32 36.08, rtn 52.67, GPTQ in column order 52.69,
#: GPTQ with static ordering 48.29. So ordering is on.
ACT_ORDER = True


def grid_of(plan: LayerPlan) -> Grid:
    if plan.activations != "none" or plan.weights not in ("int4", "int8"):
        raise RunnerInputError(f"quantization: gptq builds int4 or int8 weights with no activation quantization, "
                               f"not {plan.weights} weights with {plan.activations} activations")
    if plan.weights == "int4":
        return Grid(4, plan.int4_group)
    return Grid(8, plan.group_size)


def _tokenize(tokenizer: Any, calibration: Sequence[Record]) -> list[Any]:
    import torch

    windows = []
    for record in calibration:
        for text in record.texts:
            if not text or not text.strip():
                continue
            ids = tokenizer(text, add_special_tokens=False, truncation=True, max_length=MAX_TOKENS)["input_ids"]
            if len(ids) >= 2:
                windows.append(torch.tensor(ids, dtype=torch.long))
    if not windows:
        raise RunnerInputError("quantization.calibration: gptq needs calibration text, and the drawn examples hold none")
    return windows


def _batches(windows: list[Any]) -> list[Any]:
    """Equal-length windows stacked in batches of at most ``BATCH`` (deterministic order)."""
    import torch

    by_length: dict[int, list[Any]] = {}
    for w in windows:
        by_length.setdefault(len(w), []).append(w)
    return [torch.stack(same[i:i + BATCH]) for length in sorted(by_length) for same in [by_length[length]]
            for i in range(0, len(same), BATCH)]


def decoder_layers(model: Any) -> tuple[str, Any]:
    """(dotted name, ModuleList) of the model's decoder layers: the ModuleList as long as the config's
    ``num_hidden_layers``."""
    import torch

    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    count = getattr(config, "num_hidden_layers", None)
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) == count:
            return name, module
    raise RunnerInputError(f"quantization: gptq cannot find the decoder layers of {type(model).__name__}")


class _Captured(Exception):
    pass


def _first_layer_inputs(model: Any, layer: Any, batches: list[Any]) -> list[tuple[Any, dict[str, Any]]]:
    import torch

    captured: list[tuple[Any, dict[str, Any]]] = []

    def hook(module: Any, args: tuple, kwargs: dict) -> None:
        hidden = args[0] if args else kwargs.pop("hidden_states")
        captured.append((hidden, {k: v for k, v in kwargs.items() if k != "hidden_states"}))
        raise _Captured

    handle = layer.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        with torch.no_grad():
            for batch in batches:
                try:
                    model(input_ids=batch, attention_mask=torch.ones_like(batch), use_cache=False)
                except _Captured:
                    pass
    finally:
        handle.remove()
    return captured


def _run_layer(layer: Any, inputs: list[tuple[Any, dict[str, Any]]]) -> list[tuple[Any, dict[str, Any]]]:
    import torch

    out = []
    with torch.no_grad():
        for hidden, kwargs in inputs:
            result = layer(hidden, **kwargs)
            out.append((result[0] if isinstance(result, tuple) else result, kwargs))
    return out


def _hessians(layer: Any, modules: dict[str, Any], inputs: list[tuple[Any, dict[str, Any]]]) -> dict[str, Any]:
    """X^T X of every module in ``modules`` (name -> Linear inside ``layer``) over one pass of ``inputs``."""
    import torch

    sums = {name: torch.zeros(m.in_features, m.in_features, dtype=torch.float64) for name, m in modules.items()}
    last: list[Any] = [None, None]  # (input, X^T X): q/k/v (gate/up) read the same input tensor

    def accumulate(name: str) -> Any:
        def hook(module: Any, args: tuple, output: Any) -> None:
            if args[0] is not last[0]:  # identity, and the reference keeps it alive
                x = args[0].detach().reshape(-1, args[0].shape[-1]).float()
                last[:] = [args[0], (x.T @ x).double()]  # float32 products, float64 sums
            sums[name] += last[1]
        return hook

    handles = [m.register_forward_hook(accumulate(name)) for name, m in modules.items()]
    try:
        _run_layer(layer, inputs)
    finally:
        for h in handles:
            h.remove()
    return sums


def gptq_(model: Any, plan: LayerPlan, calibration_windows: list[Any], progress: Any = None) -> dict[str, Solved]:
    """Quantize ``model`` in place, sequentially (module docstring); returns each solved layer."""
    import torch

    grid = grid_of(plan)
    prefix, layers = decoder_layers(model)
    modules = dict(model.named_modules())
    wanted = set(plan.quantized)
    outside = sorted(n for n in wanted if not n.startswith(prefix + "."))
    if outside:
        raise RunnerInputError(f"quantization: gptq quantizes Linear layers inside the decoder layers ({prefix}.*); "
                               f"protect {', '.join(outside[:3])} or use algorithm rtn")
    for name in wanted:
        columns = modules[name].in_features
        if grid.group and columns % grid.group:
            raise RunnerError(f"internal: {name} has {columns} inputs, not a multiple of group size {grid.group} "
                              "(the runner protects such layers before quantizing)")
    inputs = _first_layer_inputs(model, layers[0], _batches(calibration_windows))
    solved: dict[str, Solved] = {}
    for index, layer in enumerate(layers):
        here = {f"{prefix}.{index}.{n}": m for n, m in layer.named_modules() if f"{prefix}.{index}.{n}" in wanted}
        if here:
            hessians = _hessians(layer, here, inputs)
            for name, module in here.items():
                result = solve(module.weight, hessians[name], grid, act_order=ACT_ORDER)
                module.weight.data = result.dequantized(grid.group).to(module.weight.dtype)
                solved[name] = result
        if index + 1 < len(layers):
            inputs = _run_layer(layer, inputs)
        if progress:
            progress(index + 1, len(layers), "gptq")
    for name, result in solved.items():
        module = modules[name]
        module.weight = torch.nn.Parameter(_intx_tensor(result, grid), requires_grad=False)
    return solved


def _intx_tensor(result: Solved, grid: Grid) -> Any:
    """torchao's int-x weight tensor holding exactly GPTQ's integers and scales."""
    import torch
    from torchao.quantization import IntxUnpackedToInt8Tensor

    rows, columns = result.qdata.shape
    group = grid.group or columns
    return IntxUnpackedToInt8Tensor(
        qdata=result.qdata.contiguous(), scale=result.scale.contiguous().float(),
        zero_point=torch.zeros_like(result.scale, dtype=torch.int8), target_dtype=getattr(torch, f"int{grid.bits}"),
        block_size=(1, group), dtype=torch.float32, activation_quantization=None)


class Quantized(in_place.ModuleCandidate):
    """The GPTQ candidate; keeps what the compressed-tensors checkpoint is written from."""

    def __init__(self, model: Any, plan: LayerPlan, task: str, *, full: Any, tokenizer: Any, solved: dict[str, Solved],
                 stats: dict[str, Any]):
        super().__init__(model, plan, task)
        self.full = full  # the full-precision model (the checkpoint's non-quantized tensors)
        self.tokenizer = tokenizer
        self.solved = solved
        self.stats = stats

    def save(self, directory: Path) -> dict[str, Any]:
        import torch

        torch.save(self.model.state_dict(), directory / WEIGHTS_FILE)
        self.model.config.save_pretrained(directory)
        diff = write_checkpoint(self, directory / CHECKPOINT_DIR)
        return {**self.stats, "checkpoint": CHECKPOINT_DIR, "checkpoint_format": "compressed-tensors pack-quantized",
                "checkpoint_max_abs_diff": diff, "weights_files": [WEIGHTS_FILE]}


def ct_config(plan: LayerPlan, output_layer: str | None) -> Any:
    from compressed_tensors.quantization import QuantizationArgs, QuantizationConfig, QuantizationScheme

    grid = grid_of(plan)
    args = QuantizationArgs(num_bits=grid.bits, type="int", symmetric=True, group_size=grid.group,
                            strategy="group" if grid.group else "channel")
    ignore = list(plan.protected) + ([output_layer] if output_layer else [])
    return QuantizationConfig(config_groups={"group_0": QuantizationScheme(targets=["Linear"], weights=args)},
                              ignore=ignore, quantization_status="frozen")


def write_checkpoint(candidate: Quantized, directory: Path) -> float:
    """The compressed-tensors checkpoint of ``candidate``; returns the largest logit difference against
    the CPU artifact (checked against ``CHECKPOINT_TOLERANCE``)."""
    from compressed_tensors.compressors import ModelCompressor
    from compressed_tensors.quantization import apply_quantization_config

    plan, grid = candidate.plan, grid_of(candidate.plan)
    model = copy.deepcopy(candidate.full)
    # A model read from GGUF carries transformers' gguf quantizer, which refuses to save: the weights are
    # already dequantized floats here, and the checkpoint's quantization is compressed-tensors'.
    model.hf_quantizer = None
    if getattr(model.config, "quantization_config", None) is not None:
        del model.config.quantization_config
    output = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    output_name = next((n for n, m in model.named_modules() if m is output), None)
    apply_quantization_config(model, ct_config(plan, output_name), show_progress=False)
    modules = dict(model.named_modules())
    for name, result in candidate.solved.items():
        module = modules[name]
        module.weight.data = result.dequantized(grid.group)
        module.weight_scale.data = result.scale.to(module.weight_scale.dtype).reshape(module.weight_scale.shape)
        if hasattr(module, "weight_zero_point"):
            module.weight_zero_point.data.zero_()
    compressor = ModelCompressor.from_pretrained_model(model, quantization_format="pack-quantized")
    compressor.compress_model(model)
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    compressor.update_config(str(directory))
    if candidate.tokenizer is not None:
        candidate.tokenizer.save_pretrained(directory)
    return check_checkpoint(directory, candidate.model)


def check_checkpoint(directory: Path, cpu_model: Any) -> float:
    import torch
    from transformers import AutoModelForCausalLM

    reloaded = AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32)
    reloaded.eval()
    vocab = int(cpu_model.config.vocab_size)
    tokens = torch.arange(7, 7 + 24).remainder(vocab).unsqueeze(0)
    with torch.no_grad():
        a = reloaded(input_ids=tokens).logits
        b = cpu_model(input_ids=tokens).logits
    diff = float((a - b).abs().max())
    if not diff <= CHECKPOINT_TOLERANCE:
        raise RunnerError(f"the compressed-tensors checkpoint does not reproduce the CPU artifact: logits differ by {diff:.3g} "
                          f"(tolerance {CHECKPOINT_TOLERANCE})")
    return diff


class Prepared:
    def __init__(self, model: Any, tokenizer: Any, task: str, windows: list[Any]):
        self.model, self.tokenizer, self.task, self.windows = model, tokenizer, task, windows

    def quantize(self, plan: LayerPlan) -> Quantized:
        module = copy.deepcopy(self.model)
        solved = gptq_(module, plan, self.windows)
        module.eval()
        grid = grid_of(plan)
        stats = {
            "algorithm": "gptq", "group_size": grid.group, "bits": grid.bits, "symmetric": True,
            "act_order": ACT_ORDER, "dampening": DAMP, "block": BLOCK,
            "calibration_windows": len(self.windows), "calibration_tokens": int(sum(len(w) for w in self.windows)),
            "proxy_loss": round(sum(s.proxy_loss for s in solved.values()), 6),
        }
        return Quantized(module, plan, self.task, full=self.model, tokenizer=self.tokenizer, solved=solved, stats=stats)


def prepare(model: Any, tokenizer: Any, task: str, calibration: Sequence[Record], workdir: Path) -> Prepared:
    if task != "causal-lm":
        raise RunnerInputError(f"quantization: gptq quantizes causal-lm models, not {task}")
    return Prepared(model, tokenizer, task, _tokenize(tokenizer, calibration))


def reload(directory: Path, config: dict[str, Any], model_class: Any, task: str) -> tuple[Any, Forward]:
    return torchao_backend.reload(directory, config, model_class, task)

"""Load the model a manifest names, describe it, and hash its weights canonically.

``load_model(spec)`` returns a ``LoadedModel``: the torch module in eval mode, its tokenizer, a
``Forward`` (``(input_ids, attention_mask) -> tensor``) with one output shape per task, the
``ModelInfo`` the envelope check needs, and the spec it came from.

Sources:
- an absolute directory (the compiler resolves ``./models/x`` against the repository root);
- a hub id with a pinned revision, read through the Hugging Face cache. ``HF_HUB_OFFLINE=1`` is
  honoured by ``huggingface_hub``; a revision missing from the cache is a ``RunnerError`` telling the
  user how to populate it;
- either of the above plus ``gguf_file``: transformers dequantizes the GGUF tensors to float.

``trust_remote_code`` is passed through as given: the compiler has already checked it against the
repository allowlist, so the runner never widens it.

Weights load only from formats that cannot run code when read: safetensors, GGUF (and ONNX, which
the backends read). Pickle-based checkpoints (``pytorch_model.bin``, ``*.pt``, ``*.pkl``, ...)
execute whatever their pickle says on load, so a directory holding only those is refused with a
``RunnerInputError`` before transformers sees it, and every ``from_pretrained`` asks for
safetensors (``use_safetensors=True``), unless the repository's policy allows pickle for this
source (``quantgate.yaml`` ``pickle_allowed``, read from the base branch; the compiler passes it as
``allow_pickle``). Even then transformers reads pickles with ``torch.load(weights_only=True)``.

The baseline is full precision: weights load as float32 on CPU whatever dtype the checkpoint was
saved in, so the reference is not itself a reduced-precision model.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from runners.base import ModelInfo, ModelSpec, RunnerError, RunnerInputError

if TYPE_CHECKING:
    import torch

#: (input_ids [B,T], attention_mask [B,T]) -> last_hidden_state [B,T,H] (sentence-similarity),
#: logits [B,C] (text-classification) or logits [B,T,V] (causal-lm).
Forward = Callable[["torch.Tensor", "torch.Tensor"], "torch.Tensor"]

TASKS = ("sentence-similarity", "text-classification", "causal-lm")


@dataclass
class LoadedModel:
    model: Any  # torch.nn.Module, eval mode
    tokenizer: Any
    forward: Forward
    info: ModelInfo
    spec: ModelSpec


#: Weight files that cannot run code when loaded.
SAFE_SUFFIXES = (".safetensors", ".gguf", ".onnx")
#: Weight files read with pickle (``torch.load``): loading one can run arbitrary code.
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")
POLICY_KEY = "pickle_allowed"


def check_weight_format(spec: ModelSpec, allow_pickle: bool = False) -> None:
    """Refuse a local model directory whose weights exist only in a pickle-based format (unless
    ``allow_pickle``): ``RunnerInputError`` naming the file and the policy key. Loads nothing."""
    if allow_pickle or not os.path.isabs(spec.source) or not os.path.isdir(spec.source) or spec.gguf_file:
        return
    names = sorted(os.listdir(spec.source))
    if any(name.endswith(SAFE_SUFFIXES) for name in names):
        return
    pickles = [name for name in names if name.endswith(PICKLE_SUFFIXES) and name != "training_args.bin"]
    if pickles:
        raise RunnerInputError(
            f"model.source: {spec.source} holds its weights only as {pickles[0]}, a pickle-based format that can "
            "run code when it is loaded; convert it to safetensors (save_pretrained(..., safe_serialization=True)) "
            f"or, if this source is trusted, list it under {POLICY_KEY} in quantgate.yaml on the base branch",
            location=os.path.join(spec.source, pickles[0]),
        )


def load_model(spec: ModelSpec, device: str = "cpu", allow_pickle: bool | None = None) -> LoadedModel:
    """Load ``spec`` on ``device`` in eval mode; every failure is a ``RunnerError`` naming the source.
    ``allow_pickle`` (default: ``spec.allow_pickle`` when the spec carries it, else False): the
    repository's ``pickle_allowed`` policy admits this source's pickle-based weights."""
    import torch

    if spec.task not in TASKS:
        raise RunnerError(f"model.task: unknown task {spec.task!r}; expected one of {', '.join(TASKS)}")
    allow_pickle = bool(getattr(spec, "allow_pickle", False)) if allow_pickle is None else allow_pickle
    check_weight_format(spec, allow_pickle)
    location, kwargs = _where(spec)
    if not allow_pickle and not spec.gguf_file:
        kwargs["use_safetensors"] = True
    model_class = _model_class(spec.task)
    try:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(location, **{k: v for k, v in kwargs.items() if k != "use_safetensors"})
        model = model_class.from_pretrained(location, dtype=torch.float32, **kwargs)
    except Exception as exc:  # noqa: BLE001 - any loading failure is "the model would not load" (exit 3)
        raise RunnerError(_load_failure(spec, exc)) from exc
    model.to(device)
    model.eval()
    if spec.task == "causal-lm" and tokenizer.pad_token_id is None:
        # Batched windows are right-padded; the padded positions are masked out of every loss.
        tokenizer.pad_token = tokenizer.eos_token
    return LoadedModel(model=model, tokenizer=tokenizer, forward=make_forward(model, spec.task),
                       info=model_info(model), spec=spec)


def make_forward(model: Any, task: str) -> Forward:
    """The task's ``Forward`` over a transformers module (also used on quantized modules)."""
    if task == "sentence-similarity":
        return lambda input_ids, attention_mask: model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
    if task in ("text-classification", "causal-lm"):
        return lambda input_ids, attention_mask: model(input_ids=input_ids, attention_mask=attention_mask).logits
    raise RunnerError(f"unknown task {task!r}")


def _model_class(task: str) -> Any:
    from transformers import AutoModel, AutoModelForCausalLM, AutoModelForSequenceClassification

    return {
        "sentence-similarity": AutoModel,
        "text-classification": AutoModelForSequenceClassification,
        "causal-lm": AutoModelForCausalLM,
    }[task]


def _where(spec: ModelSpec) -> tuple[str, dict[str, Any]]:
    """Where transformers should load from, and the keyword arguments that pin it."""
    kwargs: dict[str, Any] = {"trust_remote_code": bool(spec.trust_remote_code)}
    if spec.gguf_file:
        kwargs["gguf_file"] = spec.gguf_file
    if os.path.isabs(spec.source):
        if not os.path.isdir(spec.source):
            raise RunnerError(f"model.source: directory {spec.source} does not exist (for the demo models run scripts/setup)")
        if spec.gguf_file and not os.path.isfile(os.path.join(spec.source, spec.gguf_file)):
            raise RunnerError(f"model.gguf_file: {spec.gguf_file} is not in {spec.source}")
        return spec.source, kwargs
    if not spec.revision:
        raise RunnerError(f"model.revision: hub model {spec.source} has no pinned revision")
    kwargs["revision"] = spec.revision
    return spec.source, kwargs


def _offline() -> bool:
    try:
        from huggingface_hub import constants

        return bool(constants.HF_HUB_OFFLINE)
    except ImportError:  # pragma: no cover - huggingface_hub ships with transformers
        return os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0", "false", "False")


def _load_failure(spec: ModelSpec, exc: Exception) -> str:
    first = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0]}" if str(exc).strip() else type(exc).__name__
    if os.path.isabs(spec.source):
        return f"model.source: could not load {spec.source}" + (f" ({spec.gguf_file})" if spec.gguf_file else "") + f": {first}"
    hint = (
        f"it is not in the Hugging Face cache and HF_HUB_OFFLINE is set: on a machine with network access run "
        f"`huggingface-cli download {spec.source} --revision {spec.revision}` (with the same HF_HOME), "
        f"or unset HF_HUB_OFFLINE"
        if _offline()
        else "check the hub id, that the revision exists, and your network or HF_TOKEN"
    )
    return f"model.source: could not load {spec.source}@{spec.revision}: {hint} ({first})"


# ------------------------------------------------------------------------------------ description


def quantizable_layer_names(model: Any) -> list[str]:
    """Names of the ``nn.Linear`` modules a backend would quantize, in module order.

    The output projection (``get_output_embeddings()``, e.g. ``lm_head``) is left out: it is often
    tied to the input embeddings, and quantizing it is a separate, deliberate choice.
    """
    import torch

    output = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    return [name for name, module in model.named_modules()
            if isinstance(module, torch.nn.Linear) and module is not output]


def model_info(model: Any) -> ModelInfo:
    """Architecture facts from the config plus counts from the module (no data needed)."""
    config = model.config
    text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
    heads = int(getattr(text_config, "num_attention_heads", 0) or 0)
    hidden = int(getattr(text_config, "hidden_size", 0) or 0)
    kv_heads = int(getattr(text_config, "num_key_value_heads", None) or heads)
    head_dim = int(getattr(text_config, "head_dim", None) or (hidden // heads if heads else 0))
    params = list(model.parameters())
    layers = quantizable_layer_names(model)
    modules = dict(model.named_modules())
    architectures = getattr(config, "architectures", None) or [type(model).__name__]
    return ModelInfo(
        architecture=str(architectures[0]),
        parameters=int(sum(p.numel() for p in params)),
        dtype_bytes=int(params[0].element_size()) if params else 4,
        num_layers=int(getattr(text_config, "num_hidden_layers", 0) or 0),
        hidden_size=hidden,
        num_attention_heads=heads,
        num_kv_heads=kv_heads,
        head_dim=head_dim,
        quantizable_layers=tuple(layers),
        quantizable_parameters=int(sum(modules[n].weight.numel() for n in layers)),
        vocab_size=int(getattr(text_config, "vocab_size", 0) or 0),
    )


def footprint_bytes(model: Any) -> int:
    """Bytes held by parameters and buffers (tied tensors counted once)."""
    seen: set[int] = set()
    total = 0
    for tensor in list(model.parameters()) + list(model.buffers()):
        key = tensor.data_ptr() if tensor.numel() else id(tensor)
        if key in seen:
            continue
        seen.add(key)
        total += _tensor_nbytes(tensor)
    return total


def _tensor_nbytes(tensor: Any) -> int:
    parts = _plain_tensors(tensor)
    return sum(t.numel() * t.element_size() for t in parts)


# ----------------------------------------------------------------------------------------- hashing


def weights_sha256(model: Any) -> str:
    """sha256 over the state dict, canonically: sorted names, each with dtype, shape and raw bytes.

    Independent of file layout (safetensors metadata order varies between saves) and of device.
    Tensor subclasses (quantized tensors) are hashed through their inner plain tensors.
    """
    digest = hashlib.sha256()
    state = model.state_dict()
    for name in sorted(state):
        value = state[name]
        if not hasattr(value, "dtype"):  # extra state objects some backends keep
            digest.update(f"{name}\0{value!r}\n".encode())
            continue
        for index, tensor in enumerate(_plain_tensors(value)):
            digest.update(f"{name}\0{index}\0{tensor.dtype}\0{tuple(tensor.shape)}\n".encode())
            digest.update(_tensor_bytes(tensor))
    return digest.hexdigest()


def _plain_tensors(tensor: Any) -> list[Any]:
    """A tensor, or the plain tensors a subclass (``__tensor_flatten__``) is made of, in order."""
    import torch

    if type(tensor) in (torch.Tensor, torch.nn.Parameter) or not hasattr(tensor, "__tensor_flatten__"):
        return [tensor]
    names, _ = tensor.__tensor_flatten__()
    out: list[Any] = []
    for attr in names:
        out.extend(_plain_tensors(getattr(tensor, attr)))
    return out


def _tensor_bytes(tensor: Any) -> bytes:
    import torch

    flat = tensor.detach().to("cpu").contiguous().reshape(-1)
    if flat.numel() == 0:
        return b""
    return flat.view(torch.uint8).numpy().tobytes()

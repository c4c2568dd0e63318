"""ONNX Runtime: an ``model.onnx`` artifact for CPU deployment.

Export: ``torch.onnx.export(dynamo=False)`` through a wrapper that calls the model by keyword
(``input_ids``, ``attention_mask``; optimum-onnx pins transformers < 4.58, this works on 5), opset
17, dynamic batch and sequence axes. The export is deterministic for a given torch; producer fields
and doc strings are fixed anyway so the bytes depend only on the weights and the graph.

Modes:
- int8 weights + dynamic int8 activations: ``quantize_dynamic`` per channel, including the embedding
  ``Gather`` (most of a small encoder's bytes);
- int8 or int4 weight-only: ``MatMulNBitsQuantizer`` (symmetric, block = group size, 32 by default).

Protected layers become ``nodes_to_exclude``: the ``MatMul`` (or ``Gemm``, for 2-D inputs) node each
Linear module exported to (``/model/<module path>/MatMul``). Layers the task's output does not use
(a sentence encoder's pooler) are pruned by the export and listed in ``layers_not_in_graph``.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from runners.backends.protocol import Forward, LayerPlan
from runners.datasets import Record

WEIGHTS_FILE = "model.onnx"
OPSET = 17
INPUTS = ("input_ids", "attention_mask")


def _wrapper(model: Any, task: str) -> Any:
    import torch

    class ByKeyword(torch.nn.Module):
        def __init__(self, inner: Any):
            super().__init__()
            self.model = inner  # the attribute name is the node-name prefix: /model/...

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            out = self.model(input_ids=input_ids, attention_mask=attention_mask)
            return out.last_hidden_state if task == "sentence-similarity" else out.logits

    return ByKeyword(model).eval()


def export(model: Any, tokenizer: Any, task: str, path: Path) -> None:
    """Export the full-precision model to ``path`` (deterministic bytes)."""
    import warnings

    import onnx
    import torch

    from runners.perf import synthetic_inputs

    input_ids, attention_mask = synthetic_inputs(tokenizer, 2, 16)
    axes = {"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "sequence"},
            "output": {0: "batch", 1: "sequence"} if task == "sentence-similarity" else {0: "batch"}}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer warnings about python booleans in masking code
        torch.onnx.export(_wrapper(model, task), (input_ids, attention_mask), str(path), input_names=list(INPUTS),
                          output_names=["output"], dynamic_axes=axes, opset_version=OPSET, dynamo=False)
    proto = onnx.load(str(path))
    _fix_metadata(proto)
    onnx.save(proto, str(path))


def _fix_metadata(proto: Any) -> None:
    """Drop whatever could differ between two exports of the same weights (doc strings, metadata)."""
    proto.producer_name = "quantgate"
    proto.producer_version = ""
    proto.doc_string = ""
    del proto.metadata_props[:]
    for node in proto.graph.node:
        node.doc_string = ""


def linear_nodes(proto: Any) -> dict[str, str]:
    """Linear module name -> the MatMul (3-D input) or Gemm (2-D input) node it exported to."""
    out = {}
    for node in proto.graph.node:
        suffix = f"/{node.op_type}"
        if node.op_type in ("MatMul", "Gemm") and node.name.startswith("/model/") and node.name.endswith(suffix):
            out[node.name[len("/model/"):-len(suffix)].replace("/", ".")] = node.name
    return out


def session(path: Path) -> Any:
    import onnxruntime

    from runners.perf import pinned_threads

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = pinned_threads()  # the same thread count torch candidates run with
    options.log_severity_level = 3
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def make_forward(sess: Any) -> Forward:
    import numpy as np
    import torch

    def forward(input_ids: Any, attention_mask: Any) -> Any:
        feeds = {"input_ids": np.asarray(input_ids.cpu().numpy(), dtype=np.int64),
                 "attention_mask": np.asarray(attention_mask.cpu().numpy(), dtype=np.int64)}
        return torch.from_numpy(sess.run(None, feeds)[0])

    return forward


class Quantized:
    def __init__(self, path: Path, plan: LayerPlan, config: dict[str, Any]):
        self.path = path
        self.plan = plan
        self.config = config
        self.session = session(path)
        self.forward = make_forward(self.session)

    def footprint_bytes(self) -> int:
        return self.path.stat().st_size

    def save(self, directory: Path) -> dict[str, Any]:
        shutil.copyfile(self.path, directory / WEIGHTS_FILE)
        return {**self.config, "weights_files": [WEIGHTS_FILE]}


class Prepared:
    """The full-precision export, quantized again for every plan."""

    def __init__(self, fp32_path: Path, workdir: Path):
        import onnx

        self.fp32_path = fp32_path
        self.workdir = workdir
        self.nodes = linear_nodes(onnx.load(str(fp32_path), load_external_data=False))
        self.built = 0

    def excluded(self, plan: LayerPlan) -> list[str]:
        """The graph nodes of the protected layers. A layer the task's output does not use (e.g. a
        sentence encoder's pooler) was pruned from the graph: there is nothing to keep."""
        return sorted(self.nodes[name] for name in plan.protected if name in self.nodes)

    def quantize(self, plan: LayerPlan) -> Quantized:
        import onnx

        exclude = self.excluded(plan)
        self.built += 1
        out = self.workdir / f"candidate-{self.built}.onnx"
        with _quiet_quantizers():
            config = self._quantize(plan, exclude, out)
        proto = onnx.load(str(out))
        _fix_metadata(proto)
        onnx.save(proto, str(out))
        unused = [name for name in plan.quantized + plan.protected if name not in self.nodes]
        return Quantized(out, plan, {**config, "opset": OPSET, "export": "torch.onnx.export(dynamo=False)",
                                     "layers_not_in_graph": unused})

    def _quantize(self, plan: LayerPlan, exclude: list[str], out: Path) -> dict[str, Any]:
        import onnx

        if plan.activations == "dynamic-int8":
            from onnxruntime.quantization import QuantType, quantize_dynamic

            quantize_dynamic(str(self.fp32_path), str(out), per_channel=True, weight_type=QuantType.QInt8,
                             nodes_to_exclude=exclude)
            config = {"quantizer": "quantize_dynamic", "per_channel": True, "weight_type": "QInt8",
                      "embedding_gather": True, "nodes_to_exclude": exclude}
        else:
            from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

            bits = 8 if plan.weights == "int8" else 4
            quantizer = MatMulNBitsQuantizer(onnx.load(str(self.fp32_path)), bits=bits, block_size=plan.int4_group,
                                             is_symmetric=True, nodes_to_exclude=exclude)
            quantizer.process()
            quantizer.model.save_model_to_file(str(out), use_external_data_format=False)
            config = {"quantizer": "MatMulNBitsQuantizer", "bits": bits, "block_size": plan.int4_group,
                      "is_symmetric": True, "nodes_to_exclude": exclude}
        return config


@contextlib.contextmanager
def _quiet_quantizers() -> Iterator[None]:
    """ORT's quantizers log every node at INFO and suggest pre-processing on the root logger at
    WARNING (it does not apply to this graph); both are silenced while they run, then restored."""
    loggers = [logging.getLogger(), logging.getLogger("onnxruntime.quantization.matmul_nbits_quantizer")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=False):
            lg.setLevel(level)


def prepare(model: Any, tokenizer: Any, task: str, calibration: Sequence[Record], workdir: Path) -> Prepared:
    """Export once. Weight-only MatMulNBits and dynamic activations need no statistics, so
    ``calibration`` is not used (the registry declares ``needs_calibration=False``)."""
    del calibration
    fp32 = workdir / "fp32.onnx"
    export(model, tokenizer, task, fp32)
    return Prepared(fp32, workdir)


def reload(directory: Path, config: dict[str, Any], model_class: Any, task: str) -> tuple[Any, Forward]:
    return None, make_forward(session(directory / WEIGHTS_FILE))

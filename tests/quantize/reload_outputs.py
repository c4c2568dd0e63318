"""The conformance suite's fresh process: reload artifacts from their files alone and run them.

    python tests/quantize/reload_outputs.py request.json result.pt

``request.json``: ``{"threads": N, "texts": [...], "artifacts": {case: {"directory": ..., "protected": name}}}``.
Each artifact goes through ``runners.artifacts.load_artifact`` (hash check, the backend named in its
``artifact.json``, the tokenizer it ships), the texts are tokenized with that tokenizer and run through
its forward. ``result.pt`` (``torch.save``) maps each case to its token ids, output and whether the
protected layer came back as a plain float tensor (None when the backend has no torch module), or to
``{"error": ...}``: one case failing does not hide the others. One process reloads every case, so the
suite pays for one torch import, not one per case.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    import torch

    from runners.artifacts import load_artifact

    request = json.loads(Path(argv[0]).read_text())
    torch.set_num_threads(request["threads"])  # the builder's thread count: same kernels, same partitioning
    out: dict[str, dict] = {}
    for case, spec in request["artifacts"].items():
        try:
            loaded = load_artifact(spec["directory"])
            enc = loaded.tokenizer(request["texts"], padding=True, return_tensors="pt")
            with torch.inference_mode():
                output = loaded.forward(enc["input_ids"], enc["attention_mask"])
            plain = None
            if loaded.model is not None:
                weight = dict(loaded.model.named_modules())[spec["protected"]].weight
                plain = type(weight) in (torch.nn.Parameter, torch.Tensor) and weight.dtype == torch.float32
            out[case] = {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"],
                         "output": output.clone(), "protected_plain": plain}
        except Exception as exc:  # noqa: BLE001 - reported per case to the parent, which fails that case
            out[case] = {"error": f"{type(exc).__name__}: {exc}"}
    torch.save(out, argv[1])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

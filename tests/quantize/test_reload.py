"""torch-format artifacts (torchao, optimum-quanto) reload from their files alone to the same outputs."""

from __future__ import annotations

import pytest

from runners.artifacts import load_artifact
from runners.ptq import Quantizer


pytestmark = pytest.mark.model

TEXTS = ["A man is playing a guitar.", "Two dogs run across a snowy field while the sun sets behind the hills."]


@pytest.mark.parametrize("backend,weights,activations", [("optimum-quanto", "int4", "none"), ("torchao", "int4", "none"),
                                                          ("torchao", "int8", "dynamic-int8")])
def test_save_then_reload_gives_the_same_outputs(backend, weights, activations, quant_spec, model_spec, eval_spec,
                                                  envelope_spec, baseline, tmp_path):
    import torch

    quant = quant_spec(backend, weights, activations, protected=("encoder.layer.5.output.dense",))
    root = tmp_path / "artifacts"
    with Quantizer(model_spec, quant, eval_spec, envelope_spec, baseline, str(root)) as quantizer:
        candidate = quantizer.quantize(quantizer.protected)
        _, artifact = quantizer.save(quantizer.protected, "ptq", candidate=candidate)
        enc = quantizer.loaded.tokenizer(TEXTS, padding=True, return_tensors="pt")
        with torch.inference_mode():
            built = candidate.forward(enc["input_ids"], enc["attention_mask"])
            full = quantizer.loaded.forward(enc["input_ids"], enc["attention_mask"])
    reloaded = load_artifact(tmp_path / artifact.path, artifact.format)
    with torch.inference_mode():
        again = reloaded.forward(enc["input_ids"], enc["attention_mask"])
    assert torch.equal(built, again)
    assert not torch.equal(built, full)  # it really is quantized
    kept = dict(reloaded.model.named_modules())["encoder.layer.5.output.dense"]
    assert type(kept.weight) in (torch.nn.Parameter, torch.Tensor) and kept.weight.dtype == torch.float32
    assert reloaded.record["protected_layers"] == ["encoder.layer.5.output.dense"]

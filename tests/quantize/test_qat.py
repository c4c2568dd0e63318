"""Play 6 on the real demo model: a short distillation run makes the int4 artifact closer to fp32."""

from __future__ import annotations

import pytest

from runners.artifacts import load_artifact
from runners.base import QatSpec
from runners.ptq import Quantizer
from runners.qat import run_qat

pytestmark = pytest.mark.model

STEPS = 20


def _cosine_to_fp32(forward, reference, enc):
    import torch

    with torch.inference_mode():
        out = forward(enc["input_ids"], enc["attention_mask"])
    m = enc["attention_mask"].unsqueeze(-1).float()
    a = torch.nn.functional.normalize((out * m).sum(1) / m.sum(1), dim=1)
    b = torch.nn.functional.normalize((reference * m).sum(1) / m.sum(1), dim=1)
    return float((a * b).sum(1).mean())


def test_qat_improves_the_int4_candidate(model_spec, eval_spec, envelope_spec, baseline, quant_spec, timing, tmp_path,
                                         repo_root):
    import torch

    from runners.base import DatasetSpec
    from runners.datasets import read_examples

    quant = quant_spec("torchao", "int4", samples=128)
    qat = QatSpec(justification="test: high-volume encoder", steps=STEPS, learning_rate=1e-4, seed=0)
    result = run_qat(model_spec, quant, qat, eval_spec, envelope_spec, baseline, str(tmp_path / "artifacts"), **timing)
    assert result.steps == STEPS and len(result.losses) == STEPS
    assert sum(result.losses[-5:]) < sum(result.losses[:5])  # it learned
    assert result.candidate.method == "qat" and result.candidate.quality.n_examples == baseline.quality.n_examples

    # Judge on held-out sentences (the dev set; training saw only train-set calibration texts).
    held_out = read_examples(DatasetSpec(path=str(repo_root / "data/stsb/sts-dev.tsv"), format="tsv",
                                         columns={"score": 4, "text_a": 5, "text_b": 6}, limit=48), "sentence-similarity")
    with Quantizer(model_spec, quant, eval_spec, envelope_spec, baseline, str(tmp_path / "artifacts")) as quantizer:
        enc = quantizer.loaded.tokenizer([t for r in held_out for t in r.texts], padding=True, truncation=True,
                                         max_length=128, return_tensors="pt")
        with torch.inference_mode():
            reference = quantizer.loaded.forward(enc["input_ids"], enc["attention_mask"])
        ptq = _cosine_to_fp32(quantizer.quantize(()).forward, reference, enc)
    trained = load_artifact(tmp_path / result.candidate.artifact.path)
    assert trained.record["qat"]["steps"] == STEPS
    after = _cosine_to_fp32(trained.forward, reference, enc)
    assert 1 - after < 0.8 * (1 - ptq), (ptq, after)

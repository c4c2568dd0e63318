"""Play 5 on the real demo model: the proxy ranks layers, the search spends few full evaluations."""

from __future__ import annotations

import math

import pytest

from runners.base import QualityBar
from runners.mixed_precision import fake_quantize_weight, run_mixed_precision

pytestmark = pytest.mark.model


def test_fake_quantization_matches_the_scheme():
    import torch

    w = torch.randn(8, 64)
    q8 = fake_quantize_weight(w, "int8", 32)
    q4 = fake_quantize_weight(w, "int4", 32)
    # int8 per channel: at most 255 levels per row; int4 per group of 32: at most 16 levels per group.
    assert all(len(set(row.tolist())) <= 255 for row in q8)
    assert all(len(set(g.tolist())) <= 16 for g in q4.reshape(8, 2, 32).reshape(16, 32))
    assert (w - q4).abs().max() > (w - q8).abs().max() > 0


def test_protecting_the_proxys_top_layers_beats_protecting_its_bottom_layers(minilm_dir, repo_root):
    """The ranking is worth something: keeping the 5 layers it calls most sensitive leaves less output
    error than keeping the 5 it calls least sensitive (all other layers int4)."""
    import torch

    from runners.base import DatasetSpec, ModelSpec
    from runners.datasets import read_examples
    from runners.mixed_precision import _relative_error, sensitivity
    from runners.models import load_model

    loaded = load_model(ModelSpec(source=str(minilm_dir), revision=None, task="sentence-similarity"))
    calib = read_examples(DatasetSpec(path=str(repo_root / "data/stsb/sts-train.tsv"), format="tsv",
                                      columns={"score": 4, "text_a": 5, "text_b": 6}, limit=8), "sentence-similarity")
    held_out = read_examples(DatasetSpec(path=str(repo_root / "data/stsb/sts-dev.tsv"), format="tsv",
                                         columns={"score": 4, "text_a": 5, "text_b": 6}, limit=16), "sentence-similarity")
    layers = loaded.info.quantizable_layers
    scores = sensitivity(loaded.model, loaded.tokenizer, "sentence-similarity", layers, "int4", "none", 32,
                         tuple(t for r in calib for t in r.texts), 128)
    ranked = sorted(scores, key=lambda n: -scores[n])
    enc = loaded.tokenizer([t for r in held_out for t in r.texts], padding=True, return_tensors="pt")
    modules = dict(loaded.model.named_modules())
    with torch.inference_mode():
        ref = loaded.forward(enc["input_ids"], enc["attention_mask"])

        def error_keeping(kept):
            originals = {n: modules[n].weight.data for n in layers if n not in kept}
            for n, w in originals.items():
                modules[n].weight.data = fake_quantize_weight(w, "int4", 32)
            try:
                return _relative_error(loaded.forward(enc["input_ids"], enc["attention_mask"]), ref, enc["attention_mask"])
            finally:
                for n, w in originals.items():
                    modules[n].weight.data = w

        assert error_keeping(set(ranked[:5])) < 0.8 * error_keeping(set(ranked[-5:]))


def test_search_spends_at_most_2_plus_log2_L_full_evaluations(model_spec, eval_spec, envelope_spec, baseline,
                                                              quant_spec, timing, tmp_path):
    accept_all = QualityBar(metric="spearman", lower_is_better=False, overall=-1.0, hardest=-1.0)
    quant = quant_spec("onnxruntime", "int4")
    result = run_mixed_precision(model_spec, quant, eval_spec, envelope_spec, baseline, accept_all, 0.2,
                                 str(tmp_path / "artifacts"), **timing)
    n = len(baseline.model_info.quantizable_layers)
    assert result.cap_layers == math.floor(0.2 * n) == 7
    assert result.one_at_a_time_cost == 2 * n
    assert result.full_evaluations == len(result.evaluations) <= 1 + math.ceil(math.log2(result.cap_layers)) + 1
    assert result.full_evaluations <= 2 + math.ceil(math.log2(n))
    ranked = list(result.sensitivity)
    assert len(ranked) == n and list(result.sensitivity.values()) == sorted(result.sensitivity.values(), reverse=True)
    # Every candidate passes this bar, so the search walks down to the single most sensitive layer.
    assert [len(e.protected_layers) for e in result.evaluations] == [7, 3, 1, 1]
    assert result.passed and result.best.protected_layers == (ranked[0],)
    assert result.best.method == "mixed_precision" and result.best.config["nodes_to_exclude"]
    # The last evaluation is the artifact judged in a fresh process: same figures as the candidate.
    assert result.evaluations[-1].value == result.best.quality.value
    assert result.evaluations[0].footprint_bytes > result.evaluations[-1].footprint_bytes


def test_when_the_cap_misses_it_says_so_and_keeps_the_most_protected_candidate(
        model_spec, eval_spec, envelope_spec, baseline, quant_spec, timing, tmp_path):
    impossible = QualityBar(metric="spearman", lower_is_better=False, overall=2.0, hardest=2.0)
    result = run_mixed_precision(model_spec, quant_spec("onnxruntime", "int4"), eval_spec, envelope_spec, baseline,
                                 impossible, 0.1, str(tmp_path / "artifacts"), **timing)
    assert not result.passed
    assert result.cap_layers == 3 and result.full_evaluations == 2
    assert len(result.best.protected_layers) == 3 and not any(e.passed for e in result.evaluations)

"""Model loading, ModelInfo, the canonical weights hash, and text classification plumbing."""

from __future__ import annotations

import pytest
import torch

from runners.base import DatasetSpec, EvalSpec, ModelSpec, RunnerError, RunnerInputError
from runners.evaluate import evaluate
from runners.models import footprint_bytes, load_model, weights_sha256

pytestmark = pytest.mark.model


def test_minilm_info_from_config(minilm):
    info = minilm.info
    assert (info.architecture, info.num_layers, info.hidden_size, info.num_attention_heads, info.num_kv_heads, info.head_dim) == \
        ("BertModel", 6, 384, 12, 12, 32)
    assert info.parameters == sum(p.numel() for p in minilm.model.parameters()) == 22_713_216
    assert info.dtype_bytes == 4 and info.vocab_size == 30522
    assert len(info.quantizable_layers) == 37 and "encoder.layer.0.attention.self.query" in info.quantizable_layers
    assert info.quantizable_parameters == sum(dict(minilm.model.named_modules())[n].weight.numel() for n in info.quantizable_layers)
    assert footprint_bytes(minilm.model) >= info.parameters * 4
    assert not minilm.model.training


def test_weights_hash_is_stable_across_loads_and_a_save_reload(minilm, minilm_spec, tmp_path):
    first = weights_sha256(minilm.model)
    assert weights_sha256(load_model(minilm_spec).model) == first
    minilm.model.save_pretrained(tmp_path / "saved")
    minilm.tokenizer.save_pretrained(tmp_path / "saved")
    reloaded = load_model(ModelSpec(source=str(tmp_path / "saved"), revision=None, task="sentence-similarity"))
    assert weights_sha256(reloaded.model) == first
    with torch.no_grad():
        reloaded.model.pooler.dense.bias[0] += 1e-3
    assert weights_sha256(reloaded.model) != first


def test_missing_directory_and_uncached_hub_model_are_runner_errors(tmp_path):
    with pytest.raises(RunnerError, match="does not exist"):
        load_model(ModelSpec(source=str(tmp_path / "absent"), revision=None, task="sentence-similarity"))
    with pytest.raises(RunnerError) as err:
        load_model(ModelSpec(source="quantgate-test/not-in-any-cache", revision="0" * 40, task="sentence-similarity"))
    assert "huggingface-cli download quantgate-test/not-in-any-cache --revision " + "0" * 40 in str(err.value)


def test_text_classification_accuracy_matches_the_logits(minilm_dir, tmp_path):
    torch.manual_seed(0)  # the classification head is freshly initialised; fix it
    loaded = load_model(ModelSpec(source=str(minilm_dir), revision=None, task="text-classification"))
    texts = ["a fine day", "terrible service", "I loved it", "never again", "quite good", "awful"]
    labels = [1, 0, 1, 0, 1, 0]
    path = tmp_path / "cls.tsv"
    path.write_text("".join(f"{y}\t{t}\n" for y, t in zip(labels, texts, strict=False)), encoding="utf-8")
    spec = EvalSpec(task="text-classification", metric="accuracy", lower_is_better=False,
                    dataset=DatasetSpec(path=str(path), format="tsv", columns={"label": 0, "text": 1}),
                    hardest_fraction=0.5, batch_size=4, sequence_length=32)
    outcome = evaluate(loaded.forward, loaded.tokenizer, spec, None)
    with torch.no_grad():
        enc = loaded.tokenizer(texts, padding=True, return_tensors="pt")
        logits = loaded.model(**enc).logits
    expected = (logits.argmax(-1) == torch.tensor(labels)).float().mean().item()
    assert outcome.quality.value == pytest.approx(expected)
    losses = torch.nn.functional.cross_entropy(logits, torch.tensor(labels), reduction="none")
    assert [e.score for e in outcome.examples] == pytest.approx((-losses).tolist(), abs=1e-4)
    assert "macro_f1" in outcome.quality.extra
    # The hardest slice is the longest inputs (ties by id), and its figure is accuracy on them.
    assert outcome.hardest_ids == ("line-2", "line-4", "line-1")
    hard = [1, 3, 0]  # their rows
    assert outcome.quality.hardest == pytest.approx((logits.argmax(-1)[hard] == torch.tensor(labels)[hard]).float().mean().item())
    assert "the longest inputs" in outcome.hardest_definition
    # Label names resolve through the model's label2id.
    named = tmp_path / "named.tsv"
    named.write_text("".join(f"LABEL_{y}\t{t}\n" for y, t in zip(labels, texts, strict=False)), encoding="utf-8")
    spec_named = EvalSpec(**{**spec.__dict__, "dataset": DatasetSpec(path=str(named), format="tsv", columns={"label": 0, "text": 1})})
    assert evaluate(loaded.forward, loaded.tokenizer, spec_named, None, label2id=loaded.model.config.label2id).quality.value == pytest.approx(expected)
    # A label the model has no class for is located in the data file.
    bad = tmp_path / "bad.tsv"
    bad.write_text("1\tfine\n7\tseven classes?\n", encoding="utf-8")
    spec_bad = EvalSpec(**{**spec.__dict__, "dataset": DatasetSpec(path=str(bad), format="tsv", columns={"label": 0, "text": 1})})
    with pytest.raises(RunnerInputError) as err:
        evaluate(loaded.forward, loaded.tokenizer, spec_bad, None)
    assert err.value.location == f"{bad}:2" and "outside the model's 2 classes" in str(err.value)

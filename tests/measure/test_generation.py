"""Causal-LM behaviour on a tiny seeded Llama: greedy replies and their agreement with the baseline's,
the JSON format check, perplexity by position bucket, and the fields surviving the fresh-process reload."""

from __future__ import annotations

import json
import math

import pytest

from runners.base import DatasetSpec, EvalSpec, Generated, GenerationSpec
from runners.evaluate import evaluate
from runners.generate import agreement, format_valid
from runners.tasks import position_bucket

PROMPTS = ["Reply in JSON.", "the quick brown fox", "a list of three numbers", "name a colour"]
TEXT = " ".join(["the quick brown fox jumps over the lazy dog while a slow red hen sings"] * 12)


@pytest.fixture(scope="module")
def tiny(tiny_model):
    from runners.base import ModelSpec
    from runners.models import load_model

    return load_model(ModelSpec(source=str(tiny_model("causal-lm")), revision=None, task="causal-lm"))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("generation")
    (folder / "prompts.jsonl").write_text("".join(json.dumps({"id": f"p{i}", "prompt": p}) + "\n" for i, p in enumerate(PROMPTS)))
    (folder / "text.raw").write_text(TEXT)
    return folder


def spec(folder, *, sequence_length=24, stride=None, buckets=4, fmt="json", batch_size=2) -> EvalSpec:
    generation = GenerationSpec(prompts=DatasetSpec(path=str(folder / "prompts.jsonl"), format="jsonl", columns={"prompt": "prompt", "id": "id"}),
                                max_new_tokens=6, compare_tokens=4, format=fmt)
    return EvalSpec(task="causal-lm", metric="perplexity", lower_is_better=True, dataset=DatasetSpec(path=str(folder / "text.raw"), format="text"),
                    hardest_fraction=0.25, batch_size=batch_size, sequence_length=sequence_length, stride=stride,
                    position_buckets=buckets, generation=generation)


@pytest.mark.parametrize("text,valid", [
    ('{"color": "blue"}', True),
    ('  ```json\n{\n  "sum": 5\n}\n```\n\nThis JSON object holds', True),  # fenced, explained after
    ('[1, 2, 3] are the numbers', True),
    ('{"color": "blue"', False),        # cut off by max_new_tokens
    ("Sure! Here it is", False),
    ("42", False),                      # a JSON value, but not an object or array
    ("```python\ndef f(): pass\n```", False),
    ("", False),
])
def test_json_format_check(text, valid):
    assert format_valid(text, "json") is valid
    assert format_valid(text, "none") is True


def test_agreement_compares_the_first_n_tokens_per_prompt():
    base = (Generated("a", (1, 2, 3, 4)), Generated("b", (5, 6, 7, 8)), Generated("c", (9, 2)))
    same_start = (Generated("a", (1, 2, 3, 9)), Generated("b", (5, 6, 0, 0)), Generated("c", (9, 2)))
    assert agreement(same_start, base, 2) == 1.0
    assert agreement(same_start, base, 3) == pytest.approx(2 / 3)  # b differs at token 3; c ended (EOS) and is identical
    assert agreement((Generated("a", (1,)), *same_start[1:]), base, 2) == pytest.approx(2 / 3)  # a ended early: not the same start


def test_same_model_agrees_fully_and_a_perturbed_one_does_not(tiny, data):
    import copy

    import torch

    from runners.models import make_forward

    s = spec(data)
    base = evaluate(tiny.forward, tiny.tokenizer, s, None)
    assert [g.id for g in base.generations] == ["p0", "p1", "p2", "p3"]
    assert all(len(g.tokens) == 6 for g in base.generations)  # the BERT tokenizer has no EOS: never stops early
    assert "generation_agreement" not in base.quality.extra  # nothing to agree with yet
    assert base.quality.extra["format_valid_rate"] == 0.0  # random weights write no JSON

    again = evaluate(tiny.forward, tiny.tokenizer, s, base.hardest_ids, baseline_generations=base.generations)
    assert again.quality.extra["generation_agreement"] == 1.0
    assert again.generations == base.generations

    perturbed = copy.deepcopy(tiny.model)
    torch.manual_seed(1)
    with torch.no_grad():
        perturbed.lm_head.weight.add_(torch.randn_like(perturbed.lm_head.weight))
    other = evaluate(make_forward(perturbed, "causal-lm"), tiny.tokenizer, s, base.hardest_ids, baseline_generations=base.generations)
    assert other.quality.extra["generation_agreement"] < 1.0


def test_batching_does_not_change_the_replies(tiny, data):
    one = evaluate(tiny.forward, tiny.tokenizer, spec(data, batch_size=1), None).generations
    four = evaluate(tiny.forward, tiny.tokenizer, spec(data, batch_size=4), None).generations
    assert one == four  # right padding: a row's logits never see the padding after it


def test_a_prompt_too_long_for_the_window_is_located(tiny, data):
    from runners.base import RunnerInputError

    with pytest.raises(RunnerInputError, match=r"prompts.jsonl:1: prompt is \d+ tokens; with max_new_tokens 6 it exceeds sequence_length 8"):
        evaluate(tiny.forward, tiny.tokenizer, spec(data, sequence_length=8, buckets=0), None)


def _bucket_tokens(n_tokens: int, length: int, stride: int, buckets: int) -> list[int]:
    from runners.tasks import windows

    counts = [0] * buckets
    for begin, end, _ in windows(n_tokens, length, stride):
        for t in range(1, end - begin):
            counts[position_bucket(t, length, buckets)] += 1
    return counts


def test_position_buckets_combine_to_the_overall_perplexity(tiny, data):
    # stride = length - 1: every window scores every position, so the buckets partition the scored tokens.
    out = evaluate(tiny.forward, tiny.tokenizer, spec(data, sequence_length=16, stride=15), None)
    extra = out.quality.extra
    values = [extra[f"perplexity_bucket_{i}"] for i in range(1, 5)]
    assert "perplexity_bucket_5" not in extra and "hardest_perplexity_bucket_1" not in extra
    n_tokens = len(tiny.tokenizer(TEXT, add_special_tokens=False)["input_ids"])
    counts = _bucket_tokens(n_tokens, 16, 15, 4)
    assert counts[0] == 3 * len(out.examples) and all(c > 0 for c in counts)  # positions 1-3, then 4 per bucket
    combined = math.exp(sum(c * math.log(v) for c, v in zip(counts, values, strict=True)) / sum(counts))
    assert combined == pytest.approx(out.quality.value, rel=1e-6)
    assert len(set(round(v, 6) for v in values)) == 4  # the buckets are measured apart, not copies of the overall


def test_position_buckets_see_every_window_with_overlapping_strides(tiny, data):
    out = evaluate(tiny.forward, tiny.tokenizer, spec(data, sequence_length=16, stride=8), None)
    assert all(math.isfinite(out.quality.extra[f"perplexity_bucket_{i}"]) for i in range(1, 5))
    assert position_bucket(1, 16, 4) == 0 and position_bucket(4, 16, 4) == 1 and position_bucket(15, 16, 4) == 3


def test_the_fresh_process_reload_carries_agreement_format_and_buckets(tiny_model, tiny, data, tmp_path):
    from runners.base import BaselineResult, Environment, ModelSpec, Performance, QuantSpec
    from runners.models import weights_sha256
    from runners.ptq import run_ptq

    s = spec(data)
    base = evaluate(tiny.forward, tiny.tokenizer, s, None)
    perf = Performance(device="cpu", batch_size=1, sequence_length=24, latency_p50_ms=1.0, latency_p95_ms=1.0, runs=1,
                       peak_memory_bytes=0, footprint_bytes=0, threads=1)
    baseline = BaselineResult(weights_sha256=weights_sha256(tiny.model), model_info=tiny.info, quality=base.quality, hardest_ids=base.hardest_ids,
                              examples=base.examples, performance=perf, environment=Environment("cpu", (), {}, 1), data_sha256="",
                              generations=base.generations)
    quant = QuantSpec(weights="int8", activations="none", group_size=None, backend="torchao", calibration=s.generation.prompts, samples=4, seed=0)
    model = ModelSpec(source=str(tiny_model("causal-lm")), revision=None, task="causal-lm")
    result = run_ptq(model, quant, s, None, baseline, str(tmp_path / "artifacts"))
    extra = result.quality.extra
    assert 0.0 <= extra["generation_agreement"] <= 1.0
    assert extra["format_valid_rate"] == 0.0
    assert all(f"perplexity_bucket_{i}" in extra for i in range(1, 5))


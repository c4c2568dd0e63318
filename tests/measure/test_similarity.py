"""Sentence similarity on the demo model: agreement with sentence-transformers, the hardest slice kept
across evaluations, and most-degraded examples of a really degraded candidate."""

from __future__ import annotations

import copy

import pytest
import torch

from runners.base import RunnerError
from runners.datasets import read_examples
from runners.evaluate import evaluate, most_degraded
from runners.models import make_forward
from runners.tasks import overlap_difficulty
from tests.measure.conftest import stsb_eval

pytestmark = pytest.mark.model

#: Rows of sts-test.tsv the agreement test uses (the full 879 take ~80 s for both sides on 2 cores;
#: bench/measure.py reports the full file).
AGREEMENT_ROWS = 200


def test_spearman_and_pearson_agree_with_sentence_transformers(repo_root, minilm, minilm_dir):
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.evaluation import EmbeddingSimilarityEvaluator

    spec = stsb_eval(repo_root, AGREEMENT_ROWS, sequence_length=256)  # 256 = the model's max_seq_length
    records = read_examples(spec.dataset, spec.task)
    reference = EmbeddingSimilarityEvaluator([r.text for r in records], [r.text_b for r in records],
                                             [r.score / 5.0 for r in records], batch_size=32)(SentenceTransformer(str(minilm_dir), device="cpu"))
    ours = evaluate(minilm.forward, minilm.tokenizer, spec, None)
    assert ours.quality.n_examples == AGREEMENT_ROWS
    assert abs(ours.quality.value - reference["spearman_cosine"]) < 1e-4
    assert abs(ours.quality.extra["pearson"] - reference["pearson_cosine"]) < 1e-4
    assert 0.8 < ours.quality.value < 0.95  # a real encoder, not a constant


def test_hardest_slice_is_fixed_at_baseline_and_reused(repo_root, minilm):
    spec = stsb_eval(repo_root, 60)
    base = evaluate(minilm.forward, minilm.tokenizer, spec, None)
    assert len(base.hardest_ids) == 6  # 10 % of 60
    # Chosen from the data: the pairs whose word overlap ranks furthest from their gold score.
    records = read_examples(spec.dataset, spec.task)
    gaps = dict(zip((r.id for r in records), overlap_difficulty(records), strict=True))
    assert sorted(gaps[i] for i in base.hardest_ids) == sorted(gaps.values())[-6:]
    assert base.hardest_definition.startswith("6 of 60 examples, pairs whose word overlap is most misleading")
    assert 0 < base.quality.hardest < base.quality.value  # a real (positive) rank correlation, on harder pairs

    # A really degraded candidate: noise as large as the weights on every MLP input projection.
    degraded = copy.deepcopy(minilm.model)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for layer in degraded.encoder.layer:
            weight = layer.intermediate.dense.weight
            weight.add_(torch.randn(weight.shape, generator=generator) * weight.std())
    cand = evaluate(make_forward(degraded, "sentence-similarity"), minilm.tokenizer, spec, base.hardest_ids)
    assert cand.hardest_ids == base.hardest_ids
    # The model's own errors do not choose the slice: the candidate would have chosen the same pairs.
    assert evaluate(make_forward(degraded, "sentence-similarity"), minilm.tokenizer, spec, None).hardest_ids == base.hardest_ids
    assert cand.quality.value < base.quality.value
    drops = most_degraded(base.examples, cand.examples, k=5)
    assert 0 < len(drops) <= 5
    assert all(d.candidate < d.baseline for d in drops)
    assert [d.baseline - d.candidate for d in drops] == sorted((d.baseline - d.candidate for d in drops), reverse=True)

    again = evaluate(minilm.forward, minilm.tokenizer, spec, base.hardest_ids)
    assert again.quality == base.quality  # deterministic


def test_hardest_ids_missing_from_the_data_ask_for_a_new_baseline(repo_root, minilm):
    with pytest.raises(RunnerError, match="baseline must run again"):
        evaluate(minilm.forward, minilm.tokenizer, stsb_eval(repo_root, 10), ("line-500",))

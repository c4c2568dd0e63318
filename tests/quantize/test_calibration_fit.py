"""The calibration <-> workload check (runners.calibration_fit) on a tiny causal LM, both ways.

The tiny Llama is randomly initialised from a config with the demo (WordPiece) tokenizer: it says
nothing about quality, but its tokenizer and its first blocks see English sentences and Python source
differently, which is what the check measures. The real-model figures are bench/calibration_fit.py's.
"""

from __future__ import annotations

import json

import pytest

from runners.base import (
    DEFAULT_MIN_FIT,
    CalibrationFit,
    DatasetSpec,
    EnvelopeSpec,
    EvalSpec,
    ModelSpec,
    QuantSpec,
    RunnerInputError,
    from_dict,
    to_dict,
)
from runners.datasets import Record

STSB = {"score": 4, "text_a": 5, "text_b": 6}


@pytest.fixture(scope="module")
def tiny(tiny_model):
    from runners.models import load_model

    return load_model(ModelSpec(source=str(tiny_model("causal-lm")), revision=None, task="causal-lm"))


def sentences(repo_root, name: str) -> list[Record]:
    from runners.datasets import read_examples

    return read_examples(DatasetSpec(path=str(repo_root / f"data/stsb/{name}"), format="tsv", columns=STSB), "sentence-similarity")


def fit_of(tiny, calibration, evaluation, **kwargs) -> CalibrationFit:
    from runners.calibration_fit import calibration_fit

    return calibration_fit(tiny.model, tiny.tokenizer, calibration, evaluation, sequence_length=64,
                           min_fit=DEFAULT_MIN_FIT, max_segments=24, **kwargs)


def test_matched_english_sets_fit_and_are_not_flagged(tiny, repo_root):
    fit = fit_of(tiny, (sentences(repo_root, "sts-train.tsv"), "tsv"), (sentences(repo_root, "sts-test.tsv"), "tsv"))
    assert fit.fit >= DEFAULT_MIN_FIT and not fit.low, fit
    [comparison] = fit.comparisons
    assert comparison.against == "evaluation" and comparison.segments == (24, 24)
    assert fit.fit == comparison.fit == pytest.approx(comparison.length * comparison.unknown * comparison.hidden, abs=2e-4)


def wiki(repo_root, start: int = 0) -> tuple[list[Record], str]:
    text = (repo_root / "data/wikitext-2/wiki.test.raw").read_text(encoding="utf-8")
    return [Record(id="text", text=text[start:])], "text"


def test_matched_text_windows_fit(tiny, repo_root):
    """WikiText windows after the evaluated ones against the evaluated windows: not flagged."""
    fit = fit_of(tiny, wiki(repo_root, 300_000), wiki(repo_root), stride=32, limit=24)
    assert fit.fit >= DEFAULT_MIN_FIT and not fit.low, fit


def test_source_code_against_english_is_flagged(tiny, repo_root):
    code = [Record(id="text", text=(repo_root / "data/code/python-stdlib.txt").read_text(encoding="utf-8"))]
    fit = fit_of(tiny, (code, "text"), wiki(repo_root), stride=32, limit=24)
    assert fit.low and fit.fit < DEFAULT_MIN_FIT, fit
    [c] = fit.comparisons
    assert c.chars_per_token[0] < c.chars_per_token[1]  # code packs fewer characters into a WordPiece token


def test_unknown_tokens_and_a_production_sample_count(tiny, repo_root):
    """English calibration against English evaluation fits; a production sample in a script the
    tokenizer does not know (unknown tokens) pulls the figure down: the lower comparison counts."""
    english = sentences(repo_root, "sts-train.tsv")
    foreign = [Record(id=f"p-{i}", text=" ".join(["\u16a0\u16a2\u16a6 \u2c80\u2c82"] * (3 + i % 5))) for i in range(30)]
    fit = fit_of(tiny, (english, "tsv"), (sentences(repo_root, "sts-test.tsv"), "tsv"), production=(foreign, "jsonl"))
    evaluation, production = fit.comparisons
    assert (evaluation.against, production.against) == ("evaluation", "production")
    assert production.unknown_rate[1] > 0.5 and production.unknown < 0.1
    assert evaluation.fit >= DEFAULT_MIN_FIT and fit.fit == production.fit and fit.low


def test_deterministic_and_round_trips_through_json(tiny, repo_root):
    args = ((sentences(repo_root, "sts-train.tsv"), "tsv"), (sentences(repo_root, "sts-test.tsv"), "tsv"))
    first, second = fit_of(tiny, *args, seed=3), fit_of(tiny, *args, seed=3)
    assert first == second
    assert from_dict(CalibrationFit, json.loads(json.dumps(to_dict(first)))) == first


def test_text_windows_of_the_evaluation_are_the_scored_ones(tiny, repo_root):
    """A text evaluation set is compared on the windows it scores (stride, limit), not the whole file."""
    from runners.calibration_fit import segments_of, text_windows

    assert text_windows(10, 4) == [(0, 4), (4, 8), (8, 10)]
    assert text_windows(10, 4, stride=2, limit=2) == [(0, 4), (2, 6)]
    assert text_windows(10, 4, stride=2, limit=2, skip=1) == [(2, 6), (4, 8)]  # evaluation.dataset.skip, like the scorer
    from runners.tasks import windows

    assert [(b, e) for b, e, _ in windows(1000, 100, 50)[3:7]] == text_windows(1000, 100, 50, limit=4, skip=3)
    import random

    wiki = [Record(id="text", text=(repo_root / "data/wikitext-2/wiki.test.raw").read_text(encoding="utf-8"))]
    segs = segments_of(wiki, "text", tiny.tokenizer, 64, random.Random(0), max_segments=100, stride=32, limit=5)
    assert len(segs.ids) == 5 and all(len(s) == 64 for s in segs.ids)


def quant_for(repo_root, calibration: str, on_low_fit: str) -> QuantSpec:
    return QuantSpec(weights="int8", activations="none", group_size=None, backend="torchao",
                     calibration=DatasetSpec(path=str(repo_root / calibration), format="text"), samples=8, seed=0,
                     on_low_fit=on_low_fit)


def test_on_low_fit_fail_stops_the_ptq_play_before_quantizing(tiny_model, repo_root, tmp_path):
    from runners.ptq import run_ptq

    model = ModelSpec(source=str(tiny_model("causal-lm")), revision=None, task="causal-lm")
    evaluation = EvalSpec(task="causal-lm", metric="perplexity", lower_is_better=True, hardest_fraction=0.1, batch_size=4,
                          sequence_length=64, stride=32,
                          dataset=DatasetSpec(path=str(repo_root / "data/wikitext-2/wiki.test.raw"), format="text", limit=16))
    envelope = EnvelopeSpec(device="cpu", memory_bytes=1 << 30, headroom=0.25, batch_size=4, sequence_length=64, latency_p95_ms=None)
    root = tmp_path / "artifacts"
    with pytest.raises(RunnerInputError) as caught:
        run_ptq(model, quant_for(repo_root, "data/code/python-stdlib.txt", "fail"), evaluation, envelope, None, str(root))
    message = str(caught.value)
    assert caught.value.location == str(repo_root / "data/code/python-stdlib.txt")
    assert f"(min_fit {DEFAULT_MIN_FIT:g})" in message and "calibration fit 0." in message
    assert "on_low_fit: warn" in message and "lower quantization.calibration.min_fit" in message
    assert not root.exists() or not any(root.rglob("*"))  # nothing quantized, nothing written

"""The hardest slice, most-degraded examples, sliding windows and macro-F1 (pure functions, no model)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from runners.base import Example, RunnerInputError
from runners.datasets import Record
from runners.evaluate import most_degraded, select_hardest
from runners.tasks import macro_f1, overlap_difficulty, rare_token_difficulty, windows, word_overlap


def test_hardest_slice_is_the_most_difficult_ties_by_id():
    ids = tuple(f"line-{i}" for i in range(10))
    difficulty = (0.0, 0.5, 0.5, 0.1, 0.9, 0.0, 0.2, 0.3, 0.4, 0.05)
    assert select_hardest(ids, difficulty, 0.3) == ("line-4", "line-1", "line-2")
    assert select_hardest(ids[::-1], difficulty[::-1], 0.3) == ("line-4", "line-1", "line-2")  # order-independent
    assert select_hardest(ids, difficulty, 0.5) == ("line-4", "line-1", "line-2", "line-8", "line-7")
    assert len(select_hardest(ids, difficulty, 0.01)) == 3  # never below three examples


def test_similarity_difficulty_is_word_overlap_against_gold_not_the_model():
    rows = [Record(id="a", line=1, text="A man plays a guitar.", text_b="A man plays a guitar.", score=5.0),   # overlap 1, gold top: easy
            Record(id="b", line=2, text="A cat sleeps.", text_b="Stocks fell sharply.", score=0.0),             # overlap 0, gold bottom: easy
            Record(id="c", line=3, text="The boy kicked the ball.", text_b="A child booted a football.", score=4.8),  # paraphrase, no shared words
            Record(id="d", line=4, text="The dog bit the man.", text_b="The man bit the dog.", score=1.0)]     # same words, different meaning
    assert word_overlap("The dog bit the man.", "The man bit the dog.") == 1.0
    gaps = overlap_difficulty(rows)
    assert min(gaps[2], gaps[3]) > max(gaps[0], gaps[1])
    assert set(select_hardest(tuple(r.id for r in rows), gaps, 0.5)[:2]) == {"c", "d"}


def test_rare_token_windows_are_the_hardest_perplexity_windows():
    # window 0 scores common tokens, window 1 scores tokens seen once
    ids = [1, 1, 1, 1, 1, 7, 8, 9]
    spans = [(0, 5, 4), (3, 8, 3)]
    first, second = rare_token_difficulty(ids, spans)
    assert first == pytest.approx(-math.log(4 / 7)) and second == pytest.approx(-math.log(1 / 7))


def test_most_degraded_lists_only_drops_largest_first():
    base = (Example("a", -0.1), Example("b", -0.2), Example("c", -0.3), Example("d", -0.4))
    cand = (Example("a", -0.5), Example("b", -0.1), Example("c", -0.7), Example("d", -0.4))
    result = most_degraded(base, cand, k=10)
    assert [(d.id, d.baseline, d.candidate) for d in result] == [("a", -0.1, -0.5), ("c", -0.3, -0.7)]
    assert [d.id for d in most_degraded(base, cand, k=1)] == ["a"]


@pytest.mark.parametrize("n,length,stride", [(10, 4, 2), (10, 4, 4), (9, 4, 3), (3, 8, 4), (1000, 128, 64), (2, 4, 2)])
def test_windows_score_every_token_but_the_first_exactly_once(n, length, stride):
    """With overlapping windows every token but the first is scored exactly once. With stride ==
    length no window overlaps, so each window's own first token has nothing before it in the window
    and goes unscored (scoring it would predict it from nothing: the harness crashed on that)."""
    spans = windows(n, length, stride)
    scored = [t for begin, end, k in spans for t in range(end - k, end)]
    starts = {begin for begin, _, _ in spans} if stride == length else {0}
    assert scored == [t for t in range(n) if t not in starts]
    assert all(end - begin <= length and k <= end - begin - 1 for begin, end, k in spans)


def test_stride_longer_than_the_window_is_refused():
    with pytest.raises(RunnerInputError, match="stride"):
        windows(100, 8, 16)


def test_macro_f1_matches_a_hand_computation():
    gold = np.array([0, 0, 1, 1, 2])
    pred = np.array([0, 1, 1, 1, 0])
    # class 0: tp1 fp1 fn1 -> 0.5; class 1: tp2 fp1 fn0 -> 0.8; class 2: tp0 fp0 fn1 -> 0
    assert macro_f1(pred, gold) == pytest.approx((0.5 + 0.8 + 0.0) / 3)

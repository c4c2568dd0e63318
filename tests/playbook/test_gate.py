"""Play 4's decision: direction-aware drops, relative gates, close vs broken, envelope checks."""

from __future__ import annotations

import pytest

from compiler.manifest.model import Envelope, Gate
from compiler.playbook.gate import drop, judge, quality_bar

GATE = Gate(max_drop=0.01, hardest_max_drop=0.03, close_margin=0.03)
BASE = {"value": 0.85, "hardest": 0.60}


def decide(value, hardest, gate=GATE, base=BASE, lower=False, performance=None, envelope=None):
    metric = "perplexity" if lower else "spearman"
    return judge("ptq", metric, lower, base, {"value": value, "hardest": hardest}, gate, envelope, performance)


def test_exactly_at_the_limit_passes_despite_float_noise():
    # 0.85 - 0.84 is 0.010000000000000009 in floats; the manifest means "a drop of 0.01 is allowed".
    assert decide(0.84, 0.57).decision == "pass"


@pytest.mark.parametrize("value,hardest,expected", [
    (0.849, 0.599, "pass"),
    (0.86, 0.65, "pass"),            # better than the baseline
    (0.835, 0.59, "close"),          # overall misses by 0.005, within close_margin
    (0.845, 0.565, "close"),         # hardest misses by 0.005, within the same slack
    (0.819, 0.59, "broken"),         # overall drop 0.031 > close_margin
    (0.845, 0.549, "broken"),        # hardest drop 0.051 > 0.03 + 0.02
])
def test_higher_is_better_decisions(value, hardest, expected):
    assert decide(value, hardest).decision == expected


def test_lower_is_better_perplexity_rises_are_drops():
    base = {"value": 20.0, "hardest": 40.0}
    gate = Gate(max_drop=0.5, hardest_max_drop=1.0, close_margin=2.0)
    assert drop(20.0, 20.4, lower_is_better=True) == pytest.approx(0.4)
    assert decide(20.4, 40.5, gate, base, lower=True).decision == "pass"
    assert decide(21.0, 40.5, gate, base, lower=True).decision == "close"
    assert decide(25.0, 40.5, gate, base, lower=True).decision == "broken"
    assert decide(18.0, 39.0, gate, base, lower=True).decision == "pass"  # lower perplexity is better
    bar = quality_bar("perplexity", True, 20.0, 40.0, gate)
    assert (bar.overall, bar.hardest) == (20.5, 41.0)


def test_relative_gate_scales_with_the_baseline():
    gate = Gate(max_drop=0.02, hardest_max_drop=0.05, close_margin=0.05, relative=True)
    base = {"value": 20.0, "hardest": 40.0}
    # 2 % of 20 = 0.4 perplexity points allowed.
    assert decide(20.39, 41.0, gate, base, lower=True).decision == "pass"
    assert decide(20.6, 41.0, gate, base, lower=True).decision == "close"
    assert quality_bar("perplexity", True, 20.0, 40.0, gate).overall == pytest.approx(20.4)


def test_footprint_over_budget_is_broken_even_with_perfect_quality():
    env = Envelope(memory_per_device="100MB", headroom=0.25)
    j = decide(0.85, 0.60, performance={"footprint_bytes": 80_000_000, "latency_p95_ms": 1.0}, envelope=env)
    assert j.decision == "broken"
    assert any("memory budget" in r for r in j.reasons)


def test_latency_miss_is_a_warning_not_a_failure():
    env = Envelope(memory_per_device="1GiB", latency_p95_ms=50)
    j = decide(0.85, 0.60, performance={"footprint_bytes": 1000, "latency_p95_ms": 70.0}, envelope=env)
    assert j.decision == "pass"
    assert j.warnings and "70.0 ms" in j.warnings[0]

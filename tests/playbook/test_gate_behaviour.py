"""Play 4 on causal-LM behaviour: late-context perplexity, generation agreement and format-valid rate,
each gated only when the manifest sets its tolerance, each a quality miss (pass / close / broken)."""

from __future__ import annotations

import pytest

from compiler.manifest.model import Gate
from compiler.playbook.gate import judge

#: Perplexity, relative gate: 5 % allowed overall, close up to 10 % (slack 0.05).
BASE_GATE = {"max_drop": 0.05, "hardest_max_drop": 0.10, "close_margin": 0.10, "relative": True}
BASELINE = {"value": 20.0, "hardest": 40.0,
            "extra": {"perplexity_bucket_1": 30.0, "perplexity_bucket_2": 20.0, "perplexity_bucket_3": 18.0, "perplexity_bucket_4": 16.0,
                      "format_valid_rate": 0.9}}


def decide(extra: dict, value: float = 20.2, hardest: float = 40.4, **tolerances):
    gate = Gate(**BASE_GATE, **tolerances)
    return judge("ptq", "perplexity", True, BASELINE, {"value": value, "hardest": hardest, "extra": extra}, gate, None)


def buckets(last: float) -> dict:
    return {"perplexity_bucket_1": 30.0, "perplexity_bucket_2": 20.0, "perplexity_bucket_3": 18.0, "perplexity_bucket_4": last}


def test_without_tolerances_the_new_numbers_are_not_gated():
    # A collapse in the last bucket and in agreement, but the manifest gates neither.
    j = decide({**buckets(100.0), "generation_agreement": 0.0, "format_valid_rate": 0.0})
    assert j.decision == "pass"
    assert len(j.reasons) == 2  # overall and hardest only


@pytest.mark.parametrize("last,expected", [
    (16.8, "pass"),     # +5 %: exactly the tolerance
    (17.2, "close"),    # +7.5 %: within the same slack as the hardest slice (0.05)
    (18.0, "broken"),   # +12.5 %: beyond tolerance + slack
])
def test_late_context_is_relative_like_max_drop(last, expected):
    j = decide(buckets(last), late_context_max_drop=0.05)
    assert j.decision == expected
    assert any(r.startswith("late context (position bucket 4 of 4) perplexity") and "(relative)" in r for r in j.reasons)


def test_late_context_miss_fails_a_candidate_whose_overall_perplexity_passes():
    # The overall perplexity rises 1 % (passes) while the late window degrades 25 %.
    j = decide(buckets(20.0), value=20.2, late_context_max_drop=0.10)
    assert j.decision == "broken"
    assert "drop 0.2500 (relative), allowed 0.1000" in j.reasons[0]  # the miss is the headline, before the passing metric


def test_late_context_in_perplexity_units_without_relative():
    gate = Gate(max_drop=1.0, hardest_max_drop=2.0, close_margin=2.0, late_context_max_drop=0.5)
    j = judge("ptq", "perplexity", True, BASELINE, {"value": 20.5, "hardest": 41.0, "extra": buckets(16.6)}, gate, None)
    assert j.decision == "close"  # 0.6 points: over 0.5, within 0.5 + slack 1.0
    assert "drop 0.6000, allowed 0.5000" in j.reasons[0]


@pytest.mark.parametrize("agreement,expected", [(0.8, "pass"), (0.9, "pass"), (0.7, "close")])
def test_generation_agreement_floor(agreement, expected):
    j = decide({"generation_agreement": agreement}, min_generation_agreement=0.8)
    assert j.decision == expected
    assert j.reasons[0 if expected != "pass" else -1].startswith(f"generation agreement {agreement:.4f}")


def test_an_agreement_miss_stays_broken_when_quality_is_broken():
    j = decide({"generation_agreement": 0.5}, value=25.0, min_generation_agreement=0.8)
    assert j.decision == "broken"


@pytest.mark.parametrize("rate,expected", [(0.8, "pass"), (0.7, "close"), (1.0, "pass")])
def test_format_valid_rate_may_drop_at_most_max_format_drop_below_the_baseline(rate, expected):
    j = decide({"format_valid_rate": rate}, max_format_drop=0.1)
    assert j.decision == expected
    assert j.reasons[0 if expected != "pass" else -1].startswith(f"format-valid rate {rate:.4f} vs baseline 0.9000")


@pytest.mark.parametrize("tolerance", [{"min_generation_agreement": 0.5}, {"max_format_drop": 0.5}, {"late_context_max_drop": 0.5}])
def test_a_gated_number_that_was_not_measured_is_broken(tolerance):
    j = decide({}, **tolerance)
    assert j.decision == "broken"
    assert "not measured" in j.reasons[0]


def test_every_violation_is_named():
    j = decide({**buckets(20.0), "generation_agreement": 0.1, "format_valid_rate": 0.2},
               late_context_max_drop=0.05, min_generation_agreement=0.9, max_format_drop=0.05)
    assert j.decision == "broken"
    assert [r.split(" ")[0] for r in j.reasons[:3]] == ["late", "generation", "format-valid"]

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


# ------------------------------------------------------------------ quantization is the wrong move

ENV_1G = Envelope(memory_per_device="1GiB", latency_p95_ms=1000)
FAST_BASE = {"latency_p95_ms": 100.0, "footprint_bytes": 500_000_000, "peak_memory_bytes": 600_000_000}
WRONG_MOVE_ENVELOPE = {"verdict": "wrong-move", "reasons": ["quantization is the wrong move: the model already fits at full precision"],
                       "memory_budget_bytes": 805_306_368, "estimates": {"memory_full_bytes": 700_000_000.0}}
PASS_ENVELOPE = {**WRONG_MOVE_ENVELOPE, "verdict": "pass", "reasons": ["int8 on CPU: native int8 dot products"]}


def judged(gate=GATE, p95=112.0, envelope_result=PASS_ENVELOPE, base_perf=FAST_BASE):
    return judge("ptq", "spearman", False, BASE, {"value": 0.85, "hardest": 0.60}, gate, ENV_1G,
                 {"footprint_bytes": 150_000_000, "latency_p95_ms": p95}, baseline_performance=base_perf, envelope_result=envelope_result)


def test_a_slower_candidate_saving_memory_nobody_needs_does_not_pass():
    j = judged(p95=112.0)  # 1.12x slower, and full precision (700 MB) fits the 768 MiB budget
    assert j.decision == "broken"
    assert j.reasons[0].startswith("wrong move: the candidate is 1.12x slower than full precision at p95 (112.0 ms vs 100.0 ms)")
    assert "gate.accept_wrong_move" in j.reasons[0]


def test_a_wrong_move_envelope_does_not_pass_even_with_a_faster_candidate():
    j = judged(p95=50.0, envelope_result=WRONG_MOVE_ENVELOPE)
    assert j.decision == "broken"
    assert j.reasons[0].startswith("wrong move: the envelope said wrong-move: quantization is the wrong move")


def test_a_written_opt_in_locks_the_wrong_move_and_shows_it():
    gate = Gate(max_drop=0.01, hardest_max_drop=0.03, close_margin=0.03, accept_wrong_move="int8 rehearses the rollout for the 70B model")
    j = judged(gate, p95=112.0, envelope_result=WRONG_MOVE_ENVELOPE)
    assert j.decision == "pass"
    assert [w.split(":")[0] for w in j.warnings] == ["wrong move", "wrong move", "accepted in writing by gate.accept_wrong_move"]
    assert j.warnings[2].endswith("'int8 rehearses the rollout for the 70B model'")
    assert j.warnings[0].startswith("wrong move: the envelope said wrong-move") and "1.12x slower" in j.warnings[1]
    assert not any(r.startswith("wrong move") for r in j.reasons)
    # The opt-in does not lift the quality bar: a broken candidate stays broken.
    bad = judge("ptq", "spearman", False, BASE, {"value": 0.70, "hardest": 0.60}, gate, ENV_1G,
                {"footprint_bytes": 1, "latency_p95_ms": 112.0}, baseline_performance=FAST_BASE, envelope_result=WRONG_MOVE_ENVELOPE)
    assert bad.decision == "broken"


def test_slower_means_slower_at_p50_too_not_one_noisy_tail():
    base = {**FAST_BASE, "latency_p50_ms": 90.0}
    def with_p50(p50):
        return judge("ptq", "spearman", False, BASE, {"value": 0.85, "hardest": 0.60}, GATE, ENV_1G,
                     {"footprint_bytes": 1, "latency_p95_ms": 112.0, "latency_p50_ms": p50}, baseline_performance=base,
                     envelope_result=PASS_ENVELOPE)
    assert with_p50(95.0).decision == "broken"  # slower at both
    assert with_p50(45.0).decision == "pass"    # twice as fast typically; the p95 tail was noise


def test_a_faster_candidate_or_one_the_memory_needs_is_not_a_wrong_move():
    assert judged(p95=60.0).decision == "pass"  # faster: quantization bought time
    tight = {**PASS_ENVELOPE, "estimates": {"memory_full_bytes": 900_000_000.0}}  # full precision does not fit
    j = judged(p95=112.0, envelope_result=tight)
    assert j.decision == "pass" and not any("wrong move" in r for r in j.reasons + j.warnings)


def test_without_an_envelope_result_the_footprint_decides_whether_full_precision_fits():
    assert judged(p95=112.0, envelope_result=None).decision == "broken"  # 600 MB of a 768 MiB budget fits
    big = {**FAST_BASE, "footprint_bytes": 900_000_000}
    assert judged(p95=112.0, envelope_result=None, base_perf=big).decision == "pass"
    assert judged(p95=112.0, envelope_result=None, base_perf=None).decision == "pass"  # nothing to compare: no claim


def test_the_opt_in_needs_a_written_reason():
    with pytest.raises(ValueError, match="accept_wrong_move"):
        Gate(max_drop=0.01, hardest_max_drop=0.03, close_margin=0.03, accept_wrong_move="   ")
    assert Gate(max_drop=0.01, hardest_max_drop=0.03, close_margin=0.03).accept_wrong_move is None


def test_an_empty_opt_in_is_located_in_the_manifest(repo_root, tmp_path):
    from compiler.errors import InvalidInput
    from compiler.manifest.load import load_manifest

    text = (repo_root / "manifests/minilm-stsb.yaml").read_text(encoding="utf-8")
    assert "  close_margin: 0.03\n" in text
    (tmp_path / "manifests").mkdir()
    path = tmp_path / "manifests/minilm-stsb.yaml"
    path.write_text(text.replace("  close_margin: 0.03\n", '  close_margin: 0.03\n  accept_wrong_move: "  "\n'), encoding="utf-8")
    with pytest.raises(InvalidInput) as err:
        load_manifest(path, root=tmp_path)
    [problem] = err.value.problems
    assert problem.key_path == "gate.accept_wrong_move" and "written reason" in problem.message
    assert problem.source_line.strip() == 'accept_wrong_move: "  "'

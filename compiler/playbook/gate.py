"""Play 4, the decision gate: a candidate's quality against the baseline's, decided by the manifest.

Drops are direction-aware: a *drop* is how much worse the candidate is, positive when worse, for
higher-is-better metrics (Spearman, accuracy) and lower-is-better ones (perplexity) alike. With
``gate.relative`` a drop is a fraction of the baseline value instead of metric units.

Decision, for the overall metric and for the hardest slice separately:

- **pass**   overall drop <= ``max_drop`` and hardest drop <= ``hardest_max_drop``, and the
  candidate's footprint fits the envelope's memory budget.
- **close**  not pass, but overall drop <= ``close_margin`` and hardest drop <=
  ``hardest_max_drop + (close_margin - max_drop)`` (the hardest slice gets the same slack):
  mixed precision (play 5) can recover it.
- **broken** anything else, or a footprint over the memory budget (protecting layers only adds
  memory, so mixed precision cannot help).

A p95 latency over ``envelope.latency_p95_ms`` is a *warning* shown with the decision, not a
failure: latency measured on a shared CI runner is noisy and not the deployment hardware, so a hard
gate on it would make locks flap; the envelope play judges the latency target before quantizing and
play 8's rollback latency budget guards it in production.

**Quantization is sometimes the wrong move** (the playbook says the envelope and the gate must be able
to say so). A candidate is a *wrong move* when the envelope's verdict was ``wrong-move``, or when it is
slower than full precision at p95 (and at p50, when both are recorded, so one noisy tail on a shared
runner does not make it "slower") while full precision already fits the envelope's memory (it saves
memory nobody needs and costs time). Such a candidate does not pass: its decision is ``broken`` with a
``wrong move:`` reason first, whatever its quality, so nothing locks silently. The manifest can accept
it in writing, ``gate.accept_wrong_move: "<reason>"``: then the decision follows quality as usual and
the wrong move and the reason are shown as warnings with the decision (in the lock and the report).

**Causal-LM behaviour** (optional, only the tolerances the manifest sets; numbers from
``Quality.extra``, see ``runners.generate`` and ``runners.tasks.position_perplexity``):

- ``late_context_max_drop``: perplexity in the last position bucket (``perplexity_bucket_<k>``) may
  rise by at most this, relative when ``gate.relative`` (the same convention as ``max_drop``).
- ``min_generation_agreement``: the share of prompts whose first N greedy tokens equal the
  baseline's must be at least this.
- ``max_format_drop``: the format-valid rate may fall at most this far below the baseline's
  (absolute, a share of prompts).

Each is a quality miss like the overall and hardest-slice ones: a candidate that misses any of them
does not pass. Close or broken follows the same rule as the hardest slice where the units allow it:
late-context perplexity is the primary metric's own unit, so it gets the same slack
(``close_margin - max_drop``). Agreement and format-valid rates are shares of prompts with no margin
of their own, and keeping sensitive layers at full precision is exactly what brings greedy replies
back to the baseline's, so a miss there is *close* (mixed precision runs and the gate judges again)
unless something else makes the candidate broken; mixed precision's search still aims at the overall
and hardest bars only, so a rerun that misses them again ends the funnel as usual. A tolerance whose
number was not measured (a result from before the manifest set it) is *broken*: the gate cannot vouch
for what it did not see.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from runners.base import QualityBar

#: Float noise allowance when comparing a drop with its limit (0.85 - 0.84 is not exactly 0.01).
EPSILON = 1e-9
DECISIONS = ("pass", "close", "broken")


def drop(baseline: float, candidate: float, lower_is_better: bool, relative: bool = False) -> float:
    """How much worse ``candidate`` is than ``baseline`` (negative: better)."""
    worse = candidate - baseline if lower_is_better else baseline - candidate
    if relative:
        scale = abs(baseline)
        return worse / scale if scale else (0.0 if worse == 0 else float("inf"))
    return worse


def _limit(baseline: float, allowed: float, lower_is_better: bool, relative: bool) -> float:
    amount = allowed * abs(baseline) if relative else allowed
    return baseline + amount if lower_is_better else baseline - amount


def quality_bar(metric: str, lower_is_better: bool, baseline_value: float, baseline_hardest: float, gate: Any) -> QualityBar:
    """The worst acceptable values (what a runner searching for a passing candidate aims at)."""
    return QualityBar(
        metric=metric,
        lower_is_better=lower_is_better,
        overall=_limit(baseline_value, gate.max_drop, lower_is_better, gate.relative),
        hardest=_limit(baseline_hardest, gate.hardest_max_drop, lower_is_better, gate.relative),
    )


@dataclass(frozen=True)
class Judgment:
    candidate: str  # ptq | mixed_precision | qat
    decision: str  # pass | close | broken
    reasons: tuple[str, ...]
    warnings: tuple[str, ...]
    bar: QualityBar
    value: float
    hardest: float
    drop: float
    hardest_drop: float

    def to_dict(self) -> dict:
        return {
            "candidate": self.candidate,
            "decision": self.decision,
            "value": self.value,
            "hardest": self.hardest,
            "drop": self.drop,
            "hardest_drop": self.hardest_drop,
            "bar": {"overall": self.bar.overall, "hardest": self.bar.hardest},
            "reasons": list(self.reasons),
            "warnings": list(self.warnings),
        }


def _fmt(x: float) -> str:
    return f"{x:.4f}"


def wrong_move(envelope: Any, performance: dict | None, baseline_performance: dict | None,
               envelope_result: dict | None) -> list[str]:
    """Why locking this candidate would be the wrong move (empty: it is not).

    ``envelope_result`` is play 2's ``EnvelopeResult`` as a dict; ``performance`` and
    ``baseline_performance`` the candidate's and the full-precision model's ``Performance``."""
    why: list[str] = []
    if envelope_result and envelope_result.get("verdict") == "wrong-move":
        first = (envelope_result.get("reasons") or ["quantization is the wrong move"])[0]
        why.append(f"the envelope said wrong-move: {first}")
    p95 = (performance or {}).get("latency_p95_ms")
    base_p95 = (baseline_performance or {}).get("latency_p95_ms")
    p50 = (performance or {}).get("latency_p50_ms")
    base_p50 = (baseline_performance or {}).get("latency_p50_ms")
    # Slower at p95, and at p50 too when both are known: a noise spike in one tail is not "slower".
    slower = p95 is not None and bool(base_p95) and p95 > base_p95 and (p50 is None or not base_p50 or p50 > base_p50)
    if slower:
        fits = _full_precision_fits(envelope, baseline_performance, envelope_result)
        if fits is not None:
            why.append(f"the candidate is {p95 / base_p95:.2f}x slower than full precision at p95 ({p95:.1f} ms vs {base_p95:.1f} ms) "
                       f"and saves memory nobody needs: full precision already fits the envelope ({fits})")
    return why


def _full_precision_fits(envelope: Any, baseline_performance: dict | None, envelope_result: dict | None) -> str | None:
    """A sentence when the full-precision model fits the envelope's memory budget, else None."""
    if envelope_result and "memory_full_bytes" in (envelope_result.get("estimates") or {}):
        need, budget = envelope_result["estimates"]["memory_full_bytes"], envelope_result.get("memory_budget_bytes")
        if budget and need <= budget:
            return f"{need / 2**20:,.1f} MiB needed of a {budget / 2**20:,.1f} MiB budget"
        return None
    if envelope is not None and baseline_performance and baseline_performance.get("footprint_bytes") is not None:
        budget = int(envelope.memory_bytes * (1 - envelope.headroom))
        need = max(baseline_performance["footprint_bytes"], baseline_performance.get("peak_memory_bytes") or 0)
        if need <= budget:
            return f"{need / 2**20:,.1f} MiB measured of a {budget / 2**20:,.1f} MiB budget"
    return None


def _last_bucket(extra: dict) -> tuple[int, float] | None:
    """(k, perplexity) of the last position bucket recorded in ``extra``, or None."""
    k = 0
    while f"perplexity_bucket_{k + 1}" in extra:
        k += 1
    return (k, extra[f"perplexity_bucket_{k}"]) if k else None


def behaviour_checks(baseline: dict, quality: dict, gate: Any, slack: float) -> list[tuple[bool, bool, str]]:
    """(ok, close, reason) for each causal-LM tolerance the gate sets (module docstring)."""
    base, cand = baseline.get("extra") or {}, quality.get("extra") or {}
    rel = bool(gate.relative)
    out: list[tuple[bool, bool, str]] = []
    allowed = getattr(gate, "late_context_max_drop", None)
    if allowed is not None:
        b, c = _last_bucket(base), _last_bucket(cand)
        if b is None or c is None or b[0] != c[0]:
            out.append((False, False, "late-context perplexity (the last position bucket) was not measured for both; run the baseline and the candidate again"))
        else:
            d = drop(b[1], c[1], True, rel)
            ok, close = d <= allowed + EPSILON, d <= allowed + slack + EPSILON
            out.append((ok, close, f"late context (position bucket {c[0]} of {c[0]}) perplexity {_fmt(c[1])} vs baseline {_fmt(b[1])}: drop {_fmt(d)}"
                        + (" (relative)" if rel else "") + f", allowed {_fmt(allowed)}" + ("" if ok else f", close up to {_fmt(allowed + slack)}")))
    least = getattr(gate, "min_generation_agreement", None)
    if least is not None:
        a = cand.get("generation_agreement")
        if a is None:
            out.append((False, False, "generation agreement was not measured (no baseline replies to compare with); run the baseline and the candidate again"))
        else:
            ok = a >= least - EPSILON
            out.append((ok, True, f"generation agreement {_fmt(a)} (share of prompts whose first greedy tokens equal the baseline's), at least {_fmt(least)} required"
                        + ("" if ok else "; a miss mixed precision may recover")))
    most = getattr(gate, "max_format_drop", None)
    if most is not None:
        b, c = base.get("format_valid_rate"), cand.get("format_valid_rate")
        if b is None or c is None:
            out.append((False, False, "the format-valid rate was not measured for both; run the baseline and the candidate again"))
        else:
            ok = b - c <= most + EPSILON
            out.append((ok, True, f"format-valid rate {_fmt(c)} vs baseline {_fmt(b)}: drop {_fmt(b - c)}, allowed {_fmt(most)}"
                        + ("" if ok else "; a miss mixed precision may recover")))
    return out


def judge(candidate: str, metric: str, lower_is_better: bool, baseline: dict, quality: dict, gate: Any,
          envelope: Any, performance: dict | None = None, *, baseline_performance: dict | None = None,
          envelope_result: dict | None = None) -> Judgment:
    """Decide pass / close / broken for one candidate.

    ``baseline`` and ``quality`` are ``runners.base.Quality`` as dicts (``value``, ``hardest``);
    ``performance`` the candidate's ``Performance`` as a dict (optional: no envelope checks);
    ``baseline_performance`` the baseline's ``Performance`` and ``envelope_result`` play 2's result, as
    dicts (optional: without them the wrong-move check sees only what is given)."""
    rel = bool(gate.relative)
    unit = " (relative)" if rel else ""
    d_all = drop(baseline["value"], quality["value"], lower_is_better, rel)
    d_hard = drop(baseline["hardest"], quality["hardest"], lower_is_better, rel)
    bar = quality_bar(metric, lower_is_better, baseline["value"], baseline["hardest"], gate)
    reasons: list[str] = []
    warnings: list[str] = []

    overall_ok = d_all <= gate.max_drop + EPSILON
    hardest_ok = d_hard <= gate.hardest_max_drop + EPSILON
    slack = gate.close_margin - gate.max_drop
    overall_close = d_all <= gate.close_margin + EPSILON
    hardest_close = d_hard <= gate.hardest_max_drop + slack + EPSILON
    reasons.append(f"{metric} {_fmt(quality['value'])} vs baseline {_fmt(baseline['value'])}: drop {_fmt(d_all)}{unit}, allowed {_fmt(gate.max_drop)}" + ("" if overall_ok else f", close up to {_fmt(gate.close_margin)}"))
    reasons.append(f"hardest slice {_fmt(quality['hardest'])} vs baseline {_fmt(baseline['hardest'])}: drop {_fmt(d_hard)}{unit}, allowed {_fmt(gate.hardest_max_drop)}" + ("" if hardest_ok else f", close up to {_fmt(gate.hardest_max_drop + slack)}"))

    checks = behaviour_checks(baseline, quality, gate, slack)
    if overall_ok and hardest_ok:  # the primary metric passed: a missed behaviour check is the headline
        reasons[:0] = [reason for ok, _, reason in checks if not ok]
        reasons.extend(reason for ok, _, reason in checks if ok)
    else:
        reasons.extend(reason for _, _, reason in checks)

    memory_ok = True
    if performance is not None and envelope is not None:
        budget = int(envelope.memory_bytes * (1 - envelope.headroom))
        footprint = performance.get("footprint_bytes")
        if footprint is not None and footprint > budget:
            memory_ok = False
            reasons.append(f"footprint {footprint} B exceeds the envelope's memory budget {budget} B (memory_per_device x (1 - headroom)); protecting layers would only add memory")
        target = getattr(envelope, "latency_p95_ms", None)
        p95 = performance.get("latency_p95_ms")
        if target is not None and p95 is not None and p95 > target:
            warnings.append(f"latency p95 {p95:.1f} ms over the envelope's {target:g} ms on this machine (a warning, not a gate failure: see docs/playbook.md)")

    wrong = wrong_move(envelope, performance, baseline_performance, envelope_result)
    accepted = (getattr(gate, "accept_wrong_move", None) or "").strip()
    if wrong and accepted:
        warnings[:0] = [f"wrong move: {w}" for w in wrong] + [f"accepted in writing by gate.accept_wrong_move: {accepted!r}"]
    elif wrong:
        reasons[:0] = [f"wrong move: {w}; not locked without a written gate.accept_wrong_move" for w in wrong]

    if wrong and not accepted:
        decision = "broken"  # quality cannot fix it: mixed precision would only add time and memory
    elif overall_ok and hardest_ok and memory_ok and all(ok for ok, _, _ in checks):
        decision = "pass"
    elif overall_close and hardest_close and memory_ok and all(close for _, close, _ in checks):
        decision = "close"
    else:
        decision = "broken"
    return Judgment(candidate=candidate, decision=decision, reasons=tuple(reasons), warnings=tuple(warnings),
                    bar=bar, value=quality["value"], hardest=quality["hardest"], drop=d_all, hardest_drop=d_hard)

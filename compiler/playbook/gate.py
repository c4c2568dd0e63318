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
    elif overall_ok and hardest_ok and memory_ok:
        decision = "pass"
    elif overall_close and hardest_close and memory_ok:
        decision = "close"
    else:
        decision = "broken"
    return Judgment(candidate=candidate, decision=decision, reasons=tuple(reasons), warnings=tuple(warnings),
                    bar=bar, value=quality["value"], hardest=quality["hardest"], drop=d_all, hardest_drop=d_hard)

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


def judge(candidate: str, metric: str, lower_is_better: bool, baseline: dict, quality: dict, gate: Any,
          envelope: Any, performance: dict | None = None) -> Judgment:
    """Decide pass / close / broken for one candidate.

    ``baseline`` and ``quality`` are ``runners.base.Quality`` as dicts (``value``, ``hardest``);
    ``performance`` the candidate's ``Performance`` as a dict (optional: no envelope checks)."""
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

    if overall_ok and hardest_ok and memory_ok:
        decision = "pass"
    elif overall_close and hardest_close and memory_ok:
        decision = "close"
    else:
        decision = "broken"
    return Judgment(candidate=candidate, decision=decision, reasons=tuple(reasons), warnings=tuple(warnings),
                    bar=bar, value=quality["value"], hardest=quality["hardest"], drop=d_all, hardest_drop=d_hard)

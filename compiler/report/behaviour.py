"""Causal-LM behaviour in the report: greedy-reply agreement and format-valid rate per configuration,
and perplexity by position bucket (baseline against each candidate), read from ``quality.extra``.

The numbers come from the runner (``runners.generate``, ``runners.tasks.position_perplexity``):
``generation_agreement`` (candidates only: the share of prompts whose first N greedy tokens equal the
baseline's), ``format_valid_rate`` (baseline and candidates) and ``perplexity_bucket_<i>`` (i = 1 ..
k, early to late in the window). A lock without them gives an empty view and the report shows nothing.
"""

from __future__ import annotations

import math
import re
from typing import Any

CANDIDATE_PLAYS = ("ptq", "mixed_precision", "qat")
LABELS = {"baseline": "fp32 baseline", "ptq": "ptq", "mixed_precision": "mixed precision", "qat": "qat"}


def _result(lock: dict, play: str) -> dict:
    result = ((lock.get("plays") or {}).get(play) or {}).get("result") or {}
    if play == "mixed_precision":
        return result.get("best") or {}
    if play == "qat":
        return result.get("candidate") or {}
    return result


def buckets_of(extra: dict) -> list[float]:
    """``perplexity_bucket_1 .. k`` in order (empty when not measured)."""
    out = []
    while f"perplexity_bucket_{len(out) + 1}" in extra:
        out.append(float(extra[f"perplexity_bucket_{len(out) + 1}"]))
    return out


def bucket_labels(k: int, sequence_length: int | None) -> list[str]:
    """Token positions each bucket covers (``runners.tasks.position_bucket``), or ``i/k`` without a length."""
    if not sequence_length:
        return [f"{i + 1}/{k}" for i in range(k)]
    labels = []
    for i in range(k):
        first = max(1, math.ceil(i * sequence_length / k))
        last = math.ceil((i + 1) * sequence_length / k) - 1
        labels.append(f"{first}–{last}")
    return labels


def behaviour_view(lock: dict) -> dict:
    """``rows`` (one per configuration: agreement, format-valid rate, late-context perplexity), ``series``
    (label -> perplexity per bucket) and ``positions`` (bucket labels); empty lists when not measured."""
    configs = [("baseline", _result(lock, "baseline"))] + [(p, _result(lock, p)) for p in CANDIDATE_PLAYS]
    rows, series = [], []
    for play, result in configs:
        quality = result.get("quality") or {}
        extra = quality.get("extra") or {}
        values = buckets_of(extra)
        agreement = 1.0 if play == "baseline" and "format_valid_rate" in extra else extra.get("generation_agreement")
        if agreement is None and "format_valid_rate" not in extra and not values:
            continue
        rows.append({"label": LABELS[play], "agreement": agreement, "format": extra.get("format_valid_rate"),
                     "late": values[-1] if values else None, "k": len(values)})
        if values:
            series.append({"label": LABELS[play], "values": values})
    performance = _result(lock, "baseline").get("performance") or {}
    k = len(series[0]["values"]) if series else 0
    return {"rows": rows, "series": series, "positions": bucket_labels(k, performance.get("sequence_length")) if k else [],
            "generation": any(r["agreement"] is not None or r["format"] is not None for r in rows)}


def _label(text: str) -> str:
    return re.sub(r'["\[\]\n`]', "", text)


def mermaid_buckets(view: dict) -> str | None:
    """A Mermaid ``xychart-beta``: perplexity per position bucket, one line per configuration (named in
    the title, in order, since xychart has no legend). None without buckets."""
    series = view["series"]
    if not series:
        return None
    values = [v for s in series for v in s["values"]]
    low, high = min(values), max(values)
    pad = (high - low) * 0.15 or abs(high) * 0.05 or 1.0
    names = ", ".join(s["label"] for s in series)
    lines = ["xychart-beta",
             f'    title "perplexity by position in the window (lower is better); lines: {_label(names)}"',
             "    x-axis [" + ", ".join(f'"{_label(p)}"' for p in view["positions"]) + "]",
             f'    y-axis "perplexity" {max(0.0, low - pad):.6g} --> {high + pad:.6g}']
    lines += ["    line [" + ", ".join(f"{v:.6g}" for v in s["values"]) + "]" for s in series]
    return "\n".join(lines)


def draw_buckets(fig: Any, view: dict) -> None:
    """matplotlib: perplexity per position bucket, baseline (black) and each candidate."""
    ax = fig.add_subplot(1, 1, 1)
    xs = list(range(1, len(view["positions"]) + 1))
    for s in view["series"]:
        baseline = s["label"] == LABELS["baseline"]
        ax.plot(xs, s["values"], "o-" if not baseline else "*-", color="black" if baseline else None, linewidth=1,
                markersize=7 if baseline else 5, label=s["label"])
    ax.set_xticks(xs)
    ax.set_xticklabels(view["positions"])
    ax.set_xlabel("token position in the window (bucket)")
    ax.set_ylabel("perplexity (lower is better)")
    ax.grid(True, linewidth=0.3, alpha=0.5)
    ax.legend(loc="best", fontsize=6, framealpha=0.7)
    ax.set_title("Perplexity by position: a candidate that degrades late in the window rises on the right", fontsize=8)
    fig.tight_layout()

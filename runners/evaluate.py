"""Evaluate a ``Forward`` on the manifest's evaluation set: overall quality, the hardest slice, and
per-example scores.

The baseline (``hardest_ids=None``) fixes the hardest slice: the ``hardest_fraction`` of examples with
the lowest per-example score (at least 3 examples, ties broken by id). Every later evaluation passes
those ids back and reports the metric on exactly that slice, so candidates are judged on the same
examples the full-precision model found hardest.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from runners.base import Degraded, EvalSpec, Example, Progress, Quality, RunnerError, no_progress
from runners.datasets import read_examples
from runners.tasks import score_records

#: A correlation over fewer points is meaningless; the slice never goes below this (or N).
MIN_HARDEST = 3


@dataclass(frozen=True)
class EvalOutcome:
    quality: Quality
    examples: tuple[Example, ...]
    hardest_ids: tuple[str, ...]


def evaluate(forward: Any, tokenizer: Any, spec: EvalSpec, hardest_ids: tuple[str, ...] | None,
             progress: Progress = no_progress, *, label2id: dict[str, int] | None = None) -> EvalOutcome:
    """Score every example of ``spec.dataset`` and summarise it as ``Quality``.

    ``label2id`` maps text-classification label names to class indices (the model config's); without
    it labels must be 0-based class indices.
    """
    records = read_examples(spec.dataset, spec.task)
    scored = score_records(spec.task, forward, tokenizer, records, batch_size=spec.batch_size,
                           sequence_length=spec.sequence_length, dataset_format=spec.dataset.format,
                           source=spec.dataset.path, stride=spec.stride,
                           limit=spec.dataset.limit, label2id=label2id, progress=progress)
    examples = tuple(Example(id=i, score=float(s)) for i, s in zip(scored.ids, scored.scores, strict=False))
    if hardest_ids is None:
        hardest_ids = select_hardest(examples, spec.hardest_fraction)
    position = {e.id: n for n, e in enumerate(examples)}
    missing = [i for i in hardest_ids if i not in position]
    if missing:
        raise RunnerError(f"the baseline's hardest slice names {len(missing)} example(s) this evaluation set lacks "
                          f"(first: {missing[0]}); the data changed since the baseline, so the baseline must run again")
    overall = scored.metrics(range(len(examples)))
    hardest = scored.metrics([position[i] for i in hardest_ids])
    if spec.metric not in overall:
        raise RunnerError(f"evaluation.metric: {spec.metric!r} is not computed for this data (available: {', '.join(overall)})")
    extra = {k: v for k, v in overall.items() if k != spec.metric}
    extra.update({f"hardest_{k}": v for k, v in hardest.items() if k != spec.metric})
    quality = Quality(metric=spec.metric, value=overall[spec.metric], hardest=hardest[spec.metric],
                      n_examples=len(examples), extra=extra)
    return EvalOutcome(quality=quality, examples=examples, hardest_ids=tuple(hardest_ids))


def select_hardest(examples: tuple[Example, ...], fraction: float) -> tuple[str, ...]:
    """Ids of the ``ceil(fraction * N)`` lowest-scoring examples (at least ``MIN_HARDEST`` or N),
    lowest first, ties broken by id."""
    n = len(examples)
    k = min(n, max(MIN_HARDEST, math.ceil(fraction * n)))
    ranked = sorted(examples, key=lambda e: (e.score, e.id))
    return tuple(e.id for e in ranked[:k])


def most_degraded(baseline: tuple[Example, ...], candidate: tuple[Example, ...], k: int = 10) -> tuple[Degraded, ...]:
    """The ``k`` examples whose per-example score dropped most from baseline to candidate (only drops;
    largest first, ties by id). A diagnostic for the report, not a gate."""
    base = {e.id: e.score for e in baseline}
    drops = [(base[e.id] - e.score, e.id, base[e.id], e.score) for e in candidate if e.id in base]
    drops = [d for d in drops if d[0] > 0]
    drops.sort(key=lambda d: (-d[0], d[1]))
    return tuple(Degraded(id=i, baseline=b, candidate=c) for _, i, b, c in drops[:k])

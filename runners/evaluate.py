"""Evaluate a ``Forward`` on the manifest's evaluation set: overall quality, the hardest slice, and
per-example scores.

The baseline (``hardest_ids=None``) fixes the hardest slice: the ``hardest_fraction`` of examples with
the highest *data-defined* difficulty (``runners.tasks``: misleading word overlap for similarity, the
longest inputs for classification, the rarest tokens for perplexity windows, the longest completions;
at least 3 examples, ties broken by id). It is never chosen by the model's own error, so the slice's
metric means what the task's metric means (a Spearman of 0.6 on it is a real rank correlation with the
annotators) and the baseline is not handicapped on it by construction. Every later evaluation passes
those ids back and reports the metric on exactly that slice; ``hardest_definition`` says in words what
the slice is, for the report.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from runners.base import Degraded, EvalSpec, Example, Generated, Progress, Quality, RunnerError, no_progress
from runners.datasets import read_examples
from runners.tasks import score_records

#: A correlation over fewer points is meaningless; the slice never goes below this (or N).
MIN_HARDEST = 3


@dataclass(frozen=True)
class EvalOutcome:
    quality: Quality
    examples: tuple[Example, ...]
    hardest_ids: tuple[str, ...]
    hardest_definition: str = ""
    generations: tuple[Generated, ...] = ()  # spec.generation: the greedy replies (runners.generate)


def evaluate(forward: Any, tokenizer: Any, spec: EvalSpec, hardest_ids: tuple[str, ...] | None,
             progress: Progress = no_progress, *, label2id: dict[str, int] | None = None,
             baseline_generations: tuple[Generated, ...] | None = None, generate: bool = True) -> EvalOutcome:
    """Score every example of ``spec.dataset`` and summarise it as ``Quality``.

    ``label2id`` maps text-classification label names to class indices (the model config's); without
    it labels must be 0-based class indices. With ``spec.generation`` and ``generate`` the greedy
    replies are generated too (``runners.generate``): their format-valid rate, and with
    ``baseline_generations`` their agreement with the baseline's, go into ``Quality.extra``.
    """
    records = read_examples(spec.dataset, spec.task)
    scored = score_records(spec.task, forward, tokenizer, records, batch_size=spec.batch_size,
                           sequence_length=spec.sequence_length, dataset_format=spec.dataset.format,
                           source=spec.dataset.path, stride=spec.stride,
                           limit=spec.dataset.limit, skip=spec.dataset.skip, label2id=label2id, progress=progress,
                           position_buckets=spec.position_buckets)
    examples = tuple(Example(id=i, score=float(s)) for i, s in zip(scored.ids, scored.scores, strict=False))
    if hardest_ids is None:
        hardest_ids = select_hardest(scored.ids, scored.difficulty, spec.hardest_fraction)
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
    extra.update(scored.extra)
    generations: tuple[Generated, ...] = ()
    if spec.generation is not None and generate:
        from runners.generate import score_generation

        progress(0, 0, "greedy generation")
        generated = score_generation(forward, tokenizer, spec.generation, batch_size=spec.batch_size,
                                     sequence_length=spec.sequence_length, baseline=baseline_generations)
        generations = generated.generations
        extra.update(generated.extra)
    quality = Quality(metric=spec.metric, value=overall[spec.metric], hardest=hardest[spec.metric],
                      n_examples=len(examples), extra=extra)
    definition = f"{len(hardest_ids)} of {len(examples)} examples, {scored.hardest_definition}" if scored.hardest_definition else ""
    return EvalOutcome(quality=quality, examples=examples, hardest_ids=tuple(hardest_ids), hardest_definition=definition,
                       generations=generations)


def select_hardest(ids: Sequence[str], difficulty: Sequence[float], fraction: float) -> tuple[str, ...]:
    """Ids of the ``ceil(fraction * N)`` most difficult examples (at least ``MIN_HARDEST`` or N),
    hardest first, ties broken by id. ``difficulty`` is data-defined (``runners.tasks``)."""
    if len(ids) != len(difficulty):
        raise RunnerError(f"internal: {len(ids)} example ids but {len(difficulty)} difficulties")
    n = len(ids)
    k = min(n, max(MIN_HARDEST, math.ceil(fraction * n)))
    ranked = sorted(zip(ids, difficulty, strict=True), key=lambda e: (-e[1], e[0]))
    return tuple(i for i, _ in ranked[:k])


def most_degraded(baseline: tuple[Example, ...], candidate: tuple[Example, ...], k: int = 10) -> tuple[Degraded, ...]:
    """The ``k`` examples whose per-example score dropped most from baseline to candidate (only drops;
    largest first, ties by id). A diagnostic for the report, not a gate."""
    base = {e.id: e.score for e in baseline}
    drops = [(base[e.id] - e.score, e.id, base[e.id], e.score) for e in candidate if e.id in base]
    drops = [d for d in drops if d[0] > 0]
    drops.sort(key=lambda d: (-d[0], d[1]))
    return tuple(Degraded(id=i, baseline=b, candidate=c) for _, i, b, c in drops[:k])

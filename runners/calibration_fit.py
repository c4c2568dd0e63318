"""Does the calibration set look like the workload? Measured in the model's own terms, before quantizing.

A calibration-driven backend (GPTQ) fits its rounding to the activations the calibration set produces;
a set unlike the evaluation set (or production inputs) fits the wrong activations. ``calibration_fit``
compares the calibration set with each other set on three views and combines them into one figure in
[0, 1], 1 meaning "indistinguishable":

- **length**: characters per token of each segment (for row data also log tokens per segment). Text
  windows all have the same token count, so the token count says nothing there; how many characters
  the tokenizer packs into a token does: English prose runs at ~4 characters per token on an
  English tokenizer, source code, numbers and other languages far fewer. It compares every format.
- **unknown**: per segment, the share of tokens that are the unknown token or a byte fallback (a token
  that decodes to U+FFFD on its own: ``<0xNN>`` pieces, byte-level BPE fragments of one character).
  Text in a script the tokenizer does not cover shows up here.
- **hidden**: each segment's mean hidden state (over its tokens) at the outputs of the first
  ``layers`` blocks. Per dimension, the squared shift between the two sets' means is divided by the
  pooled within-set variance, less the shift two samples of one distribution show by chance
  (``var_a / n_a + var_b / n_b``); the mean over dimensions is ``hidden_shift`` (0: no shift; 1: the
  means sit one within-set standard deviation apart in the average dimension).

Each view is a Gaussian Bhattacharyya overlap (1: same distribution, 0: disjoint), so the three read
alike: ``BC = sqrt(2 s_a s_b / (s_a^2 + s_b^2)) * exp(-(m_a - m_b)^2 / (4 (s_a^2 + s_b^2)))`` for a
scalar statistic. For the hidden states, ``exp(-hidden_shift / 8)`` would be the overlap of one
average dimension; a shift repeats over many correlated dimensions, and ``HIDDEN_DIRECTIONS`` (4)
counts them as that many independent ones: ``exp(-4 * hidden_shift / 8)``. The 4 is set from
measurements on SmolLM2-135M (docs/manifest.md): WikiText calibration windows against the evaluated
WikiText windows shift 0.2-0.3 (overlap ~0.88), STS-B sentences 0.6-1.5, Python source 2.3-2.8 (~0.3).
The fit is the product of the three: the overlap of the joint distribution if the views were
independent, so any one view that says "different" is enough.
With a production set the calibration set is compared with both, and the figure is the lower fit.

Cost is bounded: at most ``max_segments`` segments per set (drawn with ``random.Random(seed)``),
``sequence_length`` tokens each, and only the first ``layers`` blocks run (a forward hook stops the
model there). On SmolLM2-135M with 2 CPU cores it takes a few seconds.

Segments: row data (tsv, csv, jsonl) gives one segment per text of a record (truncated to
``sequence_length`` tokens). A ``text`` document is cut into windows of ``sequence_length`` tokens: the
evaluation set into the windows the evaluation scores (``stride``, ``limit``), any other set into
non-overlapping windows.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from runners.base import CalibrationFit, DatasetSpec, FitComparison, RunnerInputError
from runners.datasets import Record

#: Segments compared per set at most (a seeded draw).
MAX_SEGMENTS = 32
#: Hidden states are compared at the outputs of blocks 1..LAYERS (on SmolLM2 the shift of blocks 1-2
#: separates the sets as well as blocks 1-6 do, at a third of the cost).
LAYERS = 2
#: Independent directions a hidden-state shift is counted over (see the module docstring).
HIDDEN_DIRECTIONS = 4
#: Longest text document tokenized (characters); beyond, only its beginning is read.
MAX_TEXT_CHARS = 4_000_000
#: Noise floors of the scalar statistics' spreads: below them two sets are "the same" anyway.
FLOOR = {"chars_per_token": 0.1, "log_tokens": 0.05, "unknown": 0.01}


@dataclass(frozen=True)
class Segments:
    """One set, cut into segments of token ids, with their character counts."""

    ids: tuple[tuple[int, ...], ...]
    chars: tuple[int, ...]
    rows: bool  # row data (token counts vary and mean something)


def text_windows(n_tokens: int, length: int, stride: int | None = None, limit: int | None = None, skip: int = 0) -> list[tuple[int, int]]:
    """Token spans [begin, end) of ``length`` tokens: the evaluation's own windows
    (``runners.tasks.windows`` advancing by ``stride``, after ``skip``, the first ``limit``), else
    non-overlapping ones; a final short window is kept only if it is at least half a window."""
    from runners.tasks import windows

    spans = [(begin, end) for begin, end, _ in windows(n_tokens, length, stride or length)]
    if len(spans) > 1 and spans[-1][1] - spans[-1][0] < max(2, length // 2):
        spans.pop()
    spans = spans[skip:]
    return spans[:limit] if limit is not None else spans


def segments_of(records: Sequence[Record], dataset_format: str, tokenizer: Any, sequence_length: int, rng: random.Random,
                max_segments: int = MAX_SEGMENTS, stride: int | None = None, limit: int | None = None, skip: int = 0) -> Segments:
    """At most ``max_segments`` segments of ``records`` (see the module docstring), drawn with ``rng``."""
    if dataset_format == "text":
        text = "".join(r.text for r in records)[:MAX_TEXT_CHARS]
        needed = None if limit is None else (skip + limit - 1) * (stride or sequence_length) + sequence_length
        ids = []
        if needed is not None:  # the first windows only: tokenize a generous prefix (16 characters a token)
            ids = tokenizer(text[:needed * 16], add_special_tokens=False, return_attention_mask=False)["input_ids"]
        if needed is None or (len(ids) <= needed and len(text) > needed * 16):
            ids = tokenizer(text, add_special_tokens=False, return_attention_mask=False)["input_ids"]
        spans = text_windows(len(ids), sequence_length, stride, limit, skip)
        chosen = sorted(rng.sample(range(len(spans)), min(max_segments, len(spans))))
        windows = [tuple(ids[b:e]) for b, e in (spans[i] for i in chosen)]
        chars = [len(tokenizer.decode(list(w))) for w in windows]
        return Segments(ids=tuple(windows), chars=tuple(chars), rows=False)
    if dataset_format == "windows":  # text already cut into token windows (runners.ptq.window_calibration)
        chosen = sorted(rng.sample(range(len(records)), min(max_segments, len(records))))
        encoded = [tokenizer(records[i].text, add_special_tokens=False, return_attention_mask=False)["input_ids"][:sequence_length]
                   for i in chosen]
        return Segments(ids=tuple(tuple(e) for e in encoded if e), chars=tuple(len(tokenizer.decode(e)) for e in encoded if e), rows=False)
    texts = [t for r in records for t in r.texts if t and t.strip()]
    chosen = sorted(rng.sample(range(len(texts)), min(max_segments, len(texts))))
    picked = [texts[i] for i in chosen]
    encoded = tokenizer(picked, add_special_tokens=False, truncation=True, max_length=sequence_length,
                        return_attention_mask=False)["input_ids"] if picked else []
    kept = [(tuple(ids), len(tokenizer.decode(ids))) for ids in encoded if ids]
    return Segments(ids=tuple(i for i, _ in kept), chars=tuple(c for _, c in kept), rows=True)


# ------------------------------------------------------------------------------------- statistics


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    mean = sum(values) / len(values)
    var = sum((v - mean) ** 2 for v in values) / max(len(values) - 1, 1)
    return mean, math.sqrt(var)


def overlap(a: Sequence[float], b: Sequence[float], floor: float) -> float:
    """Bhattacharyya coefficient of Gaussians fitted to ``a`` and ``b`` (spreads floored at ``floor``)."""
    (ma, sa), (mb, sb) = _mean_std(a), _mean_std(b)
    sa, sb = max(sa, floor), max(sb, floor)
    total = sa * sa + sb * sb
    return math.sqrt(2 * sa * sb / total) * math.exp(-((ma - mb) ** 2) / (4 * total))


def unknown_ids(tokenizer: Any, ids: set[int]) -> set[int]:
    """The ids among ``ids`` that are the unknown token or a byte fallback (decode to U+FFFD alone)."""
    special = set(getattr(tokenizer, "all_special_ids", []) or [])
    unk = getattr(tokenizer, "unk_token_id", None)
    out = {i for i in ids if i == unk}
    for i in ids - special - out:
        if "\ufffd" in tokenizer.decode([i]):
            out.add(i)
    return out


def _blocks(model: Any) -> Any:
    """The model's list of transformer blocks: the longest ``ModuleList`` of identical block types."""
    import torch

    best = None
    for module in model.modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) and len({type(m) for m in module}) == 1:
            if best is None or len(module) > len(best):
                best = module
    return best


class _Stop(Exception):
    """Raised by the hook on the last block compared: the rest of the model is not needed."""


def hidden_means(model: Any, segments: Segments, layers: int, pad_id: int, batch_size: int = 8) -> list[Any]:
    """Per layer 1..``layers``: a (segments, hidden) tensor of each segment's mean hidden state."""
    import torch

    blocks = _blocks(model)
    if blocks is None:
        raise RunnerInputError("calibration fit: the model has no list of transformer blocks to read hidden states from")
    layers = min(layers, len(blocks))
    captured: dict[int, Any] = {}

    def hook(index: int):
        def capture(module: Any, args: Any, output: Any) -> None:
            captured[index] = output[0] if isinstance(output, (tuple, list)) else output
            if index == layers - 1:
                raise _Stop

        return capture

    handles = [blocks[i].register_forward_hook(hook(i)) for i in range(layers)]
    means: list[list[Any]] = [[] for _ in range(layers)]
    try:
        with torch.inference_mode():
            for start in range(0, len(segments.ids), batch_size):
                batch = segments.ids[start:start + batch_size]
                width = max(len(s) for s in batch)
                input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
                mask = torch.zeros((len(batch), width), dtype=torch.long)
                for row, seg in enumerate(batch):
                    input_ids[row, :len(seg)] = torch.tensor(seg)
                    mask[row, :len(seg)] = 1
                captured.clear()
                try:
                    model(input_ids=input_ids, attention_mask=mask)
                except _Stop:
                    pass
                weights = mask.unsqueeze(-1).float()
                for i in range(layers):
                    hidden = captured[i].float()
                    means[i].append((hidden * weights).sum(1) / weights.sum(1))
    finally:
        for handle in handles:
            handle.remove()
    return [torch.cat(m) for m in means]


def hidden_shift(a: Any, b: Any) -> float:
    """Mean over dimensions of (squared mean shift - its chance level) / pooled within-set variance."""
    import torch

    na, nb = a.shape[0], b.shape[0]
    va = a.var(0, unbiased=True) if na > 1 else torch.zeros(a.shape[1])
    vb = b.var(0, unbiased=True) if nb > 1 else torch.zeros(b.shape[1])
    pooled = (va + vb) / 2
    pooled = torch.clamp(pooled, min=float(pooled.mean()) * 1e-3 + 1e-12)
    shift = (a.mean(0) - b.mean(0)) ** 2 - va / na - vb / nb
    return max(0.0, float((shift / pooled).mean()))


# ------------------------------------------------------------------------------------------ the fit


def compare(against: str, cal: Segments, other: Segments, cal_hidden: list[Any], other_hidden: list[Any],
            unknown: set[int]) -> FitComparison:
    """One comparison: the three overlaps and their product."""
    cpt_a = [c / max(len(s), 1) for s, c in zip(cal.ids, cal.chars, strict=True)]
    cpt_b = [c / max(len(s), 1) for s, c in zip(other.ids, other.chars, strict=True)]
    length = overlap(cpt_a, cpt_b, FLOOR["chars_per_token"])
    if cal.rows and other.rows:
        length *= overlap([math.log(len(s)) for s in cal.ids], [math.log(len(s)) for s in other.ids], FLOOR["log_tokens"])
    unk_a = [sum(i in unknown for i in s) / len(s) for s in cal.ids]
    unk_b = [sum(i in unknown for i in s) / len(s) for s in other.ids]
    unknown_overlap = overlap(unk_a, unk_b, FLOOR["unknown"])
    shift = sum(hidden_shift(a, b) for a, b in zip(cal_hidden, other_hidden, strict=True)) / len(cal_hidden)
    hidden = math.exp(-HIDDEN_DIRECTIONS * shift / 8)
    tokens_a, tokens_b = sum(len(s) for s in cal.ids), sum(len(s) for s in other.ids)
    return FitComparison(
        against=against, fit=round(length * unknown_overlap * hidden, 4), length=round(length, 4),
        unknown=round(unknown_overlap, 4), hidden=round(hidden, 4), segments=(len(cal.ids), len(other.ids)),
        chars_per_token=(round(sum(cal.chars) / tokens_a, 3), round(sum(other.chars) / tokens_b, 3)),
        unknown_rate=(round(sum(sum(i in unknown for i in s) for s in cal.ids) / tokens_a, 4),
                      round(sum(sum(i in unknown for i in s) for s in other.ids) / tokens_b, 4)),
        hidden_shift=round(shift, 4),
    )


def calibration_fit(model: Any, tokenizer: Any, calibration: tuple[Sequence[Record], str],
                    evaluation: tuple[Sequence[Record], str], *, sequence_length: int, min_fit: float,
                    production: tuple[Sequence[Record], str] | None = None, stride: int | None = None,
                    limit: int | None = None, skip: int = 0, seed: int = 0, max_segments: int = MAX_SEGMENTS,
                    layers: int = LAYERS) -> CalibrationFit:
    """The calibration set (records, format) against the evaluation set (its scored windows for
    ``text``: ``stride``, ``skip``, ``limit``) and, when given, a production sample. Deterministic for ``seed``."""
    length = max(2, min(sequence_length, 512))
    cal = segments_of(calibration[0], calibration[1], tokenizer, length, random.Random(seed), max_segments)
    others = [("evaluation", segments_of(evaluation[0], evaluation[1], tokenizer, length, random.Random(seed + 1),
                                         max_segments, stride=stride, limit=limit, skip=skip))]
    if production is not None:
        others.append(("production", segments_of(production[0], production[1], tokenizer, length,
                                                 random.Random(seed + 2), max_segments)))
    for name, seg in [("calibration", cal), *others]:
        if not seg.ids:
            raise RunnerInputError(f"calibration fit: the {name} set has no text to compare")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    seen = {i for _, seg in [("calibration", cal), *others] for s in seg.ids for i in s}
    unknown = unknown_ids(tokenizer, seen)
    cal_hidden = hidden_means(model, cal, layers, pad)
    comparisons = tuple(compare(name, cal, seg, cal_hidden, hidden_means(model, seg, layers, pad), unknown)
                        for name, seg in others)
    fit = min(c.fit for c in comparisons)
    return CalibrationFit(fit=fit, min_fit=min_fit, low=fit < min_fit, layers=tuple(range(1, len(cal_hidden) + 1)),
                          comparisons=comparisons)


def describe(result: CalibrationFit) -> str:
    """The figure in words, for warnings and errors."""
    parts = [f"{c.against} {c.fit:.2f} (length {c.length:.2f}, unknown tokens {c.unknown:.2f}, hidden states {c.hidden:.2f})"
             for c in result.comparisons]
    return f"calibration fit {result.fit:.2f} (min_fit {result.min_fit:g}): " + "; ".join(parts)


def dataset_records(spec: DatasetSpec, task: str) -> tuple[list[Record], str]:
    """``(records, format)`` of a dataset for the fit (``runners.datasets.read_examples``)."""
    from runners.datasets import read_examples

    return read_examples(spec, task), spec.format

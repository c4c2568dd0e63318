"""Per-task scoring: run a ``Forward`` over records, keep per-example scores, compute metrics.

Every task returns a ``Scored``: example ids, one per-example score each (higher = better for the
model, so "worst" is always "lowest"), ``metrics(indices)`` computing the task's metrics over any
subset (all examples, or the hardest slice), and a per-example *difficulty* (higher = harder) that is
computed from the data alone, never from the model's output, with the sentence that defines it. The
hardest slice is chosen by difficulty, so it is the same examples for the baseline and every candidate
and its metric reads in the task's own terms. docs/measuring.md states each score and each difficulty.

- sentence-similarity: mean pooling over the attention mask, L2 normalisation, cosine similarity;
  Spearman and Pearson against the gold score. Per-example score: ``-|rank(pred) - rank(gold)| / N``.
  Difficulty: how far the pair's word overlap ranks from its gold score (misleading surface overlap).
- text-classification: accuracy and macro-F1; per-example score: ``-cross-entropy`` of the gold class.
  Difficulty: input length in characters (longest inputs: truncation and accumulated error bite first).
- causal-lm, ``text`` data: perplexity over sliding windows of ``sequence_length`` tokens advancing by
  ``stride``; each window's new tokens are scored once. Example = window ``chunk-<i>``, score =
  ``-mean NLL`` of its scored tokens. Difficulty: mean unigram surprisal of its scored tokens under the
  token frequencies of the evaluated text itself (rare words, names, numbers).
- causal-lm, prompt/completion data: exact match (every completion token is the greedy argmax under
  teacher forcing, which equals greedy decoding matching the completion) and perplexity of the
  completion tokens; per-example score: ``-mean NLL`` of the completion. Difficulty: completion
  length in tokens (more tokens to reproduce exactly).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from runners.base import Progress, RunnerInputError, no_progress
from runners.datasets import Record

Metrics = Callable[[Sequence[int]], dict[str, float]]


#: Each task's hardest-slice definition, as the report names it ("the hardest 10 %: <definition>").
HARDEST_DEFINITIONS = {
    "sentence-similarity": ("pairs whose word overlap is most misleading: the largest gap between the rank of their "
                            "word overlap (Jaccard over lower-cased words) and the rank of their gold score, i.e. "
                            "paraphrases sharing few words and unrelated sentences sharing many; chosen from the data "
                            "alone, the same pairs for every candidate"),
    "text-classification": ("the longest inputs (characters of text and text_b): truncation and accumulated rounding "
                            "error bite there first; chosen from the data alone, the same examples for every candidate"),
    "causal-lm/text": ("windows with the rarest tokens: the highest mean unigram surprisal of their scored tokens under "
                       "the token frequencies of the evaluated text itself (names, numbers, rare words); chosen from "
                       "the data alone, the same windows for every candidate"),
    "causal-lm": ("the longest completions in tokens (more tokens to reproduce exactly); chosen from the data alone, "
                  "the same examples for every candidate"),
}


@dataclass(frozen=True)
class Scored:
    ids: tuple[str, ...]
    scores: tuple[float, ...]
    metrics: Metrics  # indices into ids -> {metric name: value}
    difficulty: tuple[float, ...] = ()  # data-defined, higher = harder (selects the hardest slice)
    hardest_definition: str = ""  # what ``difficulty`` measures, in words
    extra: dict[str, float] = field(default_factory=dict)  # over all examples only (perplexity_bucket_<i>)


def score_records(task: str, forward: Any, tokenizer: Any, records: list[Record], *, batch_size: int,
                  sequence_length: int, dataset_format: str = "", source: str = "", stride: int | None = None,
                  limit: int | None = None, label2id: dict[str, int] | None = None,
                  progress: Progress = no_progress, position_buckets: int = 0, skip: int = 0) -> Scored:
    """Dispatch on ``task``; ``limit`` caps causal-lm windows of ``text`` data; ``source`` (the data
    file) prefixes error locations; ``position_buckets`` > 0 adds perplexity per position bucket
    (causal-lm ``text`` data, ``position_perplexity``)."""
    import torch

    try:
        with torch.inference_mode():
            if task == "sentence-similarity":
                return _similarity(forward, tokenizer, records, batch_size, sequence_length, progress)
            if task == "text-classification":
                return _classification(forward, tokenizer, records, batch_size, sequence_length, label2id, progress)
            if task == "causal-lm":
                if dataset_format == "text":
                    return _perplexity(forward, tokenizer, records[0].text, batch_size, sequence_length,
                                       stride or max(1, sequence_length // 2), limit, progress, position_buckets, skip)
                return _completions(forward, tokenizer, records, batch_size, sequence_length, progress)
    except _RowError as exc:
        raise RunnerInputError(exc.message, location=f"{source}:{exc.line}" if source else f"line {exc.line}") from None
    raise RunnerInputError(f"unknown task {task!r}")


class _RowError(Exception):
    """A problem with one example, located by ``score_records``, which knows the file."""

    def __init__(self, message: str, line: int):
        super().__init__(message)
        self.message = message
        self.line = line


def _as_tensor(value: Any) -> Any:
    import torch

    return value if isinstance(value, torch.Tensor) else torch.as_tensor(value)


# ------------------------------------------------------------------------------ sentence-similarity


def embed(forward: Any, tokenizer: Any, texts: Sequence[str], batch_size: int, sequence_length: int,
          progress: Progress = no_progress) -> Any:
    """L2-normalised mean-pooled embeddings [N, H] (float32), in the order of ``texts``.

    Texts are batched longest first (less padding); padding does not change a text's embedding
    beyond float rounding because pooling and attention both honour the mask.
    """
    import torch

    order = sorted(range(len(texts)), key=lambda i: (-len(texts[i]), i))
    out: list[Any] = [None] * len(texts)
    batches = math.ceil(len(order) / batch_size)
    for b in range(batches):
        idx = order[b * batch_size:(b + 1) * batch_size]
        enc = tokenizer([texts[i] for i in idx], padding=True, truncation=True,
                        max_length=sequence_length, return_tensors="pt")
        hidden = _as_tensor(forward(enc["input_ids"], enc["attention_mask"])).float()
        mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
        for row, i in enumerate(idx):
            out[i] = pooled[row]
        progress(b + 1, batches, "embed")
    return torch.stack(out)


def _similarity(forward, tokenizer, records, batch_size, sequence_length, progress) -> Scored:
    import numpy as np
    from scipy.stats import rankdata

    for r in records:
        if r.text_b is None or r.score is None:
            raise _RowError("sentence-similarity needs text_a, text_b and score columns", r.line)
    # Each distinct sentence is embedded once.
    unique = list(dict.fromkeys([r.text for r in records] + [r.text_b for r in records]))
    where = {t: i for i, t in enumerate(unique)}
    emb = embed(forward, tokenizer, unique, batch_size, sequence_length, progress)
    a = emb[[where[r.text] for r in records]]
    b = emb[[where[r.text_b] for r in records]]
    pred = (a * b).sum(1).double().numpy()
    gold = np.array([r.score for r in records], dtype=np.float64)
    n = len(records)
    rank_gap = np.abs(rankdata(pred) - rankdata(gold)) / n
    scores = tuple(float(-g) for g in rank_gap)

    def metrics(indices: Sequence[int]) -> dict[str, float]:
        return correlation_metrics(pred[list(indices)], gold[list(indices)])

    return Scored(ids=tuple(r.id for r in records), scores=scores, metrics=metrics,
                  difficulty=overlap_difficulty(records), hardest_definition=HARDEST_DEFINITIONS["sentence-similarity"])


_WORD = re.compile(r"\w+")


def word_overlap(a: str, b: str) -> float:
    """Jaccard overlap of the lower-cased word sets of ``a`` and ``b`` (0 when both are empty)."""
    wa, wb = set(_WORD.findall(a.lower())), set(_WORD.findall(b.lower()))
    union = wa | wb
    return len(wa & wb) / len(union) if union else 0.0


def overlap_difficulty(records: Sequence[Record]) -> tuple[float, ...]:
    """``|rank(word overlap) - rank(gold)| / N`` per pair (average ranks): high when surface overlap
    orders the pair far from where the annotators did. Uses the data only."""
    import numpy as np
    from scipy.stats import rankdata

    n = len(records)
    if not n:
        return ()
    overlap = np.array([word_overlap(r.text, r.text_b or "") for r in records], dtype=np.float64)
    gold = np.array([r.score for r in records], dtype=np.float64)
    return tuple(float(x) for x in np.abs(rankdata(overlap) - rankdata(gold)) / n)


def correlation_metrics(pred: Any, gold: Any) -> dict[str, float]:
    """Spearman and Pearson (scipy); NaN when undefined (fewer than 2 points or a constant side)."""
    import numpy as np
    from scipy.stats import pearsonr, spearmanr

    if len(pred) < 2 or np.ptp(pred) == 0 or np.ptp(gold) == 0:
        return {"spearman": float("nan"), "pearson": float("nan")}
    return {"spearman": float(spearmanr(gold, pred)[0]), "pearson": float(pearsonr(gold, pred)[0])}


# ------------------------------------------------------------------------------ text-classification


def _class_index(label: str, label2id: dict[str, int] | None, line: int) -> int:
    if label2id and label in label2id:
        return int(label2id[label])
    try:
        return int(label)
    except ValueError:
        raise _RowError(f"label {label!r} is neither a 0-based class index nor one of the model's labels "
                       f"({', '.join(sorted(label2id or {})) or 'none'})", line) from None


def _classification(forward, tokenizer, records, batch_size, sequence_length, label2id, progress) -> Scored:
    import numpy as np
    import torch

    gold = np.array([_class_index(r.label or "", label2id, r.line) for r in records])
    preds: list[int] = []
    losses: list[float] = []
    batches = math.ceil(len(records) / batch_size)
    for b in range(batches):
        chunk = records[b * batch_size:(b + 1) * batch_size]
        pair = [r.text_b for r in chunk] if all(r.text_b is not None for r in chunk) else None
        enc = tokenizer([r.text for r in chunk], pair, padding=True, truncation=True,
                        max_length=sequence_length, return_tensors="pt")
        logits = _as_tensor(forward(enc["input_ids"], enc["attention_mask"])).float()
        target = torch.as_tensor(gold[b * batch_size:b * batch_size + len(chunk)])
        if int(target.max()) >= logits.shape[-1] or int(target.min()) < 0:
            bad = next(r for r, t in zip(chunk, target.tolist(), strict=False) if t >= logits.shape[-1] or t < 0)
            raise _RowError(f"label {bad.label!r} is outside the model's {logits.shape[-1]} classes", bad.line)
        losses.extend(torch.nn.functional.cross_entropy(logits, target, reduction="none").tolist())
        preds.extend(logits.argmax(-1).tolist())
        progress(b + 1, batches, "classify")
    pred = np.array(preds)

    def metrics(indices: Sequence[int]) -> dict[str, float]:
        p, g = pred[list(indices)], gold[list(indices)]
        return {"accuracy": float((p == g).mean()) if len(g) else float("nan"), "macro_f1": macro_f1(p, g)}

    return Scored(ids=tuple(r.id for r in records), scores=tuple(-x for x in losses), metrics=metrics,
                  difficulty=tuple(float(len(r.text) + len(r.text_b or "")) for r in records),
                  hardest_definition=HARDEST_DEFINITIONS["text-classification"])


def macro_f1(pred: Any, gold: Any) -> float:
    """Unweighted mean F1 over the classes present in gold or predictions."""
    classes = sorted(set(gold.tolist()) | set(pred.tolist()))
    if not classes:
        return float("nan")
    f1s = []
    for c in classes:
        tp = int(((pred == c) & (gold == c)).sum())
        fp = int(((pred == c) & (gold != c)).sum())
        fn = int(((pred != c) & (gold == c)).sum())
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)
    return float(sum(f1s) / len(f1s))


# ---------------------------------------------------------------------------------------- causal-lm


def windows(n_tokens: int, sequence_length: int, stride: int) -> list[tuple[int, int, int]]:
    """(begin, end, scored) per window: tokens [begin, end) are fed, the last ``scored`` are scored.

    The first window scores all its tokens but the first (nothing predicts token 0); each later window
    scores only the tokens the previous window did not reach, with up to ``sequence_length - stride``
    tokens of context before them.
    """
    if stride > sequence_length:
        raise RunnerInputError(f"evaluation.stride ({stride}) is larger than the sequence length ({sequence_length}): tokens would go unscored")
    out = []
    prev_end = 0
    for begin in range(0, n_tokens, stride):
        end = min(begin + sequence_length, n_tokens)
        # Never the window's own first token: nothing in the window predicts it (stride == sequence_length).
        scored = min(end - max(prev_end, 1), end - begin - 1)
        if scored > 0:
            out.append((begin, end, scored))
        prev_end = end
        if end >= n_tokens:
            break
    return out


def position_bucket(position: int, sequence_length: int, buckets: int) -> int:
    """0-based bucket of a token at ``position`` (0-based, in its window): ``buckets`` equal shares of
    ``sequence_length``."""
    return min(buckets - 1, position * buckets // sequence_length)


def position_perplexity(nll: Sequence[float], counts: Sequence[int]) -> dict[str, float]:
    """``perplexity_bucket_<i>`` (1-based) from summed NLL and token counts per bucket (NaN: empty)."""
    return {f"perplexity_bucket_{i + 1}": math.exp(n / c) if c else float("nan") for i, (n, c) in enumerate(zip(nll, counts, strict=True))}


def _perplexity(forward, tokenizer, text, batch_size, sequence_length, stride, limit, progress, buckets=0, skip=0) -> Scored:
    """Sliding-window perplexity. With ``buckets``, also perplexity by position in the window: every
    predicted position of every window (1 .. length-1, not only the tokens the window scores for the
    overall metric, so each bucket sees every window) falls in its ``position_bucket``. Their
    token-weighted geometric mean is the perplexity over all positions of all windows, which is the
    overall perplexity when stride = sequence_length - 1 (every window then scores every position)."""
    import torch

    ids = tokenizer(text, add_special_tokens=False, return_attention_mask=False)["input_ids"]
    if len(ids) < 2:
        raise RunnerInputError("the text has fewer than 2 tokens: nothing to score")
    ids_t = torch.tensor(ids)
    spans = windows(len(ids), sequence_length, stride)[skip:]
    if not spans:
        raise RunnerInputError(f"skip: the text has {len(windows(len(ids), sequence_length, stride))} windows, all skipped")
    if limit is not None:
        spans = spans[:limit]
    nll: list[float] = []
    counts: list[int] = []
    bucket_nll, bucket_count = [0.0] * buckets, [0] * buckets
    which = torch.tensor([position_bucket(t, sequence_length, buckets) for t in range(1, sequence_length)]) if buckets else None
    batches = math.ceil(len(spans) / batch_size)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    for b in range(batches):
        chunk = spans[b * batch_size:(b + 1) * batch_size]
        width = max(end - begin for begin, end, _ in chunk)
        input_ids = torch.full((len(chunk), width), pad, dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for row, (begin, end, _) in enumerate(chunk):
            input_ids[row, : end - begin] = ids_t[begin:end]
            mask[row, : end - begin] = 1
        logits = _as_tensor(forward(input_ids, mask)).float()
        for row, (begin, end, scored) in enumerate(chunk):
            length = end - begin
            # Position t's logits predict token t+1; score targets [length - scored, length).
            pred = logits[row, length - scored - 1: length - 1]
            target = input_ids[row, length - scored: length]
            loss = torch.nn.functional.cross_entropy(pred, target, reduction="sum")
            nll.append(float(loss))
            counts.append(scored)
            if buckets:
                every = torch.nn.functional.cross_entropy(logits[row, : length - 1], input_ids[row, 1:length], reduction="none").double()
                where = which[: length - 1]
                for i, (n, c) in enumerate(zip(torch.zeros(buckets, dtype=torch.float64).index_add_(0, where, every).tolist(),
                                               torch.bincount(where, minlength=buckets).tolist(), strict=True)):
                    bucket_nll[i] += n
                    bucket_count[i] += c
        progress(b + 1, batches, "perplexity")

    def metrics(indices: Sequence[int]) -> dict[str, float]:
        total = sum(counts[i] for i in indices)
        if not total:
            return {"perplexity": float("nan")}
        return {"perplexity": math.exp(sum(nll[i] for i in indices) / total)}

    return Scored(ids=tuple(f"chunk-{i}" for i in range(len(spans))),
                  scores=tuple(-nll[i] / counts[i] for i in range(len(spans))), metrics=metrics,
                  difficulty=rare_token_difficulty(ids, spans), hardest_definition=HARDEST_DEFINITIONS["causal-lm/text"],
                  extra=position_perplexity(bucket_nll, bucket_count) if buckets else {})


def rare_token_difficulty(ids: Sequence[int], spans: Sequence[tuple[int, int, int]]) -> tuple[float, ...]:
    """Per window: the mean unigram surprisal ``-log(count / total)`` of its scored tokens, counted over
    every scored token of the evaluated windows. Uses the tokens only (the tokenizer ships with every
    artifact, so baseline and candidates agree)."""
    from collections import Counter

    scored = [ids[t] for _, end, k in spans for t in range(end - k, end)]
    counts = Counter(scored)
    total = len(scored) or 1
    out = []
    for _, end, k in spans:
        out.append(sum(-math.log(counts[ids[t]] / total) for t in range(end - k, end)) / max(k, 1))
    return tuple(out)


def _completions(forward, tokenizer, records, batch_size, sequence_length, progress) -> Scored:
    import torch

    nll: list[float] = []
    counts: list[int] = []
    exact: list[bool] = []
    batches = math.ceil(len(records) / batch_size)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    for b in range(batches):
        chunk = records[b * batch_size:(b + 1) * batch_size]
        rows = []
        for r in chunk:
            if r.completion is None:
                raise _RowError("causal-lm examples need prompt and completion columns (or use format: text)", r.line)
            prompt = tokenizer(r.text, add_special_tokens=False)["input_ids"]
            completion = tokenizer(r.completion, add_special_tokens=False)["input_ids"]
            if not completion or not prompt:
                raise _RowError("prompt and completion must each be non-empty", r.line)
            if len(completion) >= sequence_length:
                raise _RowError(f"completion is {len(completion)} tokens, not shorter than sequence_length {sequence_length}", r.line)
            joined = (prompt + completion)[-sequence_length:]  # keep the end: the completion and its nearest context
            rows.append((joined, len(completion)))
        width = max(len(j) for j, _ in rows)
        input_ids = torch.full((len(rows), width), pad, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for row, (joined, _) in enumerate(rows):
            input_ids[row, : len(joined)] = torch.tensor(joined)
            mask[row, : len(joined)] = 1
        logits = _as_tensor(forward(input_ids, mask)).float()
        for row, (joined, n_completion) in enumerate(rows):
            length = len(joined)
            pred = logits[row, length - n_completion - 1: length - 1]
            target = input_ids[row, length - n_completion: length]
            nll.append(float(torch.nn.functional.cross_entropy(pred, target, reduction="sum")))
            counts.append(n_completion)
            exact.append(bool((pred.argmax(-1) == target).all()))
        progress(b + 1, batches, "completions")

    def metrics(indices: Sequence[int]) -> dict[str, float]:
        total = sum(counts[i] for i in indices)
        if not total:
            return {"exact_match": float("nan"), "perplexity": float("nan")}
        return {"exact_match": sum(exact[i] for i in indices) / len(indices),
                "perplexity": math.exp(sum(nll[i] for i in indices) / total)}

    return Scored(ids=tuple(r.id for r in records), scores=tuple(-nll[i] / counts[i] for i in range(len(records))),
                  metrics=metrics, difficulty=tuple(float(c) for c in counts), hardest_definition=HARDEST_DEFINITIONS["causal-lm"])

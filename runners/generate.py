"""Formatting drift (causal-lm): greedy replies to a fixed prompt set, scored against the baseline's.

The playbook's evaluation looks at the team's own tasks; for a generating model that includes *what it
writes*, not only how likely it finds reference text. A quantized model can keep its perplexity and
still drift in what it emits first (a different opening token, a broken JSON brace). So the baseline
records its greedy reply to each prompt of ``evaluation.generation.prompts`` and every candidate is
scored against them:

- **generation agreement**: the share of prompts whose first ``compare_tokens`` (N) generated tokens
  equal the baseline's exactly (a reply that ended earlier, at EOS, agrees only when it is identical).
  One definition, per prompt: a reply either starts the same way or it does not.
- **format-valid rate** (``format: json``): the share of replies that open, after whitespace and an
  optional Markdown code fence, with a complete JSON object or array (``format_valid``); text after
  it is ignored, because chat models explain their answer after it. Recorded for the baseline too,
  so the gate judges the candidate's rate against it.

Decoding is greedy and deterministic: no sampling, fixed prompts, each prompt wrapped in the
tokenizer's chat template when the tokenizer has one (an instruct model answers in its trained
format), else tokenized as written. It runs through the task's ``Forward`` only, one forward over the
prompt so far per generated token (no KV cache: the ``Forward`` of every backend's reloaded artifact
is ``(input_ids, attention_mask) -> logits``), so the cost is bounded by
``ceil(prompts / batch_size) * max_new_tokens`` forwards of at most ``sequence_length`` tokens. Rows
of a batch are right-padded: under causal attention a row's logits do not see the padding after it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from runners.base import Generated, GenerationSpec, RunnerError, RunnerInputError

_DECODER = json.JSONDecoder()


@dataclass(frozen=True)
class GenerationScore:
    generations: tuple[Generated, ...]
    extra: dict[str, float]  # generation_agreement (with a baseline), format_valid_rate (with a format)


def prompt_ids(tokenizer: Any, prompt: str) -> list[int]:
    """The prompt as the model is asked it: in the tokenizer's chat template when it has one."""
    if getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=False)
        return list(tokenizer(text, add_special_tokens=False)["input_ids"])
    return list(tokenizer(prompt, add_special_tokens=False)["input_ids"])


def greedy(forward: Any, prompts: Sequence[Sequence[int]], max_new_tokens: int, batch_size: int, pad: int,
           eos: int | None) -> list[tuple[int, ...]]:
    """Each prompt's greedy continuation: up to ``max_new_tokens`` argmax tokens, stopping after ``eos``."""
    import torch

    out: list[tuple[int, ...]] = []
    for b in range(math.ceil(len(prompts) / batch_size)):
        seqs = [list(p) for p in prompts[b * batch_size:(b + 1) * batch_size]]
        new: list[list[int]] = [[] for _ in seqs]
        for _ in range(max_new_tokens):
            active = [i for i in range(len(seqs)) if not (new[i] and eos is not None and new[i][-1] == eos)]
            if not active:
                break
            width = max(len(seqs[i]) for i in active)
            input_ids = torch.full((len(active), width), pad, dtype=torch.long)
            mask = torch.zeros((len(active), width), dtype=torch.long)
            for row, i in enumerate(active):
                input_ids[row, : len(seqs[i])] = torch.tensor(seqs[i])
                mask[row, : len(seqs[i])] = 1
            logits = forward(input_ids, mask)
            logits = logits if isinstance(logits, torch.Tensor) else torch.as_tensor(logits)
            for row, i in enumerate(active):
                token = int(logits[row, len(seqs[i]) - 1].float().argmax())
                seqs[i].append(token)
                new[i].append(token)
        out.extend(tuple(n) for n in new)
    return out


def format_valid(text: str, fmt: str) -> bool:
    """Whether a reply has ``fmt``: ``none`` always; ``json`` when it opens (after whitespace and an
    optional Markdown code fence such as ```` ```json ````) with a complete JSON object or array."""
    if fmt == "none":
        return True
    if fmt != "json":
        raise RunnerError(f"unknown generation format {fmt!r}")
    body = text.lstrip()
    if body.startswith("```"):
        newline = body.find("\n")
        if newline < 0:
            return False
        body = body[newline + 1:].lstrip()
    if not body.startswith(("{", "[")):
        return False
    try:
        _DECODER.raw_decode(body)
    except ValueError:
        return False
    return True


def agreement(candidate: Sequence[Generated], baseline: Sequence[Generated], compare_tokens: int) -> float:
    """Generation agreement: the share of the baseline's prompts whose first ``compare_tokens``
    candidate tokens equal the baseline's."""
    mine = {g.id: g.tokens for g in candidate}
    missing = [g.id for g in baseline if g.id not in mine]
    if missing:
        raise RunnerError(f"the baseline's generations name {len(missing)} prompt(s) this prompt set lacks (first: {missing[0]}); "
                          "the prompts changed since the baseline, so the baseline must run again")
    if not baseline:
        return float("nan")
    same = sum(mine[g.id][:compare_tokens] == g.tokens[:compare_tokens] for g in baseline)
    return same / len(baseline)


def score_generation(forward: Any, tokenizer: Any, spec: GenerationSpec, *, batch_size: int, sequence_length: int,
                     baseline: Sequence[Generated] | None = None) -> GenerationScore:
    """Generate greedily for every prompt of ``spec.prompts``; with ``baseline`` (the baseline's
    generations) also the agreement with them."""
    import torch

    from runners.datasets import read_examples

    records = read_examples(spec.prompts, "causal-lm")
    prompts = []
    for r in records:
        ids = prompt_ids(tokenizer, r.text)
        if not ids:
            raise RunnerInputError("prompt: empty", location=f"{spec.prompts.path}:{r.line}")
        if len(ids) + spec.max_new_tokens > sequence_length:
            raise RunnerInputError(f"prompt is {len(ids)} tokens; with max_new_tokens {spec.max_new_tokens} it exceeds "
                                   f"sequence_length {sequence_length}", location=f"{spec.prompts.path}:{r.line}")
        prompts.append(ids)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    with torch.inference_mode():
        replies = greedy(forward, prompts, spec.max_new_tokens, batch_size, pad, tokenizer.eos_token_id)
    generations = tuple(Generated(id=r.id, tokens=t) for r, t in zip(records, replies, strict=True))
    extra: dict[str, float] = {}
    if baseline:  # none recorded (no baseline, or one from before evaluation.generation): nothing to agree with
        extra["generation_agreement"] = agreement(generations, baseline, spec.compare_tokens)
    if spec.format != "none":
        valid = [format_valid(tokenizer.decode(list(t), skip_special_tokens=True), spec.format) for t in replies]
        extra["format_valid_rate"] = sum(valid) / len(valid)
    return GenerationScore(generations=generations, extra=extra)

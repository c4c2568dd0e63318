"""Causal LM on SmolLM2-135M (GGUF, dequantized to float) and WikiText-2: sliding-window perplexity
checked against transformers' own loss, and prompt/completion exact match against greedy decoding."""

from __future__ import annotations

import json
import math

import pytest
import torch

from runners.base import DatasetSpec, EvalSpec
from runners.evaluate import evaluate

pytestmark = pytest.mark.model

LENGTH, STRIDE, CHUNKS = 64, 32, 3


def test_smollm_info_from_the_gguf_config(smollm):
    info = smollm.info
    assert (info.architecture, info.num_layers, info.hidden_size, info.num_attention_heads, info.num_kv_heads, info.head_dim) == \
        ("LlamaForCausalLM", 30, 576, 9, 3, 64)
    assert info.vocab_size == 49152 and info.dtype_bytes == 4  # dequantized to float32
    assert len(info.quantizable_layers) == 30 * 7 and "lm_head" not in info.quantizable_layers


def test_sliding_window_perplexity_matches_transformers_loss(repo_root, smollm, tmp_path):
    # The first 60 lines of the WikiText-2 test file (bytes kept, CRLF included): enough for 3 windows,
    # without tokenizing the whole 1.3 MB file twice.
    path = tmp_path / "wiki.head.raw"
    path.write_bytes(b"".join((repo_root / "data/wikitext-2/wiki.test.raw").read_bytes().splitlines(keepends=True)[:60]))
    spec = EvalSpec(task="causal-lm", metric="perplexity", lower_is_better=True,
                    dataset=DatasetSpec(path=str(path), format="text", limit=CHUNKS),
                    hardest_fraction=0.1, batch_size=2, sequence_length=LENGTH, stride=STRIDE)
    outcome = evaluate(smollm.forward, smollm.tokenizer, spec, None)
    assert [e.id for e in outcome.examples] == ["chunk-0", "chunk-1", "chunk-2"]
    assert outcome.quality.n_examples == CHUNKS and len(outcome.hardest_ids) == 3
    assert outcome.hardest_definition.startswith("3 of 3 examples, windows with the rarest tokens")

    ids = smollm.tokenizer(path.read_bytes().decode("utf-8"), add_special_tokens=False)["input_ids"]  # as read: no newline translation
    with torch.no_grad():
        # Window 0 scores tokens 1..63; window k>0 feeds [32k, 32k+64) and scores its last 32 tokens.
        first = torch.tensor([ids[:LENGTH]])
        loss0 = smollm.model(input_ids=first, labels=first).loss.item()
        second = torch.tensor([ids[STRIDE:STRIDE + LENGTH]])
        labels = second.clone()
        labels[0, : LENGTH - STRIDE] = -100
        loss1 = smollm.model(input_ids=second, labels=labels).loss.item()
    assert outcome.examples[0].score == pytest.approx(-loss0, abs=1e-4)
    assert outcome.examples[1].score == pytest.approx(-loss1, abs=1e-4)
    nll = [-e.score * n for e, n in zip(outcome.examples, (LENGTH - 1, STRIDE, STRIDE), strict=False)]
    assert outcome.quality.value == pytest.approx(math.exp(sum(nll) / (LENGTH - 1 + 2 * STRIDE)), rel=1e-5)
    assert 5 < outcome.quality.value < 200  # a language model, not noise (vocab 49152)


def test_windows_that_do_not_overlap_and_a_skip_score_like_transformers(repo_root, smollm, tmp_path):
    """stride == sequence_length: each window is scored on its own (all but its first token), which is
    what transformers' loss on that window computes; ``skip`` passes over whole windows. (This
    setting used to crash: a window tried to score its first token from nothing.)"""
    path = tmp_path / "wiki.head.raw"
    path.write_bytes(b"".join((repo_root / "data/wikitext-2/wiki.test.raw").read_bytes().splitlines(keepends=True)[:60]))
    spec = EvalSpec(task="causal-lm", metric="perplexity", lower_is_better=True,
                    dataset=DatasetSpec(path=str(path), format="text", limit=2, skip=1),
                    hardest_fraction=0.1, batch_size=2, sequence_length=LENGTH, stride=LENGTH)
    outcome = evaluate(smollm.forward, smollm.tokenizer, spec, None)
    ids = smollm.tokenizer(path.read_bytes().decode("utf-8"), add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        second = torch.tensor([ids[LENGTH:2 * LENGTH]])  # window 1: the first one after the skipped window 0
        loss = smollm.model(input_ids=second, labels=second).loss.item()
    assert outcome.quality.n_examples == 2
    assert outcome.examples[0].score == pytest.approx(-loss, abs=1e-4)


def test_exact_match_agrees_with_greedy_decoding(smollm, tmp_path):
    tokenizer = smollm.tokenizer
    prompt = "The capital of France is"
    with torch.no_grad():
        prompt_ids = tokenizer(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"]
        generated = smollm.model.generate(prompt_ids, attention_mask=torch.ones_like(prompt_ids), max_new_tokens=3,
                                          do_sample=False, pad_token_id=tokenizer.pad_token_id)
    greedy = tokenizer.decode(generated[0, prompt_ids.shape[1]:])
    assert tokenizer(greedy, add_special_tokens=False)["input_ids"] == generated[0, prompt_ids.shape[1]:].tolist()
    path = tmp_path / "qa.jsonl"
    path.write_text(json.dumps({"prompt": prompt, "completion": greedy}) + "\n"
                    + json.dumps({"prompt": prompt, "completion": " a purple zebra"}) + "\n", encoding="utf-8")
    spec = EvalSpec(task="causal-lm", metric="exact_match", lower_is_better=False,
                    dataset=DatasetSpec(path=str(path), format="jsonl", columns={"prompt": "prompt", "completion": "completion"}),
                    hardest_fraction=0.5, batch_size=2, sequence_length=32)
    outcome = evaluate(smollm.forward, smollm.tokenizer, spec, None)
    assert outcome.quality.value == 0.5
    assert outcome.examples[0].score > outcome.examples[1].score  # the model's own continuation is likelier
    assert "perplexity" in outcome.quality.extra

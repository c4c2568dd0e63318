"""Suite-wide settings: offline model loading, the repository root, demo model availability."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO_ROOT = Path(__file__).resolve().parent.parent
MINILM_DIR = REPO_ROOT / "models" / "all-MiniLM-L6-v2"
SMOLLM_DIR = REPO_ROOT / "models" / "smollm2-135m-instruct"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    """The demo model; scripts/setup materialises it. Missing means setup did not run: fail loudly."""
    if not (MINILM_DIR / "model.safetensors").is_file():
        pytest.fail(f"{MINILM_DIR} is missing: run scripts/setup first")
    return MINILM_DIR


@pytest.fixture(scope="session")
def smollm_dir() -> Path:
    if not any(SMOLLM_DIR.glob("*.gguf")):
        pytest.fail(f"{SMOLLM_DIR} has no GGUF file: run scripts/setup first")
    return SMOLLM_DIR


#: The shape of the tiny models: two layers, widths that every backend's int4 group (32, 128) divides.
TINY = {"hidden_size": 128, "intermediate_size": 256, "num_hidden_layers": 2, "max_position_embeddings": 128}


@pytest.fixture(scope="session")
def tiny_model(minilm_dir, tmp_path_factory):
    """tiny_model(task) -> a directory holding a small, seeded, randomly initialised model for ``task``
    (built from a config: BERT for the encoder tasks, Llama for causal-lm) with the demo tokenizer.
    Quantizing it takes milliseconds; it is for contracts (save, reload, hashes), not for quality."""
    made: dict[str, Path] = {}

    def make(task: str) -> Path:
        if task not in made:
            made[task] = _tiny_model(task, minilm_dir, tmp_path_factory.mktemp(f"tiny-{task}"))
        return made[task]

    return make


def _tiny_model(task: str, tokenizer_dir: Path, directory: Path) -> Path:
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification, BertModel, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    torch.manual_seed(0)
    if task == "causal-lm":
        model = LlamaForCausalLM(LlamaConfig(vocab_size=tokenizer.vocab_size, num_attention_heads=4, num_key_value_heads=2,
                                             pad_token_id=tokenizer.pad_token_id, **TINY))
    elif task == "text-classification":
        labels = ("negative", "neutral", "positive")
        model = BertForSequenceClassification(BertConfig(vocab_size=tokenizer.vocab_size, num_attention_heads=2,
                                                         id2label=dict(enumerate(labels)),
                                                         label2id={label: i for i, label in enumerate(labels)}, **TINY))
    else:
        model = BertModel(BertConfig(vocab_size=tokenizer.vocab_size, num_attention_heads=2, **TINY))
    model.eval().save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory

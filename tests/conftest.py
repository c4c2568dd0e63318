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

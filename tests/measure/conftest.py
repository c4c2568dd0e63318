"""Shared fixtures: the demo models loaded once per session, and STS-B specs of a given size."""

from __future__ import annotations

import pytest

from runners.base import DatasetSpec, EvalSpec, ModelSpec

STSB_COLUMNS = {"score": 4, "text_a": 5, "text_b": 6}
SMOLLM_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Run this directory's model code on one thread, restored afterwards.

    On a shared 2-core machine two OpenMP threads spin-wait on each other whenever one is preempted:
    a SmolLM2 forward measured 11 s on 2 threads against 0.74 s on 1. Results do not depend on it.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def minilm_spec(minilm_dir) -> ModelSpec:
    return ModelSpec(source=str(minilm_dir), revision=None, task="sentence-similarity")


@pytest.fixture(scope="session")
def minilm(minilm_spec):
    from runners.models import load_model

    return load_model(minilm_spec)


@pytest.fixture(scope="session")
def smollm(smollm_dir):
    import torch

    from runners.models import load_model

    before = torch.get_num_threads()
    torch.set_num_threads(1)  # see one_torch_thread: weight init on 2 contended threads crawls
    try:
        return load_model(ModelSpec(source=str(smollm_dir), revision=None, task="causal-lm", gguf_file=SMOLLM_GGUF))
    finally:
        torch.set_num_threads(before)


def stsb_eval(repo_root, limit: int | None, batch_size: int = 32, sequence_length: int = 128) -> EvalSpec:
    dataset = DatasetSpec(path=str(repo_root / "data/stsb/sts-test.tsv"), format="tsv", columns=STSB_COLUMNS, limit=limit)
    return EvalSpec(task="sentence-similarity", metric="spearman", lower_is_better=False, dataset=dataset,
                    hardest_fraction=0.1, batch_size=batch_size, sequence_length=sequence_length)

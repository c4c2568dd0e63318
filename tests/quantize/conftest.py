"""Shared for the quantizing tests: one small baseline of the real demo model on a real data subset.

Evaluations use the first ``EVAL_LIMIT`` STS-B test pairs and a short latency protocol (``TIMING``);
the figures that matter for the issue come from ``bench/backends.py`` on the full set.
"""

from __future__ import annotations

import pytest

from runners.base import DatasetSpec, EnvelopeSpec, EvalSpec, ModelSpec, QuantSpec

EVAL_LIMIT = 96
TIMING = {"min_runs": 2, "min_seconds": 0.05, "max_seconds": 1.0}


@pytest.fixture(scope="session")
def model_spec(minilm_dir) -> ModelSpec:
    return ModelSpec(source=str(minilm_dir), revision=None, task="sentence-similarity")


@pytest.fixture(scope="session")
def eval_spec(repo_root) -> EvalSpec:
    data = DatasetSpec(path=str(repo_root / "data/stsb/sts-test.tsv"), format="tsv",
                       columns={"score": 4, "text_a": 5, "text_b": 6}, limit=EVAL_LIMIT)
    return EvalSpec(task="sentence-similarity", metric="spearman", lower_is_better=False, dataset=data,
                    hardest_fraction=0.1, batch_size=32, sequence_length=128)


@pytest.fixture(scope="session")
def envelope_spec() -> EnvelopeSpec:
    return EnvelopeSpec(device="cpu", memory_bytes=1 << 30, headroom=0.25, batch_size=4, sequence_length=64, latency_p95_ms=None)


@pytest.fixture(scope="session")
def baseline(model_spec, eval_spec, envelope_spec):
    from runners.baseline import run_baseline

    return run_baseline(model_spec, eval_spec, envelope_spec, **TIMING)


@pytest.fixture(scope="session")
def timing() -> dict:
    return dict(TIMING)


@pytest.fixture(scope="session")
def quant_spec(repo_root):
    """quant_spec(backend, weights, activations="none", protected=(), samples=32, group_size=None) -> QuantSpec"""
    return lambda *args, **kwargs: _quant_spec(repo_root, *args, **kwargs)


def _quant_spec(repo_root, backend: str, weights: str, activations: str = "none", protected=(), samples: int = 32,
               group_size=None) -> QuantSpec:
    calibration = DatasetSpec(path=str(repo_root / "data/stsb/sts-train.tsv"), format="tsv",
                              columns={"score": 4, "text_a": 5, "text_b": 6})
    return QuantSpec(weights=weights, activations=activations, group_size=group_size, backend=backend,
                     calibration=calibration, samples=samples, seed=0, protected_layers=tuple(protected))

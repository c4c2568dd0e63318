"""Play 1 end to end on the demo model (small slice, short latency protocol), through LocalRunner."""

from __future__ import annotations

import importlib.metadata

import pytest
import torch

from compiler.files import file_sha256
from runners.base import BaselineResult, EnvelopeSpec, from_dict, to_dict
from runners.environment import cpu_flags
from runners.local import LocalRunner
from runners.models import weights_sha256
from runners.perf import measure_performance, synthetic_inputs
from tests.measure.conftest import stsb_eval

pytestmark = pytest.mark.model

SMALL = EnvelopeSpec(device="cpu", memory_bytes=2**30, headroom=0.25, batch_size=2, sequence_length=32, latency_p95_ms=None)


def test_baseline_records_quality_slice_performance_and_environment(repo_root, minilm, minilm_spec, monkeypatch):
    torch.set_num_threads(2)  # the process default here; the protocol must pin QUANTGATE_THREADS instead
    monkeypatch.setenv("QUANTGATE_THREADS", "1")
    threads_before = torch.get_num_threads()
    events = []
    spec = stsb_eval(repo_root, 40, batch_size=16)
    result = LocalRunner().baseline(minilm_spec, spec, SMALL, lambda done, total, what: events.append((done, total, what)))
    from runners.baseline import run_baseline  # the same play, with the test's short latency protocol
    short = run_baseline(minilm_spec, spec, SMALL, min_runs=5, min_seconds=0.0)

    for r in (result, short):
        assert r.weights_sha256 == weights_sha256(minilm.model)
        assert r.data_sha256 == file_sha256(spec.dataset.path)
        assert r.quality.metric == "spearman" and r.quality.n_examples == 40 and len(r.examples) == 40
        assert len(r.hardest_ids) == 4 and set(r.hardest_ids) <= {e.id for e in r.examples}
        assert r.model_info == minilm.info
        assert r.performance.threads == r.environment.threads == 1
        assert r.environment.cpu_flags == cpu_flags()
        assert r.environment.versions["torch"] == importlib.metadata.version("torch")
    assert result.quality == short.quality and result.hardest_ids == short.hardest_ids  # deterministic
    assert result.performance.runs >= 30  # the documented protocol
    assert short.performance.runs >= 5
    assert 0 < result.performance.latency_p50_ms <= result.performance.latency_p95_ms
    assert (result.performance.batch_size, result.performance.sequence_length) == (2, 32)
    assert result.performance.footprint_bytes >= minilm.info.parameters * 4
    # Latency and peak memory come from a fresh process, measured the way every candidate is.
    assert result.performance.memory_method.startswith("peak RSS growth of a fresh process")
    assert result.performance.peak_memory_bytes >= minilm.info.parameters * 4 * 0.9  # the weights, at least
    assert 0 < result.performance.forward_memory_bytes < result.performance.peak_memory_bytes
    assert result.hardest_definition.startswith("4 of 40 examples, pairs whose word overlap is most misleading")
    assert ("embed" in {w for _, _, w in events}) and any(total > 0 and done == total for done, total, _ in events)
    assert torch.get_num_threads() == threads_before  # the pin is undone afterwards

    # The result survives the journal/lock round trip.
    assert from_dict(BaselineResult, to_dict(result)) == result


def test_synthetic_inputs_have_the_envelope_shape(minilm):
    ids, mask = synthetic_inputs(minilm.tokenizer, 3, 50)
    assert ids.shape == mask.shape == (3, 50) and bool(mask.all())
    assert ids[0, 0].item() == minilm.tokenizer.cls_token_id
    perf = measure_performance(minilm.forward, minilm.tokenizer, SMALL, 123, min_runs=3, min_seconds=0.0, threads=1)
    assert perf.runs >= 3 and perf.footprint_bytes == 123 and perf.threads == 1

"""Cache keys: pinned values, and exactly the dependencies the playbook names."""

from __future__ import annotations

import io

import pytest
from playbook_support import MANIFEST
from ruamel.yaml import YAML

from compiler.playbook.cachekeys import Facts, cache_keys

FACTS = Facts(model_files_sha256="1" * 64, evaluation_sha256="2" * 64, calibration_sha256="3" * 64, backend="torchao")


def manifest(text: str = MANIFEST):
    from compiler.manifest.model import Manifest

    return Manifest.model_validate(YAML(typ="safe", pure=True).load(io.StringIO(text)))


def keys(text: str = MANIFEST, facts: Facts = FACTS, sha: str = "f" * 64) -> dict[str, str]:
    return cache_keys(manifest(text), facts, sha)


# Pinned: a change here means every journal and lock in the wild stops matching. If that is
# intended, bump cachekeys.CACHE_VERSION and update these values in the same change.
#: Pinned at CACHE_VERSION 3 (quantization.algorithm, calibration windows and fit, the causal-lm checks).
GOLDEN = {
    "baseline": "0520812ba3f7783022c64fb1e85597093016703358b66900f439e3dcf084034b",
    "envelope": "8526057928c6c78d73789d58db30c2aa1aeaf5bfb279255a0a63fcdb2194421b",
    "ptq": "65b69ae17f6d28f56159d533d2669fc1eaef36ab3999ef92dcba9974fbbd8b95",
    "monitor": "d63ae18f53c13303e17a9ad22ae16d666347edc02e6a0582e93591aec747709a",
}


def test_pinned_keys():
    got = keys()
    assert {k: got[k] for k in GOLDEN} == GOLDEN


def changed(old: str, new: str, facts: Facts = FACTS, sha: str = "f" * 64) -> set[str]:
    before, after = keys(), keys(MANIFEST.replace(old, new), facts, sha)
    return {p for p in before if before[p] != after[p]}


def test_owners_change_reruns_nothing_but_the_lock_record():
    # The manifest's hash changes (the lock records it), no play's inputs do.
    assert changed('on_call: ["@acme/ml-oncall"]', 'on_call: ["@someone-else"]', sha="e" * 64) == {"lock"}
    assert changed("description: Demo encoder", "description: Something else", sha="e" * 64) == {"lock"}


def test_rollback_change_reruns_only_monitor():
    assert changed("quality_floor: 0.78", "quality_floor: 0.70") == {"monitor"}


def test_gate_change_keeps_baseline_envelope_and_ptq():
    assert changed("max_drop: 0.01", "max_drop: 0.02") == {"gate", "mixed_precision", "qat", "lock"}


def test_quantization_change_reuses_baseline():
    assert changed("weights: int8", "weights: int4") == {"envelope", "ptq", "gate", "mixed_precision", "qat", "lock"}


def test_new_model_content_reuses_the_envelope():
    # The playbook's model-update rule: a new model version re-runs baseline, ptq and the gate
    # but keeps the envelope verdict (and the calibration choice, which is manifest text).
    other = Facts(model_files_sha256="9" * 64, evaluation_sha256=FACTS.evaluation_sha256,
                  calibration_sha256=FACTS.calibration_sha256, backend="torchao")
    before, after = keys(), keys(facts=other)
    assert {p for p in before if before[p] != after[p]} == {"baseline", "ptq", "gate", "mixed_precision", "qat", "lock"}


def test_hub_revision_change_reuses_the_envelope():
    hub = MANIFEST.replace("source: ./models/tiny", "source: org/model\n  revision: " + "a" * 40)
    facts = Facts(None, FACTS.evaluation_sha256, FACTS.calibration_sha256, "torchao")
    before = keys(hub, facts)
    after = keys(hub.replace("a" * 40, "b" * 40), facts)
    assert before["envelope"] == after["envelope"]
    assert before["baseline"] != after["baseline"] and before["ptq"] != after["ptq"]


@pytest.mark.parametrize("field,expected", [
    ("evaluation_sha256", {"baseline", "ptq", "gate", "mixed_precision", "qat", "lock"}),
    ("calibration_sha256", {"ptq", "gate", "mixed_precision", "qat", "lock"}),
    ("backend", {"envelope", "ptq", "gate", "mixed_precision", "qat", "lock"}),  # the envelope estimate depends on it
])
def test_data_and_backend_feed_exactly_their_plays(field, expected):
    values = dict(FACTS.__dict__)
    values[field] = "onnxruntime" if field == "backend" else "0" * 64
    before, after = keys(), keys(facts=Facts(**values))
    assert {p for p in before if before[p] != after[p]} == expected


def test_envelope_latency_target_does_not_touch_the_baseline():
    assert "baseline" not in changed("latency_p95_ms: 50", "latency_p95_ms: 40")
    assert "baseline" in changed("batch_size: 8", "batch_size: 4")

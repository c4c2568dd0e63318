"""Backends and what they declare: answered without importing torch, and without asking what is installed."""

from __future__ import annotations

import subprocess
import sys

import pytest

from runners import registry
from runners.backends.protocol import Capabilities


def test_registry_and_resolve_import_no_model_stack(repo_root):
    code = ("import sys, runners.registry as r; r.resolve('auto','cpu','int8','dynamic-int8','sentence-similarity'); "
            "r.capable('cpu','int4','none','causal-lm'); r.refusals('auto','cpu','fp8','none','causal-lm'); "
            "[r.version(n) for n in r.BACKEND_NAMES]; [r.missing(n) for n in r.BACKEND_NAMES]; "
            "print(sorted(m for m in ('torch','transformers','onnxruntime','onnx','torchao','optimum','optimum.quanto') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=repo_root, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_backend_names_are_the_registry_in_registration_order():
    assert registry.BACKEND_NAMES == tuple(registry.BACKENDS)
    assert all(isinstance(b.capabilities, Capabilities) for b in registry.BACKENDS.values())
    # Every declaration is complete enough to plan and record with.
    for backend in registry.BACKENDS.values():
        caps = backend.capabilities
        assert caps.modes and caps.tasks and caps.devices and caps.distributions and caps.requires
        assert "ptq" in caps.methods and caps.extra


def test_auto_prefers_onnxruntime_for_cpu_int8_dynamic_encoders():
    assert registry.resolve("auto", "cpu", "int8", "dynamic-int8", "sentence-similarity", ("ptq", "mixed_precision")) == "onnxruntime"


def test_auto_falls_to_a_backend_that_can_do_every_method():
    # QAT needs torchao; ONNX Runtime cannot export a causal LM.
    assert registry.resolve("auto", "cpu", "int4", "none", "sentence-similarity", ("ptq", "qat")) == "torchao"
    assert registry.resolve("auto", "cpu", "int4", "none", "causal-lm") == "torchao"
    assert registry.resolve("auto", "cuda", "int8", "none", "sentence-similarity") == "torchao"


def test_nothing_builds_fp8_on_cpu_and_the_refusal_says_why():
    assert registry.capable("cpu", "fp8", "none", "sentence-similarity") == []
    assert registry.resolve("auto", "cpu", "fp8", "none", "sentence-similarity") is None
    lines = registry.refusals("auto", "cpu", "fp8", "none", "sentence-similarity")
    assert len(lines) == len(registry.BACKENDS)
    assert all("fp8" in line or "does not run algorithm rtn" in line for line in lines)
    # Per backend: one that cannot is named even when another can.
    assert [line.split(":")[0] for line in registry.refusals("auto", "cpu", "int8", "none", "causal-lm")] == [
        "onnxruntime", "gptq", "llm-compressor"]  # gptq and llm-compressor: not the rtn algorithm
    assert registry.refusals("tensorrt", "cpu", "int8", "none", "sentence-similarity") == [
        f"tensorrt: not a registered backend (known: {', '.join(registry.BACKEND_NAMES)})"]


def test_quanto_declares_only_what_reloads_faithfully():
    quanto = registry.BACKENDS["optimum-quanto"]
    assert quanto.supports("cpu", "int4", "none", "causal-lm")
    assert not quanto.supports("cpu", "int8", "dynamic-int8", "sentence-similarity")
    assert not quanto.supports("cpu", "int4", "none", "sentence-similarity", group_size=32)
    assert quanto.supports("cpu", "int4", "none", "sentence-similarity", group_size=128)
    assert "group size (group_size) of 32" in quanto.refusal("cpu", "int4", "none", "sentence-similarity", group_size=32)
    assert registry.resolve("optimum-quanto", "cpu", "int4", "none", "sentence-similarity", group_size=32) is None
    assert quanto.capabilities.default_group_size == 128


def test_resolution_does_not_depend_on_what_is_installed(monkeypatch):
    """Plans (and ``auto`` cache keys) are the same on a machine without the model stack."""
    import importlib.metadata

    def nothing_installed(name):
        raise importlib.metadata.PackageNotFoundError(name)

    before = registry.resolve("auto", "cpu", "int8", "dynamic-int8", "sentence-similarity", ("ptq", "mixed_precision"))
    monkeypatch.setattr(importlib.metadata, "version", nothing_installed)
    assert registry.resolve("auto", "cpu", "int8", "dynamic-int8", "sentence-similarity", ("ptq", "mixed_precision")) == before
    assert registry.resolve("optimum-quanto", "cpu", "int4", "none", "causal-lm") == "optimum-quanto"
    for name in registry.BACKEND_NAMES:
        caps = registry.BACKENDS[name].capabilities
        assert registry.missing(name) == (f"backend {name!r} is not installed here: pip install 'quantgate[{caps.extra}]' "
                                          f"(missing: {', '.join(caps.requires)})")


@pytest.mark.parametrize("name", registry.BACKEND_NAMES)
def test_installed_backends_are_not_missing_and_report_their_versions(name):
    import importlib.metadata

    backend = registry.BACKENDS[name]
    if backend.capabilities.needs_accelerator:  # the gpu extra belongs to GPU runners' own environment
        assert backend.capabilities.extra == "gpu" and "quantgate[gpu]" in (registry.missing(name) or "quantgate[gpu]")
        pytest.skip(f"{name} needs an accelerator; its extra is not installed beside the CPU stack")
    assert registry.missing(name) is None  # the test environment installs the run extra
    assert registry.versions(name) == {d: importlib.metadata.version(d) for d in backend.capabilities.distributions}
    assert registry.version(name) == importlib.metadata.version(backend.capabilities.distributions[0])


def test_the_runner_refuses_a_missing_backend_naming_the_extra_before_loading(monkeypatch):
    from runners import local
    from runners.base import RunnerInputError

    monkeypatch.setattr(local, "missing", lambda name: f"backend {name!r} is not installed here: pip install 'quantgate[run]' (missing: x)")
    quant = _quant(registry.BACKEND_NAMES[0])
    with pytest.raises(RunnerInputError, match=r"pip install 'quantgate\[run\]'"):
        local.LocalRunner().ptq(None, quant, None, None, None, "/nonexistent")


def _quant(backend: str):
    from runners.base import DatasetSpec, QuantSpec

    weights, activations = registry.BACKENDS[backend].capabilities.modes[0]
    return QuantSpec(weights=weights, activations=activations, group_size=None, backend=backend,
                     calibration=DatasetSpec(path="/nonexistent", format="tsv"), samples=1, seed=0)


def test_accelerator_only_algorithms_are_refused_on_a_cpu_envelope_in_words():
    """AWQ and SmoothQuant are declared as needing a GPU: plan refuses them on a CPU envelope before
    anything runs, and says what to use instead; on a cuda envelope they resolve to llm-compressor."""
    for algorithm, weights, activations in (("awq", "int4", "none"), ("smoothquant", "int8", "dynamic-int8")):
        assert registry.resolve("auto", "cpu", weights, activations, "causal-lm", algorithm=algorithm) is None
        lines = registry.refusals("auto", "cpu", weights, activations, "causal-lm", algorithm=algorithm)
        assert f"llm-compressor: {algorithm} needs an accelerator: llm-compressor builds it on cuda only, and this envelope's device is cpu" \
            " (on a CPU, use algorithm gptq or rtn)" in lines
        assert registry.resolve("auto", "cuda", weights, activations, "causal-lm", algorithm=algorithm) == "llm-compressor"


def test_gptq_is_chosen_by_the_algorithm_and_refuses_what_it_does_not_build():
    assert registry.resolve("auto", "cpu", "int4", "none", "causal-lm", ("ptq", "mixed_precision"), 64, algorithm="gptq") == "gptq"
    assert registry.resolve("auto", "cpu", "int4", "none", "causal-lm", group_size=64) == "torchao"  # rtn stays the default
    assert registry.resolve("auto", "cpu", "int4", "none", "sentence-similarity", algorithm="gptq") is None
    assert registry.BACKENDS["gptq"].refusal("cpu", "int8", "dynamic-int8", "causal-lm", algorithm="gptq") == (
        "gptq cannot build int8 weights with dynamic-int8 activations (it offers int4 weights with none activations, "
        "int8 weights with none activations)")

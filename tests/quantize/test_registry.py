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
    assert all("fp8" in line for line in lines)
    # Per backend: one that cannot is named even when another can.
    assert [line.split(":")[0] for line in registry.refusals("auto", "cpu", "int8", "none", "causal-lm")] == ["onnxruntime"]
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

"""Backends and what they declare: answered without importing torch."""

from __future__ import annotations

import subprocess
import sys

from runners import registry


def test_registry_and_resolve_import_no_model_stack(repo_root):
    # find_spec("optimum.quanto") imports the light namespace package "optimum", never quanto itself.
    code = ("import sys, runners.registry as r; r.resolve('auto','cpu','int8','dynamic-int8','sentence-similarity'); "
            "r.capable('cpu','int4','none','causal-lm'); r.version('torchao'); "
            "print(sorted(m for m in ('torch','transformers','onnxruntime','torchao','optimum.quanto') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=repo_root, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


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
    lines = registry.explain("auto", "cpu", "fp8", "none", "sentence-similarity")
    assert len(lines) == len(registry.BACKENDS)
    assert all("fp8" in line for line in lines)


def test_quanto_declares_only_what_reloads_faithfully():
    quanto = registry.BACKENDS["optimum-quanto"]
    assert quanto.supports("cpu", "int4", "none", "causal-lm")
    assert not quanto.supports("cpu", "int8", "dynamic-int8", "sentence-similarity")
    assert not quanto.supports("cpu", "int4", "none", "sentence-similarity", group_size=32)
    assert quanto.supports("cpu", "int4", "none", "sentence-similarity", group_size=128)
    assert "group size of 32" in quanto.refusal("cpu", "int4", "none", "sentence-similarity", group_size=32)
    assert registry.resolve("optimum-quanto", "cpu", "int4", "none", "sentence-similarity", group_size=32) is None


def test_versions_come_from_the_installed_distributions():
    import importlib.metadata

    assert registry.version("onnxruntime") == importlib.metadata.version("onnxruntime")
    assert registry.version("optimum-quanto") == importlib.metadata.version("optimum-quanto")

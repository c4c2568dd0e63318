"""The serving flag: written from the lock, carried over while the artifact stays, read by the
reference loader (which verifies the quantized artifact before loading it)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from compiler.monitoring.serving import read_serving, write_serving
from runners.base import RunnerError
from runners.serving_loader import load_active, resolve
from runners.serving_loader import main as loader_main

from .conftest import ARTIFACT_SHA, WEIGHTS_SHA, make_lock, manifest_text

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    (tmp_path / "manifests").mkdir()
    path = tmp_path / "manifests" / "demo.yaml"
    path.write_text(manifest_text())
    return path


def test_write_serving_names_both_artifacts_and_writes_only_on_change(manifest):
    assert write_serving(manifest, make_lock()) is True
    serving = read_serving(manifest.with_name("demo.serving.yaml"))
    assert serving["active"] == "quantized"
    assert serving["artifacts"]["quantized"]["sha256"] == ARTIFACT_SHA
    assert serving["artifacts"]["quantized"]["path"] == f"artifacts/demo/{ARTIFACT_SHA}"
    full = serving["artifacts"]["full-precision"]
    assert full["source"] == "./models/all-MiniLM-L6-v2" and full["weights_sha256"] == WEIGHTS_SHA
    assert serving["lock"] == "manifests/demo.lock.yaml"
    assert write_serving(manifest, make_lock()) is False


def test_a_rollback_survives_rewriting_the_same_lock_but_not_a_new_artifact(manifest):
    from compiler.monitoring.serving import roll_back

    target = manifest.with_name("demo.serving.yaml")
    write_serving(manifest, make_lock())
    assert roll_back(target, [{"rule": "quality_floor", "observed": 0.7, "threshold": 0.78}]) is True
    assert roll_back(target, [{"rule": "quality_floor", "observed": 0.6, "threshold": 0.78}]) is False
    assert write_serving(manifest, make_lock()) is False
    assert read_serving(target)["active"] == "full-precision"
    assert write_serving(manifest, make_lock(artifact_sha="d" * 64)) is True  # a newly locked decision
    assert read_serving(target)["active"] == "quantized" and read_serving(target)["rollback"] is None


def test_a_lock_without_an_artifact_serves_full_precision(manifest):
    write_serving(manifest, make_lock(artifact_sha=None))
    serving = read_serving(manifest.with_name("demo.serving.yaml"))
    assert serving["active"] == "full-precision" and serving["artifacts"]["quantized"] is None


def _onnx_artifact(folder: Path) -> str:
    """A real (tiny) ONNX model: y = x + 1."""
    import onnx
    from onnx import TensorProto, helper

    one = helper.make_tensor("one", TensorProto.FLOAT, [1], [1.0])
    graph = helper.make_graph([helper.make_node("Add", ["x", "one"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])], [one])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    folder.mkdir(parents=True)
    onnx.save(model, folder / "model.onnx")
    return hashlib.sha256((folder / "model.onnx").read_bytes()).hexdigest()


def test_loader_verifies_the_active_quantized_artifact_and_refuses_a_tampered_one(manifest, tmp_path, capsys):
    folder = tmp_path / "artifacts" / "demo" / ARTIFACT_SHA
    lock = make_lock()
    lock["final"]["artifact"]["files"] = {"model.onnx": _onnx_artifact(folder)}
    write_serving(manifest, lock)
    serving_file = manifest.with_name("demo.serving.yaml")
    chosen = resolve(serving_file)
    assert chosen.active == "quantized" and chosen.location == str(folder.resolve())
    assert loader_main([str(serving_file)]) == 0 and "serving quantized" in capsys.readouterr().out

    (folder / "model.onnx").write_bytes(b"tampered")
    with pytest.raises(RunnerError, match="does not match its recorded sha256"):
        resolve(serving_file)
    assert loader_main([str(serving_file)]) == 3


def test_loader_follows_a_rollback_to_full_precision(manifest, tmp_path):
    from compiler.monitoring.serving import roll_back

    write_serving(manifest, make_lock())  # the quantized artifact is not even on this machine
    serving_file = manifest.with_name("demo.serving.yaml")
    with pytest.raises(RunnerError, match="not deployed here"):
        resolve(serving_file)
    roll_back(serving_file, [{"rule": "latency_p95_ms", "observed": 132.0, "threshold": 80.0}])
    chosen = resolve(serving_file)
    assert chosen.active == "full-precision"
    assert chosen.location == str((tmp_path / "models" / "all-MiniLM-L6-v2").resolve())
    assert chosen.reason["rule"] == "latency_p95_ms"


@pytest.mark.model
def test_loader_loads_the_active_quantized_artifact_with_the_backend_it_records(manifest, tiny_model, repo_root, tmp_path):
    """No format is special-cased: the artifact's ``artifact.json`` names the backend that reloads it."""
    from runners.base import BaselineResult, DatasetSpec, ModelSpec, QuantSpec
    from runners.ptq import Quantizer
    from runners.registry import BACKEND_NAMES, BACKENDS

    name = BACKEND_NAMES[0]
    weights, activations = BACKENDS[name].capabilities.modes[0]
    spec = ModelSpec(source=str(tiny_model("sentence-similarity")), revision=None, task="sentence-similarity")
    calibration = DatasetSpec(path=str(repo_root / "data/stsb/sts-train.tsv"), format="tsv", columns={"text_a": 5, "text_b": 6})
    quant = QuantSpec(weights=weights, activations=activations, group_size=None, backend=name, calibration=calibration,
                      samples=4, seed=0)
    baseline = BaselineResult(WEIGHTS_SHA, None, None, (), (), None, None, "")  # type: ignore[arg-type]
    with Quantizer(spec, quant, None, None, baseline, str(tmp_path / "artifacts")) as quantizer:
        _, artifact = quantizer.save((), "ptq")
    lock = make_lock()
    lock["final"]["artifact"] = {"path": artifact.path, "sha256": artifact.sha256, "files": artifact.files, "format": artifact.format}
    write_serving(manifest, lock)
    loaded = load_active(manifest.with_name("demo.serving.yaml"))
    assert loaded.record["backend"] == name
    encoded = loaded.tokenizer(["a quantized artifact serves"], return_tensors="pt")
    assert loaded.forward(encoded["input_ids"], encoded["attention_mask"]).shape[-1] == 128


@pytest.mark.model
def test_loader_loads_the_real_full_precision_model(minilm_dir, tmp_path):
    from compiler.monitoring.serving import roll_back

    root = tmp_path / "repo"
    (root / "manifests").mkdir(parents=True)
    (root / "models").mkdir()
    (root / "models" / "all-MiniLM-L6-v2").symlink_to(minilm_dir)
    manifest = root / "manifests" / "demo.yaml"
    manifest.write_text(manifest_text())
    write_serving(manifest, make_lock())
    roll_back(manifest.with_name("demo.serving.yaml"), [{"rule": "quality_floor", "observed": 0.7, "threshold": 0.78}])
    loaded = load_active(manifest.with_name("demo.serving.yaml"))
    encoded = loaded.tokenizer(["a rollback is a config change"], return_tensors="pt")
    hidden = loaded.forward(encoded["input_ids"], encoded["attention_mask"])
    assert hidden.shape[-1] == 384

"""Request checks that need no model: globs, calibration draws, refusals, artifacts on disk."""

from __future__ import annotations

import dataclasses
import json

import pytest

from compiler.files import artifact_sha256, file_sha256
from runners import backends
from runners.artifacts import verify, write_artifact
from runners.base import DatasetSpec, ModelSpec, QatSpec, QuantSpec, RunnerError, RunnerInputError
from runners.ptq import check_capabilities, draw_calibration, resolve_protected

LAYERS = tuple(f"encoder.layer.{i}.{part}" for i in range(2) for part in
               ("attention.self.query", "attention.self.key", "attention.output.dense", "intermediate.dense", "output.dense"))


def test_globs_resolve_to_exact_names_in_module_order():
    got = resolve_protected(("*.output.dense", "encoder.layer.1.attention.self.query"), LAYERS)
    assert got == ("encoder.layer.0.attention.output.dense", "encoder.layer.0.output.dense",
                   "encoder.layer.1.attention.self.query", "encoder.layer.1.attention.output.dense",
                   "encoder.layer.1.output.dense")


def test_a_glob_matching_nothing_is_an_error_naming_close_layers():
    with pytest.raises(RunnerInputError) as err:
        resolve_protected(("encoder.layer.0.attention.self.qeury",), LAYERS)
    message = str(err.value)
    assert "'encoder.layer.0.attention.self.qeury' matches none" in message
    assert "encoder.layer.0.attention.self.query" in message


def _calibration(repo_root, samples=16, seed=0):
    data = DatasetSpec(path=str(repo_root / "data/stsb/sts-train.tsv"), format="tsv", columns={"score": 4, "text_a": 5, "text_b": 6})
    return QuantSpec(weights="int8", activations="dynamic-int8", group_size=None, backend="onnxruntime",
                     calibration=data, samples=samples, seed=seed)


def test_calibration_draw_is_seeded_and_recorded(repo_root):
    a = draw_calibration(_calibration(repo_root), "sentence-similarity")
    b = draw_calibration(_calibration(repo_root), "sentence-similarity")
    c = draw_calibration(_calibration(repo_root, seed=1), "sentence-similarity")
    assert a == b and a.texts != c.texts
    assert a.samples == 16 and len(a.texts) == 32  # both sentences of each pair
    assert len(a.sha256) == 64 and a.sha256 == c.sha256


@pytest.mark.parametrize("activations,group,needle", [("dynamic-int8", None, "activations"), ("none", 32, "group_size")])
def test_the_runner_refuses_what_a_backend_does_not_declare(activations, group, needle, repo_root):
    quant = dataclasses.replace(_calibration(repo_root), backend="optimum-quanto", weights="int4", activations=activations,
                                group_size=group)
    with pytest.raises(RunnerInputError, match=needle):
        check_capabilities(quant, "sentence-similarity", "ptq", "cpu")


def test_qat_is_refused_for_a_backend_that_does_not_declare_it_naming_those_that_do(repo_root):
    quant = dataclasses.replace(_calibration(repo_root), backend="onnxruntime")
    with pytest.raises(RunnerInputError, match=r"does not run qat.*backends that can: torchao"):
        check_capabilities(quant, "sentence-similarity", "qat", "cpu")


def test_unknown_backend_is_an_input_error():
    with pytest.raises(RunnerInputError, match="not a registered backend"):
        backends.load("tensorrt")


def test_qat_refuses_to_start_without_a_justification(repo_root, tmp_path):
    from runners.qat import run_qat

    quant = _calibration(repo_root)
    spec = ModelSpec(source="/nonexistent", revision=None, task="sentence-similarity")
    with pytest.raises(RunnerInputError, match="justification"):
        run_qat(spec, quant, QatSpec(justification="  ", steps=10, learning_rate=1e-4, seed=0),
                None, None, None, str(tmp_path))


def _write(tmp_path, payload: bytes):
    def write(directory):
        (directory / "weights.bin").write_bytes(payload)
        return {"quantizer": "test", "weights_files": ["weights.bin"]}

    return write_artifact(tmp_path / "artifacts", "demo", "torch", {"backend": "torchao", "task": "sentence-similarity"}, write)


def test_artifacts_are_content_addressed_and_verified(tmp_path):
    first = _write(tmp_path, b"abc")
    again = _write(tmp_path, b"abc")
    other = _write(tmp_path, b"abd")
    assert first == again and first.sha256 != other.sha256
    assert first.path == f"artifacts/demo/{first.sha256}"
    assert first.sha256 == artifact_sha256(first.files) and set(first.files) == {"weights.bin", "artifact.json"}
    folder = tmp_path / first.path
    assert sorted(p.name for p in (tmp_path / "artifacts/demo").iterdir()) == sorted({first.sha256, other.sha256})
    record = json.loads((folder / "artifact.json").read_text())
    assert str(tmp_path) not in json.dumps(record)  # nothing machine-specific in what is hashed
    assert verify(folder)["config"]["quantizer"] == "test"
    (folder / "weights.bin").write_bytes(b"abX")
    with pytest.raises(RunnerError, match="does not match"):
        verify(folder)


def test_the_saved_tokenizer_does_not_depend_on_how_it_was_last_called(minilm_dir, tmp_path):
    from transformers import AutoTokenizer

    from runners.artifacts import save_tokenizer

    tokenizer = AutoTokenizer.from_pretrained(minilm_dir)
    save_tokenizer(tokenizer, tmp_path / "before")
    tokenizer(["a short one", "and a longer second sentence"], padding="max_length", truncation=True, max_length=16)
    save_tokenizer(tokenizer, tmp_path / "after")
    for name in ("tokenizer.json", "tokenizer_config.json"):
        assert file_sha256(tmp_path / "before" / name) == file_sha256(tmp_path / "after" / name)
    assert "local_files_only" not in (tmp_path / "after" / "tokenizer_config.json").read_text()

"""Play 3 on the real demo model: built, saved content-addressed, judged as reloaded in a fresh process."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from runners.artifacts import verify
from runners.ptq import run_ptq

pytestmark = pytest.mark.model

PROTECT = "encoder.layer.0.attention.self.*"


@pytest.fixture(scope="module")
def ort_int8(quant_spec, timing, model_spec, eval_spec, envelope_spec, baseline, tmp_path_factory):
    root = tmp_path_factory.mktemp("repo") / "artifacts"
    quant = quant_spec("onnxruntime", "int8", "dynamic-int8", protected=(PROTECT,))
    return root, run_ptq(model_spec, quant, eval_spec, envelope_spec, baseline, str(root), **timing)


def test_onnxruntime_int8_is_a_quarter_of_fp32_and_keeps_quality(ort_int8, baseline):
    _, result = ort_int8
    assert result.backend == "onnxruntime" and result.backend_version
    assert result.performance.footprint_bytes <= 0.27 * baseline.performance.footprint_bytes
    # Quality measured in the child process, on the same examples and hardest slice as the baseline.
    assert result.quality.n_examples == baseline.quality.n_examples
    assert abs(result.quality.value - baseline.quality.value) <= 0.02


def test_protected_globs_become_exact_names_kept_out_of_the_graph(ort_int8):
    _, result = ort_int8
    assert result.protected_layers == tuple(f"encoder.layer.0.attention.self.{p}" for p in ("query", "key", "value"))
    assert result.quantized_layers == 37 - 3  # 36 encoder Linears + the pooler (unused, pruned from the graph)
    assert result.config["layers_not_in_graph"] == ["pooler.dense"]
    assert result.config["nodes_to_exclude"] == sorted(
        f"/model/encoder/layer.0/attention/self/{p}/MatMul" for p in ("query", "key", "value"))


def test_the_artifact_records_backend_versions_calibration_and_file_hashes(ort_int8):
    root, result = ort_int8
    folder = root.parent / result.artifact.path
    assert folder.name == result.artifact.sha256 and folder.parent.name == "all-minilm-l6-v2"
    record = verify(folder)
    assert record["backend"] == "onnxruntime" and record["versions"]["onnxruntime"] == result.backend_version
    assert record["calibration"] == {"samples": 32, "sha256": result.calibration_sha256, "seed": 0}
    assert record["protected_layers"] == list(result.protected_layers)
    assert set(result.artifact.files) >= {"model.onnx", "artifact.json", "tokenizer.json"}


def test_requantizing_in_a_second_process_gives_the_same_artifact(ort_int8, repo_root, baseline, tmp_path):
    root, result = ort_int8
    spec = {"source": str(repo_root / "models/all-MiniLM-L6-v2"), "root": str(tmp_path / "artifacts"),
            "calibration": str(repo_root / "data/stsb/sts-train.tsv"), "protect": PROTECT,
            "weights_sha256": baseline.weights_sha256}
    code = f"""
import json
from runners.base import BaselineResult, DatasetSpec, ModelSpec, QuantSpec
from runners.ptq import Quantizer
s = json.loads({json.dumps(json.dumps(spec))})
cal = DatasetSpec(path=s["calibration"], format="tsv", columns={{"score": 4, "text_a": 5, "text_b": 6}})
quant = QuantSpec(weights="int8", activations="dynamic-int8", group_size=None, backend="onnxruntime", calibration=cal,
                  samples=32, seed=0, protected_layers=(s["protect"],))
base = BaselineResult(s["weights_sha256"], None, None, (), (), None, None, "")
with Quantizer(ModelSpec(s["source"], None, "sentence-similarity"), quant, None, None, base, s["root"]) as q:
    print(q.save(q.protected, "ptq")[1].sha256)
"""
    out = subprocess.run([sys.executable, "-c", code], cwd=repo_root, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == result.artifact.sha256


def test_a_glob_matching_nothing_stops_before_building(quant_spec, timing, model_spec, eval_spec, envelope_spec, baseline, tmp_path):
    from runners.base import RunnerInputError

    quant = quant_spec("onnxruntime", "int8", "dynamic-int8", protected=("encoder.layer.9.*",))
    with pytest.raises(RunnerInputError, match=r"'encoder.layer.9.\*' matches none"):
        run_ptq(model_spec, quant, eval_spec, envelope_spec, baseline, str(tmp_path / "artifacts"), **timing)
    assert not (tmp_path / "artifacts").exists()

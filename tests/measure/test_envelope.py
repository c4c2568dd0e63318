"""Play 2 verdicts on the two demo architectures (ModelInfo as the baseline measures them; no model load).

CPU flags and CUDA capability are passed in so each verdict is tested for the hardware it is about,
whatever machine runs the suite.
"""

from __future__ import annotations

import subprocess
import sys

from runners.base import DatasetSpec, EnvelopeSpec, ModelInfo, Performance, QuantSpec
from runners.envelope import check_envelope

MIB = 2**20
MINILM = ModelInfo(architecture="BertModel", parameters=22_713_216, dtype_bytes=4, num_layers=6, hidden_size=384,
                   num_attention_heads=12, num_kv_heads=12, head_dim=32,
                   quantizable_layers=tuple(f"encoder.layer.{i}.{m}" for i in range(6) for m in
                                            ("attention.self.query", "attention.self.key", "attention.self.value",
                                             "attention.output.dense", "intermediate.dense", "output.dense")) + ("pooler.dense",),
                   quantizable_parameters=10_764_288, vocab_size=30522)
SMOLLM = ModelInfo(architecture="LlamaForCausalLM", parameters=134_515_008, dtype_bytes=4, num_layers=30, hidden_size=576,
                   num_attention_heads=9, num_kv_heads=3, head_dim=64,
                   quantizable_layers=tuple(f"model.layers.{i}.{m}" for i in range(30) for m in
                                            ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                                             "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")),
                   quantizable_parameters=106_168_320, vocab_size=49152)
VNNI = ("avx2", "fma", "avx512f", "avx512_vnni")
AVX2 = ("avx2", "fma")
SSE = ("sse4_2",)  # no int8 dot products at all
CALIB = DatasetSpec(path="/dev/null", format="text")


def quant(weights: str = "int8", activations: str = "dynamic-int8", group_size: int | None = None, protected: tuple[str, ...] = ()) -> QuantSpec:
    return QuantSpec(weights=weights, activations=activations, group_size=group_size, backend="torchao",
                     calibration=CALIB, samples=8, seed=0, protected_layers=protected)


def envelope(memory_mib: int, latency: float | None = None, batch: int = 8, seq: int = 128, device: str = "cpu") -> EnvelopeSpec:
    return EnvelopeSpec(device=device, memory_bytes=memory_mib * MIB, headroom=0.25, batch_size=batch,
                        sequence_length=seq, latency_p95_ms=latency)


def perf(p95: float, batch: int = 8, seq: int = 128, peak: int = 0) -> Performance:
    return Performance(device="cpu", batch_size=batch, sequence_length=seq, latency_p50_ms=p95 * 0.9, latency_p95_ms=p95,
                       runs=30, peak_memory_bytes=peak, footprint_bytes=90_000_000, threads=2)


def test_fits_with_native_int8_and_a_latency_target_to_win_passes():
    result = check_envelope(MINILM, quant(), envelope(1024, latency=50), perf(80), cpu_flags=VNNI)
    assert result.verdict == "pass", result.reasons
    assert not any(r.startswith(("fail:", "warn:")) for r in result.reasons)
    assert any("must make it 1.6x faster" in r for r in result.reasons)
    assert result.native_support and result.memory_needed_bytes < result.memory_budget_bytes == 768 * MIB
    assert result.bound == "compute"  # 1024 tokens per forward


def test_does_not_fit_fails_with_the_numbers():
    result = check_envelope(SMOLLM, quant("int8", "none"), envelope(256, batch=1, seq=512), None, cpu_flags=VNNI)
    assert result.verdict == "fail"
    assert result.memory_needed_bytes > result.memory_budget_bytes == 192 * MIB
    assert result.reasons[0].startswith("does not fit:") and "192.0 MiB available" in result.reasons[0]
    assert result.estimates["kv_cache_bytes"] == 1 * 512 * 30 * 3 * 64 * 2 * 4


def test_int4_on_cpu_fits_but_warns_it_saves_memory_not_time():
    # 768 MiB less 25 % headroom: full precision (~650 MiB) does not fit, int4 (~300 MiB) does.
    result = check_envelope(SMOLLM, quant("int4", "none", group_size=32), envelope(768, batch=1, seq=512), None, cpu_flags=VNNI)
    assert result.verdict == "warn", result.reasons
    assert not result.native_support
    assert result.estimates["memory_full_bytes"] > result.memory_budget_bytes >= result.memory_needed_bytes
    assert any("saves memory, not time" in r for r in result.reasons)


def test_already_fits_and_fast_at_full_precision_is_the_wrong_move():
    result = check_envelope(MINILM, quant(), envelope(1024, latency=50), perf(20), cpu_flags=VNNI)
    assert result.verdict == "wrong-move"
    assert result.reasons[0].startswith("quantization is the wrong move: the model already fits at full precision")
    assert "20.0 ms <= 50 ms" in result.reasons[0]


def test_no_latency_target_and_fits_at_full_precision_is_the_wrong_move():
    assert check_envelope(MINILM, quant(), envelope(1024), None, cpu_flags=VNNI).verdict == "wrong-move"


def test_latency_missed_without_native_kernels_is_the_wrong_move():
    result = check_envelope(MINILM, quant(), envelope(1024, latency=50), perf(300), cpu_flags=SSE)
    assert result.verdict == "wrong-move" and not result.native_support
    assert "without native kernels" in result.reasons[0]
    # ... and the criteria behind it are listed right after the cause, as warnings
    assert result.reasons[1].startswith("warn: int8 on CPU: this CPU has no VNNI/AMX")
    assert result.reasons[2].startswith("warn: latency target missed: p95 300.0 ms")


def test_avx2_multiplies_int8_faster_than_float():
    result = check_envelope(MINILM, quant(), envelope(1024, latency=50), perf(80), cpu_flags=AVX2)
    assert result.native_support and result.verdict == "pass", result.reasons
    assert any("through AVX2" in r for r in result.reasons)


def test_fp8_on_cpu_fails():
    result = check_envelope(MINILM, quant("fp8", "none"), envelope(1024, latency=50), perf(80), cpu_flags=VNNI)
    assert result.verdict == "fail" and any("fp8 cannot run on CPU" in r for r in result.reasons)


def test_cuda_verdict_follows_compute_capability():
    env = envelope(768, batch=1, seq=512, device="cuda")
    assert check_envelope(SMOLLM, quant("int4", "none", 32), env, None, cuda_capability=(9, 0)).verdict == "pass"
    old = check_envelope(SMOLLM, quant("int4", "none", 32), env, None, cuda_capability=(7, 5))
    assert old.verdict == "warn" and any("no native kernels before sm_80" in r for r in old.reasons)
    assert check_envelope(SMOLLM, quant("fp8", "none"), env, None, cuda_capability=(8, 0)).verdict == "fail"
    assert check_envelope(SMOLLM, quant("fp8", "none"), env, None, cuda_capability=(8, 9)).verdict == "pass"


def test_protected_layers_stay_full_precision_in_the_estimate():
    env = envelope(1024, latency=50)
    plain = check_envelope(MINILM, quant(), env, perf(80), cpu_flags=VNNI)
    kept = check_envelope(MINILM, quant(protected=("encoder.layer.0.*",)), env, perf(80), cpu_flags=VNNI)
    per_layer = MINILM.quantizable_parameters / len(MINILM.quantizable_layers)
    # six protected layers keep 4 bytes per weight instead of 1 plus a 4-byte scale per 384-wide row
    assert abs(kept.memory_needed_bytes - plain.memory_needed_bytes - 6 * per_layer * (4 - 1 - 4 / 384)) <= 1


def test_measured_activation_memory_wins_when_larger():
    env = envelope(1024, latency=50)
    estimated = check_envelope(MINILM, quant(), env, perf(80), cpu_flags=VNNI)
    measured = check_envelope(MINILM, quant(), env, perf(80, peak=500 * MIB), cpu_flags=VNNI)
    assert measured.memory_needed_bytes - estimated.memory_needed_bytes == 500 * MIB - estimated.estimates["activation_estimate_bytes"]


def test_envelope_module_imports_no_torch(repo_root):
    code = "import sys, runners.envelope; sys.exit(1 if 'torch' in sys.modules else 0)"
    assert subprocess.run([sys.executable, "-c", code], cwd=repo_root).returncode == 0


def test_a_latency_miss_beyond_what_quantization_gives_is_a_warning_listed_first():
    # The case: fits, native int8, but full precision misses the 50 ms target 6x.
    result = check_envelope(MINILM, quant(), envelope(1024, latency=50), perf(300), cpu_flags=VNNI)
    assert result.verdict == "warn"
    assert result.reasons[0].startswith("warn: latency target missed by 6.0x: p95 300.0 ms")
    assert result.reasons[1].startswith("memory at int8")  # what was met follows what was not


def test_reasons_are_ordered_by_severity_none_hidden():
    # int4 on CPU (warn: no native kernels) and a 6x latency miss (warn) on a model that fits.
    result = check_envelope(SMOLLM, quant("int4", "none", group_size=32), envelope(768, latency=50, batch=1, seq=512), perf(300, 1, 512),
                            cpu_flags=VNNI)
    severities = ["fail" if r.startswith(("fail:", "does not fit")) else "warn" if r.startswith("warn:") else "fact" for r in result.reasons]
    assert severities == sorted(severities, key=["fail", "warn", "fact"].index)
    assert severities.count("warn") == 2
    failed = check_envelope(SMOLLM, quant("fp8", "none"), envelope(256, latency=50, batch=1, seq=512), perf(300, 1, 512), cpu_flags=VNNI)
    assert failed.verdict == "fail"
    assert [r.split(":")[0] for r in failed.reasons[:4]] == ["does not fit", "fail", "fail", "warn"]


def test_weight_estimate_counts_what_each_backend_quantizes():
    # ONNX Runtime dynamic int8 quantizes the embedding Gather too: almost every byte becomes int8.
    ort = check_envelope(MINILM, QuantSpec(weights="int8", activations="dynamic-int8", group_size=None, backend="onnxruntime",
                                           calibration=CALIB, samples=8, seed=0), envelope(1024), None, cpu_flags=VNNI)
    assert 21.5 * MIB < ort.estimates["weights_target_bytes"] < 23 * MIB
    assert ort.estimates["embedding_parameters_quantized"] == 30522 * 384
    # torchao quantizes Linear layers only: the 11.7 M embedding weights stay float32.
    tao = check_envelope(MINILM, quant("int8", "none"), envelope(1024), None, cpu_flags=VNNI)
    assert tao.estimates["embedding_parameters_quantized"] == 0
    assert tao.estimates["weights_target_bytes"] > ort.estimates["weights_target_bytes"] + 30 * MIB
    # ONNX weight-only (MatMulNBits) leaves the embedding Gather alone as well.
    nbits = check_envelope(MINILM, QuantSpec(weights="int8", activations="none", group_size=32, backend="onnxruntime",
                                             calibration=CALIB, samples=8, seed=0), envelope(1024), None, cpu_flags=VNNI)
    assert nbits.estimates["embedding_parameters_quantized"] == 0


def test_process_peak_is_not_mistaken_for_activations():
    # A fresh-process peak (weights + runtime + activations) is shown, the one-forward figure is the activations.
    base = Performance(device="cpu", batch_size=8, sequence_length=128, latency_p50_ms=70, latency_p95_ms=80, runs=30,
                       peak_memory_bytes=400 * MIB, footprint_bytes=90_000_000, threads=2, forward_memory_bytes=60 * MIB,
                       memory_method="peak RSS growth of a fresh process")
    result = check_envelope(MINILM, quant(), envelope(1024, latency=50), base, cpu_flags=VNNI)
    assert result.estimates["activation_measured_bytes"] == 60 * MIB
    assert any("a fresh process measured 400.0 MiB at peak" in r for r in result.reasons)

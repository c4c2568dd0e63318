"""Play 2, the envelope check: will the quantized model fit, run natively, and is quantizing worth it?

Pure Python, no torch: it reads ``ModelInfo`` (from the baseline), the manifest's quantization and
envelope, the baseline's measured performance when there is one, and the machine's CPU flags
(``/proc/cpuinfo``) or the GPU's compute capability (``nvidia-smi``; both can be passed in).

Verdicts (docs/measuring.md has the full rules and formulas):
- ``fail``: the model does not fit ``memory_per_device x (1 - headroom)`` at the target precision,
  or the device cannot execute the format at all (fp8 on CPU, fp8 before sm_89). Stops the funnel.
- ``wrong-move``: quantizing buys nothing the envelope asks for: the model already fits at full
  precision and meets the latency target measured at baseline (or has none), or it fits at full
  precision, misses the latency target, and quantization cannot make it faster here (no native
  kernels, or weight-only quantization of a compute-bound workload). Advisory: recorded and shown to
  the platform lead, who signs the envelope; the funnel continues.
- ``warn``: it fits, with caveats a platform lead should read (saves memory, not time; latency target
  missed at full precision by more than quantization plausibly gives; capability unknown).
- ``pass``: fits and runs natively.

Reasons are ordered by severity and none is hidden: the verdict's cause, every failed criterion
(``fail: ...``), every warned one (``warn: ...``), then the criteria that were met and the estimates.
"""

from __future__ import annotations

import fnmatch
import os
import shutil
import subprocess

from runners.base import EnvelopeResult, EnvelopeSpec, ModelInfo, Performance, QuantSpec

#: Bytes per weight element at each target precision (scales are added separately).
WEIGHT_BYTES = {"int8": 1.0, "int4": 0.5, "fp8": 1.0}
#: Bytes of scale (+ zero point) per group or per output channel: fp16 scale + fp16 zero point.
SCALE_BYTES = 4
#: CPU features that execute int8 dot products natively (x86 VNNI / AMX, Arm dot product / i8mm).
INT8_CPU_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8", "asimddp", "i8mm")
#: x86 without VNNI still multiplies int8 faster than fp32 with AVX2 (``vpmaddubsw`` + ``vpmaddwd``, the
#: path FBGEMM and ONNX Runtime's MLAS take): about twice fp32 throughput instead of VNNI's four.
INT8_AVX2_FLAG = "avx2"
CPU_INT8_SPEEDUP_AVX2 = 2
#: End-to-end speedup a low-precision forward can plausibly give over fp32 (attention, norms and the
#: (de)quantization of activations do not speed up); the demo's ONNX int8 measures 1.7-2.5x. A latency
#: target missed at full precision by more than this is a warning.
PLAUSIBLE_SPEEDUP = 2.5
#: Minimum CUDA compute capability with native kernels for each format.
CUDA_MIN_CAPABILITY = {"int8": (7, 5), "int4": (8, 0), "fp8": (8, 9)}
#: Estimated machine balance in FLOP per byte of memory traffic. CPU: flops per cycle per core at
#: ~2.5 GHz over ~10 GB/s of memory bandwidth per core (so FLOP/cycle / 4). GPU: datasheet dense
#: fp16 tensor throughput over memory bandwidth of the capability's flagship part. Estimates only.
CPU_FLOPS_PER_CYCLE = {"avx512f": 64, "avx2": 32, "default": 8}
CPU_INT8_SPEEDUP = 4  # VNNI / AMX int8 throughput over fp32 FMA, per cycle
GPU_BALANCE = {(7, 0): 139.0, (7, 5): 203.0, (8, 0): 153.0, (8, 6): 83.0, (8, 9): 306.0, (9, 0): 295.0, (10, 0): 281.0}
#: Activation estimate per token: ~6 hidden-size vectors alive at once in a block (residual, attention
#: in/out, the 4x-wide MLP intermediate) plus one row of attention scores per head.
ACTIVATION_VECTORS = 6


def check_envelope(info: ModelInfo, quant: QuantSpec, envelope: EnvelopeSpec, baseline: Performance | None,
                   *, cpu_flags: tuple[str, ...] | None = None, cuda_capability: tuple[int, int] | None = None) -> EnvelopeResult:
    """The envelope verdict with its reasons and the estimates behind them.

    Reasons are ordered by severity, none hidden: the verdict's cause, then every failed criterion
    (``fail: ...``), every warned one (``warn: ...``), then the facts that met their criterion."""
    causal = info.architecture.endswith("ForCausalLM") or info.architecture.endswith("LMHeadModel")
    fails: list[str] = []
    warns: list[str] = []
    facts: list[str] = []

    # ---- memory
    budget = int(envelope.memory_bytes * (1 - envelope.headroom))
    full_weights = info.parameters * info.dtype_bytes
    target_weights = _target_weight_bytes(info, quant)
    kv = envelope.batch_size * envelope.sequence_length * info.num_layers * info.num_kv_heads * info.head_dim * 2 * info.dtype_bytes if causal else 0
    estimated_act = _activation_estimate(info, envelope, causal)
    same_shape = baseline is not None and (baseline.batch_size, baseline.sequence_length) == (envelope.batch_size, envelope.sequence_length)
    measured_act = _forward_memory(baseline) if same_shape and baseline is not None else 0
    activations = max(estimated_act, measured_act)
    needed_full = full_weights + kv + activations
    needed = int(target_weights + kv + activations)
    fits = needed <= budget
    fits_full = needed_full <= budget
    process_peak = baseline.peak_memory_bytes if same_shape and baseline is not None and baseline.memory_method else 0
    memory_line = (f"memory at {quant.weights}: {_mib(needed)} needed (weights {_mib(target_weights)}"
                   + (f" + KV cache {_mib(kv)}" if causal else "")
                   + f" + activations {_mib(activations)}{' measured' if measured_act >= estimated_act and measured_act else ' estimated'})"
                   f" of a {_mib(budget)} budget ({_mib(envelope.memory_bytes)} less {envelope.headroom:.0%} headroom); "
                   f"full precision needs {_mib(needed_full)}"
                   + (f" (a fresh process measured {_mib(process_peak)} at peak, runtime included)" if process_peak else ""))
    if not fits:
        fails.append(f"does not fit: {_mib(needed)} needed at {quant.weights} but only {_mib(budget)} available; "
                     "use a lower bit width, a smaller batch or sequence, or a device with more memory")
        fails.append(memory_line)
    else:
        facts.append(memory_line)

    # ---- native support
    native, native_fail, native_line = _native_support(quant, envelope, cpu_flags, cuda_capability)
    if native_fail:
        fails.append(native_line)
    elif not native:
        warns.append(native_line)
    else:
        facts.append(native_line)

    # ---- memory- or compute-bound (estimate)
    tokens = envelope.batch_size * envelope.sequence_length
    intensity = _intensity(info.hidden_size, tokens, WEIGHT_BYTES.get(quant.weights, 1.0), info.dtype_bytes)
    balance = _balance(envelope, quant, cpu_flags, cuda_capability, native)
    bound = "memory" if intensity < balance else "compute"
    weight_only_compute = bound == "compute" and quant.activations == "none"
    bound_line = (f"estimate: {tokens} tokens per forward gives ~{intensity:.0f} FLOP/byte against a machine balance of "
                  f"~{balance:.0f} FLOP/byte, so the forward pass is {bound}-bound"
                  + ("; weight-only quantization mostly saves memory here, int8 compute kernels are what would save time"
                     if weight_only_compute else ""))
    estimates = {
        "weights_full_bytes": float(full_weights), "weights_target_bytes": float(target_weights),
        "embedding_parameters_quantized": float(_embedding_parameters(info) if _quantizes_embeddings(quant) else 0),
        "kv_cache_bytes": float(kv), "activation_estimate_bytes": float(estimated_act),
        "activation_measured_bytes": float(measured_act), "memory_full_bytes": float(needed_full),
        "arithmetic_intensity": round(intensity, 2), "machine_balance": round(balance, 2),
    }
    decode_line = None
    if causal:
        decode = _intensity(info.hidden_size, envelope.batch_size, WEIGHT_BYTES.get(quant.weights, 1.0), info.dtype_bytes)
        estimates["decode_arithmetic_intensity"] = round(decode, 2)
        decode_line = (f"estimate: generating one token per step at batch {envelope.batch_size} is ~{decode:.1f} FLOP/byte, memory-bound: "
                       "fewer weight bytes is what speeds up decoding")

    # ---- latency against the target, as measured at full precision
    target = envelope.latency_p95_ms
    can_speed_up = native and not weight_only_compute
    latency_met = None
    if target is not None:
        if baseline is None:
            facts.append(f"latency target p95 {target:g} ms: not measured yet (the baseline measures it)")
        else:
            latency_met = baseline.latency_p95_ms <= target
            measured = (f"p95 {baseline.latency_p95_ms:.1f} ms at full precision against a target of {target:g} ms "
                        f"(batch {baseline.batch_size} x {baseline.sequence_length} tokens, {baseline.threads} threads)")
            need = baseline.latency_p95_ms / target if target > 0 else float("inf")
            estimates["latency_speedup_needed"] = round(need, 3)
            if latency_met:
                facts.append(f"latency: {measured}: met")
            elif not can_speed_up:
                warns.append(f"latency target missed: {measured}, and {quant.weights} is unlikely to make it faster here")
            elif need > PLAUSIBLE_SPEEDUP:
                warns.append(f"latency target missed by {need:.1f}x: {measured}; {quant.weights} kernels typically make a forward "
                             f"at most ~{PLAUSIBLE_SPEEDUP:g}x faster end to end, so the target is unlikely to be met: "
                             "relax latency_p95_ms, use a smaller batch or sequence, or a faster device")
            else:
                facts.append(f"latency: {measured}: missed at full precision; {quant.weights} must make it {need:.1f}x faster "
                             f"(plausible: up to ~{PLAUSIBLE_SPEEDUP:g}x); the gate measures the candidate")
    facts.append(bound_line)
    if decode_line:
        facts.append(decode_line)

    # ---- verdict: its cause first, then every failed and warned criterion, then the rest
    cause: list[str] = []
    if fails:
        verdict = "fail"
    elif fits_full and (target is None or latency_met):
        verdict = "wrong-move"
        cause.append(f"quantization is the wrong move: the model already fits at full precision ({_mib(needed_full)} of {_mib(budget)})"
                     + (f" and meets the p95 latency target ({baseline.latency_p95_ms:.1f} ms <= {target:g} ms)" if target is not None and baseline else " and the envelope sets no latency target")
                     + "; quantizing would risk quality for nothing the envelope asks for")
    elif fits_full and latency_met is False and not can_speed_up:
        verdict = "wrong-move"
        cause.append("quantization is the wrong move: the model already fits at full precision, and the latency target it misses "
                     f"will not be met by {quant.weights}" + ("" if native else " without native kernels on this device")
                     + (" (weight-only quantization of a compute-bound forward)" if native else "")
                     + "; consider a faster device, a smaller batch or sequence, or a smaller model")
    elif warns:
        verdict = "warn"
    else:
        verdict = "pass"
    reasons = cause + [f"fail: {r}" if not r.startswith("does not fit") else r for r in fails] + [f"warn: {r}" for r in warns] + facts
    return EnvelopeResult(verdict=verdict, reasons=tuple(reasons), memory_needed_bytes=needed, memory_budget_bytes=budget,
                          native_support=native, bound=bound, estimates=estimates)


def _forward_memory(baseline: Performance) -> int:
    """What one forward added to what was resident: ``forward_memory_bytes``; a result recorded before
    peak memory meant the whole process (no ``memory_method``) kept that figure in ``peak_memory_bytes``."""
    return baseline.forward_memory_bytes if baseline.memory_method else baseline.peak_memory_bytes


def _mib(value: float) -> str:
    return f"{value / 2**20:,.1f} MiB"


def _protected_count(info: ModelInfo, quant: QuantSpec) -> int:
    return sum(1 for name in info.quantizable_layers if any(fnmatch.fnmatchcase(name, g) for g in quant.protected_layers))


def _embedding_parameters(info: ModelInfo) -> int:
    """The token-embedding table's elements (vocabulary x hidden size)."""
    return info.vocab_size * info.hidden_size


def _quantizes_embeddings(quant: QuantSpec) -> bool:
    """Does this backend, in this mode, store the token-embedding table at the target precision?

    Read from the backend's declaration (``Capabilities.embedding_modes``: the (weights, activations)
    modes that quantize the embedding lookup) when the registry carries it; until then, the one backend
    that does: ONNX Runtime's ``quantize_dynamic`` quantizes the embedding ``Gather`` (its ONNX
    artifact with dynamic int8 activations; ``runners/backends/onnxruntime_backend.py``)."""
    from runners.registry import BACKENDS

    backend = BACKENDS.get(quant.backend)
    if backend is None:
        return False
    declared = getattr(backend.capabilities, "embedding_modes", None)
    if declared is not None:
        return (quant.weights, quant.activations) in tuple(declared)
    return backend.capabilities.artifact_format == "onnx" and quant.activations == "dynamic-int8"


def _target_weight_bytes(info: ModelInfo, quant: QuantSpec) -> float:
    """Weights at the target precision: what the backend quantizes (the quantizable Linear layers, and
    the token embeddings where it quantizes those too) at target bytes plus one scale per output
    channel or group; the rest (norms, biases, position embeddings, protected layers, embeddings a
    backend leaves alone) at full precision. Protected layers are sized at the mean quantizable layer
    size (per-layer sizes are not recorded). Checked against a real artifact of the demo model
    (tests/measure/test_envelope_artifact.py)."""
    quantizable = info.quantizable_parameters or info.parameters
    layers = len(info.quantizable_layers) or 1
    protected = quantizable * _protected_count(info, quant) / layers
    embeddings = min(_embedding_parameters(info), max(info.parameters - quantizable, 0)) if _quantizes_embeddings(quant) else 0
    quantized = quantizable - protected + embeddings
    per_scale = quant.group_size or max(info.hidden_size, 1)  # per group, else per output channel
    scales = quantized / per_scale * SCALE_BYTES
    return (info.parameters - quantized) * info.dtype_bytes + quantized * WEIGHT_BYTES.get(quant.weights, info.dtype_bytes) + scales


def _activation_estimate(info: ModelInfo, envelope: EnvelopeSpec, causal: bool) -> int:
    """batch x seq x (6 x hidden + heads x seq) x dtype bytes, plus batch x seq x vocab logits for causal LMs."""
    b, t = envelope.batch_size, envelope.sequence_length
    per_token = ACTIVATION_VECTORS * info.hidden_size + info.num_attention_heads * t + (info.vocab_size if causal else 0)
    return int(b * t * per_token * info.dtype_bytes)


def _intensity(hidden: int, tokens: int, weight_bytes: float, act_bytes: int) -> float:
    """FLOP per byte of one hidden x hidden Linear over ``tokens`` rows: 2·M·h² / (h²·wb + 2·M·h·ab)."""
    h = max(hidden, 1)
    return 2 * tokens * h * h / (h * h * weight_bytes + 2 * tokens * h * act_bytes)


def _cpu_flags(given: tuple[str, ...] | None) -> tuple[str, ...]:
    if given is not None:
        return given
    from runners.environment import cpu_flags

    return cpu_flags()


def _cuda_capability(given: tuple[int, int] | None) -> tuple[int, int] | None:
    if given is not None:
        return given
    if os.environ.get("QUANTGATE_CUDA_CAPABILITY"):
        major, _, minor = os.environ["QUANTGATE_CUDA_CAPABILITY"].partition(".")
        return int(major), int(minor or 0)
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=compute_cap", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20, check=True).stdout.split()
        major, _, minor = out[0].partition(".")
        return int(major), int(minor or 0)
    except (OSError, subprocess.SubprocessError, IndexError, ValueError):
        return None


def _native_support(quant: QuantSpec, envelope: EnvelopeSpec, cpu_flags, cuda_capability) -> tuple[bool, bool, str]:
    """(native, cannot execute at all, the sentence that says so)."""
    fmt = quant.weights
    if envelope.device == "cpu":
        flags = _cpu_flags(cpu_flags)
        if fmt == "fp8":
            return False, True, "fp8 cannot run on CPU: no CPU here executes fp8 matrix multiplies; use int8 or int4, or a GPU with sm_89+"
        if fmt == "int4":
            return False, False, ("int4 on CPU: no native int4 matrix kernels on this machine, weights are unpacked to float "
                                  "on the fly: it saves memory, not time")
        have = [f for f in INT8_CPU_FLAGS if f in flags]
        if have:
            return True, False, f"int8 on CPU: native int8 dot products ({', '.join(have)})"
        if INT8_AVX2_FLAG in flags:
            return True, False, ("int8 on CPU: int8 dot products through AVX2 (no VNNI/AMX: about half their throughput, "
                                 "still about twice fp32)")
        listed = ", ".join(flags) or "none detected"
        return False, False, (f"int8 on CPU: this CPU has no VNNI/AMX int8 instructions (flags: {listed}), so int8 "
                              "matrix multiplies are not faster than float: it saves memory, not time")
    capability = _cuda_capability(cuda_capability)
    need = CUDA_MIN_CAPABILITY.get(fmt, (99, 0))
    if capability is None:
        return False, False, f"{fmt} on CUDA: compute capability unknown (no GPU visible to this check); native kernels need sm_{need[0]}{need[1]}+"
    sm = f"sm_{capability[0]}{capability[1]}"
    if capability >= need:
        return True, False, f"{fmt} on CUDA {sm}: native kernels (need sm_{need[0]}{need[1]}+)"
    if fmt == "fp8":
        return False, True, f"fp8 cannot run on CUDA {sm}: fp8 tensor cores need sm_89+ (Ada, Hopper)"
    return False, False, f"{fmt} on CUDA {sm}: no native kernels before sm_{need[0]}{need[1]}: it saves memory, not time"


def _balance(envelope: EnvelopeSpec, quant: QuantSpec, cpu_flags, cuda_capability, native: bool) -> float:
    """Estimated FLOP/byte where compute and memory time are equal (see the constants)."""
    if envelope.device == "cpu":
        flags = _cpu_flags(cpu_flags)
        per_cycle = next((v for k, v in CPU_FLOPS_PER_CYCLE.items() if k in flags), CPU_FLOPS_PER_CYCLE["default"])
        if native and quant.activations == "dynamic-int8":
            vnni = any(f in flags for f in INT8_CPU_FLAGS)
            per_cycle *= CPU_INT8_SPEEDUP if vnni else CPU_INT8_SPEEDUP_AVX2
        return per_cycle / 4
    capability = _cuda_capability(cuda_capability)
    if capability is None:
        return GPU_BALANCE[(8, 0)]
    known = [c for c in GPU_BALANCE if c <= capability]
    return GPU_BALANCE[max(known)] if known else GPU_BALANCE[(7, 0)]


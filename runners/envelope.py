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
  unlikely; capability unknown).
- ``pass``: fits and runs natively.
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
    """The envelope verdict with its reasons and the estimates behind them."""
    causal = info.architecture.endswith("ForCausalLM") or info.architecture.endswith("LMHeadModel")
    reasons: list[str] = []
    fails: list[str] = []
    warns: list[str] = []

    # ---- memory
    budget = int(envelope.memory_bytes * (1 - envelope.headroom))
    full_weights = info.parameters * info.dtype_bytes
    target_weights = _target_weight_bytes(info, quant)
    kv = envelope.batch_size * envelope.sequence_length * info.num_layers * info.num_kv_heads * info.head_dim * 2 * info.dtype_bytes if causal else 0
    estimated_act = _activation_estimate(info, envelope, causal)
    measured_act = baseline.peak_memory_bytes if baseline and (baseline.batch_size, baseline.sequence_length) == (envelope.batch_size, envelope.sequence_length) else 0
    activations = max(estimated_act, measured_act)
    needed_full = full_weights + kv + activations
    needed = int(target_weights + kv + activations)
    fits = needed <= budget
    fits_full = needed_full <= budget
    memory_line = (f"memory at {quant.weights}: {_mib(needed)} needed (weights {_mib(target_weights)}"
                   + (f" + KV cache {_mib(kv)}" if causal else "")
                   + f" + activations {_mib(activations)}{' measured' if measured_act >= estimated_act and measured_act else ' estimated'})"
                   f" of a {_mib(budget)} budget ({_mib(envelope.memory_bytes)} less {envelope.headroom:.0%} headroom); "
                   f"full precision needs {_mib(needed_full)}")
    reasons.append(memory_line)
    if not fits:
        fails.append(f"does not fit: {_mib(needed)} needed at {quant.weights} but only {_mib(budget)} available; "
                     "use a lower bit width, a smaller batch or sequence, or a device with more memory")

    # ---- native support
    native, native_fail, native_line = _native_support(quant, envelope, cpu_flags, cuda_capability)
    reasons.append(native_line)
    if native_fail:
        fails.append(native_line)
    elif not native:
        warns.append(f"{quant.weights} saves memory, not time, on this device")

    # ---- memory- or compute-bound (estimate)
    tokens = envelope.batch_size * envelope.sequence_length
    intensity = _intensity(info.hidden_size, tokens, WEIGHT_BYTES.get(quant.weights, 1.0), info.dtype_bytes)
    balance = _balance(envelope, quant, cpu_flags, cuda_capability, native)
    bound = "memory" if intensity < balance else "compute"
    reasons.append(f"estimate: {tokens} tokens per forward gives ~{intensity:.0f} FLOP/byte against a machine balance of "
                   f"~{balance:.0f} FLOP/byte, so the forward pass is {bound}-bound"
                   + ("; weight-only quantization mostly saves memory here, int8 compute kernels are what would save time"
                      if bound == "compute" and quant.activations == "none" else ""))
    estimates = {
        "weights_full_bytes": float(full_weights), "weights_target_bytes": float(target_weights),
        "kv_cache_bytes": float(kv), "activation_estimate_bytes": float(estimated_act),
        "activation_measured_bytes": float(measured_act), "memory_full_bytes": float(needed_full),
        "arithmetic_intensity": round(intensity, 2), "machine_balance": round(balance, 2),
    }
    if causal:
        decode = _intensity(info.hidden_size, envelope.batch_size, WEIGHT_BYTES.get(quant.weights, 1.0), info.dtype_bytes)
        estimates["decode_arithmetic_intensity"] = round(decode, 2)
        reasons.append(f"estimate: generating one token per step at batch {envelope.batch_size} is ~{decode:.1f} FLOP/byte, memory-bound: "
                       "fewer weight bytes is what speeds up decoding")

    # ---- latency against the target, as measured at full precision
    target = envelope.latency_p95_ms
    can_speed_up = native and not (bound == "compute" and quant.activations == "none")
    latency_met = None
    if target is not None:
        if baseline is None:
            reasons.append(f"latency target p95 {target:g} ms: not measured yet (the baseline measures it)")
        else:
            latency_met = baseline.latency_p95_ms <= target
            reasons.append(f"latency at full precision: p95 {baseline.latency_p95_ms:.1f} ms against a target of {target:g} ms "
                           f"({'met' if latency_met else 'missed'}; batch {baseline.batch_size} x {baseline.sequence_length} tokens, {baseline.threads} threads)")
            if not latency_met and not can_speed_up:
                warns.append(f"the latency target is missed at full precision and {quant.weights} is unlikely to make it faster here")

    # ---- verdict
    verdict = "pass"
    if fails:
        verdict = "fail"
        reasons = fails + reasons
    elif fits_full and (target is None or latency_met):
        verdict = "wrong-move"
        reasons.insert(0, f"quantization is the wrong move: the model already fits at full precision ({_mib(needed_full)} of {_mib(budget)})"
                       + (f" and meets the p95 latency target ({baseline.latency_p95_ms:.1f} ms <= {target:g} ms)" if target is not None and baseline else " and the envelope sets no latency target")
                       + "; quantizing would risk quality for nothing the envelope asks for")
    elif fits_full and latency_met is False and not can_speed_up:
        verdict = "wrong-move"
        reasons.insert(0, "quantization is the wrong move: the model already fits at full precision, and the latency target it misses "
                       f"will not be met by {quant.weights}" + ("" if native else " without native kernels on this device")
                       + (" (weight-only quantization of a compute-bound forward)" if native else "")
                       + "; consider a faster device, a smaller batch or sequence, or a smaller model")
    elif warns:
        verdict = "warn"
        reasons = warns + reasons
    return EnvelopeResult(verdict=verdict, reasons=tuple(reasons), memory_needed_bytes=needed, memory_budget_bytes=budget,
                          native_support=native, bound=bound, estimates=estimates)


def _mib(value: float) -> str:
    return f"{value / 2**20:,.1f} MiB"


def _protected_count(info: ModelInfo, quant: QuantSpec) -> int:
    return sum(1 for name in info.quantizable_layers if any(fnmatch.fnmatchcase(name, g) for g in quant.protected_layers))


def _target_weight_bytes(info: ModelInfo, quant: QuantSpec) -> float:
    """Weights at the target precision: quantizable layers at target bits plus scales, the rest
    (embeddings, norms, protected layers) at full precision. Protected layers are sized at the mean
    quantizable layer size (per-layer sizes are not recorded)."""
    quantizable = info.quantizable_parameters or info.parameters
    layers = len(info.quantizable_layers) or 1
    protected = quantizable * _protected_count(info, quant) / layers
    quantized = quantizable - protected
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
            per_cycle *= CPU_INT8_SPEEDUP
        return per_cycle / 4
    capability = _cuda_capability(cuda_capability)
    if capability is None:
        return GPU_BALANCE[(8, 0)]
    known = [c for c in GPU_BALANCE if c <= capability]
    return GPU_BALANCE[max(known)] if known else GPU_BALANCE[(7, 0)]


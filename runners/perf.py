"""Latency and memory at the envelope's shape: warm-up, then enough timed runs to be stable.

Protocol (docs/measuring.md): inputs are ``batch_size x sequence_length`` real token ids from the
tokenizer (a fixed English passage, tiled; no padding), the thread count is pinned with
``torch.set_num_threads`` (``QUANTGATE_THREADS`` or torch's default) and recorded, ``WARMUP`` runs are
discarded, then runs continue until at least ``min_runs`` runs **and** ``min_seconds`` have passed,
capped at ``max_seconds`` / ``max_runs``. p50/p95 are numpy's linear-interpolated percentiles.

Peak memory (``Performance.peak_memory_bytes``) is what the model costs a process, runtime included:
measured in a *fresh* process (``runners.reload``) by a ``ProcessPeak`` started after the common stack
(torch, transformers, numpy) is imported and before the model or artifact loads, and read after the
latency runs: the peak RSS over that window (the kernel's high-water mark, reset at the start, and a
1 ms sampling thread) minus the RSS at its start. It therefore counts the loaded weights, the
backend's own library and arenas (ONNX Runtime allocates its session and arenas at load, before any
forward) and the activations, for the full-precision baseline and every candidate alike. On CUDA it is
``max_memory_allocated`` over the same window (torch's allocator only).

``Performance.forward_memory_bytes`` keeps the narrower figure the envelope uses as measured
activations: what one forward adds to what is already resident (CPU: sampled RSS during one run minus
the RSS before it; CUDA: ``max_memory_allocated`` minus ``memory_allocated`` before). The footprint
(parameters and buffers, or artifact file sizes) is passed in by the caller.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from typing import Any

from runners.base import EnvelopeSpec, Performance

WARMUP = 3
PASSAGE = (
    "Quantization stores the weights of a neural network with fewer bits, trading a little accuracy "
    "for memory and speed. The baseline measures the full precision model on the same inputs, so "
    "every later candidate is compared against an honest reference on the same hardware."
)


#: How ``peak_memory_bytes`` is measured, recorded with every ``Performance`` that carries it.
PROCESS_PEAK_METHOD = ("peak RSS growth of a fresh process from before the model loads through the latency runs "
                       "(weights, runtime and activations)")
CUDA_PEAK_METHOD = "torch max_memory_allocated from before the model loads through the latency runs"
FORWARD_ONLY_METHOD = "RSS added by one forward to what was resident (in-process; not comparable across backends)"


class ProcessPeak:
    """Peak memory of this process between ``start()`` and ``stop()``, above what it held at ``start()``.

    CPU: the larger of the kernel's RSS high-water mark (``VmHWM``, reset at start through
    ``/proc/self/clear_refs`` where Linux allows it) and a 1 ms RSS sampling thread (psutil), minus the
    RSS at start. CUDA: ``torch.cuda.max_memory_allocated`` minus ``memory_allocated`` at start.
    """

    def __init__(self, device: str = "cpu"):
        self.cuda = device.startswith("cuda")
        self._before = 0
        self._peak = 0
        self._hwm_reset = False
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> ProcessPeak:
        if self.cuda:
            import torch

            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self._before = torch.cuda.memory_allocated()
            return self
        import psutil

        self._hwm_reset = _reset_hwm()
        process = psutil.Process()
        self._before = self._peak = process.memory_info().rss

        def sample() -> None:
            while not self._done.is_set():
                self._peak = max(self._peak, process.memory_info().rss)
                time.sleep(0.001)

        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> int:
        if self.cuda:
            import torch

            torch.cuda.synchronize()
            return max(0, int(torch.cuda.max_memory_allocated() - self._before))
        import psutil

        self._done.set()
        if self._thread is not None:
            self._thread.join()
        peak = max(self._peak, psutil.Process().memory_info().rss)
        if self._hwm_reset:
            peak = max(peak, _hwm() or 0)
        return max(0, int(peak - self._before))

    @property
    def method(self) -> str:
        return CUDA_PEAK_METHOD if self.cuda else PROCESS_PEAK_METHOD


def _reset_hwm() -> bool:
    """Reset this process's peak-RSS mark (Linux: ``echo 5 > /proc/self/clear_refs``); False if not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return _hwm() is not None
    except OSError:
        return False


def _hwm() -> int | None:
    """``VmHWM`` (peak RSS) of this process in bytes, None where /proc is unavailable."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


@dataclass(frozen=True)
class Timing:
    samples_ms: tuple[float, ...]
    peak_memory_bytes: int
    threads: int

    def percentile(self, q: float) -> float:
        import numpy as np

        return float(np.percentile(np.array(self.samples_ms), q))


def pinned_threads() -> int:
    """``QUANTGATE_THREADS`` when set, else torch's current default."""
    import torch

    configured = os.environ.get("QUANTGATE_THREADS", "").strip()
    return int(configured) if configured.isdigit() and int(configured) > 0 else torch.get_num_threads()


def synthetic_inputs(tokenizer: Any, batch_size: int, sequence_length: int, device: str = "cpu") -> tuple[Any, Any]:
    """(input_ids, attention_mask) of exactly [batch_size, sequence_length], all positions real."""
    import torch

    ids = tokenizer(PASSAGE, add_special_tokens=False)["input_ids"]
    # Start like real input does: [CLS] for encoders, <bos> for decoders that have one.
    first = getattr(tokenizer, "cls_token_id", None)
    first = first if first is not None else getattr(tokenizer, "bos_token_id", None)
    start = [first] if first is not None else []
    body = (ids * (sequence_length // max(len(ids), 1) + 1))[: sequence_length - len(start)]
    row = torch.tensor(start + body, dtype=torch.long)
    input_ids = row.unsqueeze(0).repeat(batch_size, 1).to(device)
    return input_ids, torch.ones_like(input_ids)


def time_forward(forward: Any, input_ids: Any, attention_mask: Any, *, device: str = "cpu", threads: int | None = None,
                 min_runs: int = 30, min_seconds: float = 2.0, max_seconds: float = 60.0, max_runs: int = 1000) -> Timing:
    """Warm up, then time ``forward`` until stable (see the module docstring)."""
    import torch

    threads = threads or pinned_threads()
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    cuda = device.startswith("cuda")
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    try:
        with torch.inference_mode():
            for _ in range(WARMUP):
                forward(input_ids, attention_mask)
            sync()
            peak = _peak_memory(forward, input_ids, attention_mask, cuda)
            samples: list[float] = []
            started = time.perf_counter()
            while True:
                t0 = time.perf_counter()
                forward(input_ids, attention_mask)
                sync()
                samples.append((time.perf_counter() - t0) * 1000.0)
                elapsed = time.perf_counter() - started
                if (len(samples) >= min_runs and elapsed >= min_seconds) or elapsed >= max_seconds or len(samples) >= max_runs:
                    break
    finally:
        torch.set_num_threads(previous)
    return Timing(samples_ms=tuple(samples), peak_memory_bytes=peak, threads=threads)


def _peak_memory(forward: Any, input_ids: Any, attention_mask: Any, cuda: bool) -> int:
    if cuda:
        import torch

        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        forward(input_ids, attention_mask)
        torch.cuda.synchronize()
        return max(0, int(torch.cuda.max_memory_allocated() - before))
    import psutil

    process = psutil.Process()
    before = process.memory_info().rss
    peak = before
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, process.memory_info().rss)
            time.sleep(0.001)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        forward(input_ids, attention_mask)
    finally:
        done.set()
        sampler.join()
    peak = max(peak, process.memory_info().rss)
    return max(0, int(peak - before))


def measure_performance(forward: Any, tokenizer: Any, envelope: EnvelopeSpec, footprint_bytes: int,
                        process_peak: ProcessPeak | None = None, **timing: Any) -> Performance:
    """Latency p50/p95 and peak memory at the envelope's batch size and sequence length.

    ``process_peak``: started before the model loaded (a fresh process, ``runners.reload``); it is
    stopped after the latency runs and gives ``peak_memory_bytes``. Without it ``peak_memory_bytes``
    falls back to the one-forward figure, which is not comparable across backends (the method says so).
    ``timing`` passes through to ``time_forward`` (``min_runs``, ``min_seconds``, ``max_seconds``,
    ``threads``) so tests can run short; the defaults are the documented protocol.
    """
    input_ids, attention_mask = synthetic_inputs(tokenizer, envelope.batch_size, envelope.sequence_length, envelope.device)
    result = time_forward(forward, input_ids, attention_mask, device=envelope.device, **timing)
    peak = process_peak.stop() if process_peak is not None else result.peak_memory_bytes
    return Performance(
        device=envelope.device,
        batch_size=envelope.batch_size,
        sequence_length=envelope.sequence_length,
        latency_p50_ms=round(result.percentile(50), 3),
        latency_p95_ms=round(result.percentile(95), 3),
        runs=len(result.samples_ms),
        peak_memory_bytes=int(peak),
        footprint_bytes=int(footprint_bytes),
        threads=result.threads,
        forward_memory_bytes=result.peak_memory_bytes,
        memory_method=process_peak.method if process_peak is not None else FORWARD_ONLY_METHOD,
    )

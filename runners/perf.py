"""Latency and memory at the envelope's shape: warm-up, then enough timed runs to be stable.

Protocol (docs/measuring.md): inputs are ``batch_size x sequence_length`` real token ids from the
tokenizer (a fixed English passage, tiled; no padding), the thread count is pinned with
``torch.set_num_threads`` (``QUANTGATE_THREADS`` or torch's default) and recorded, ``WARMUP`` runs are
discarded, then runs continue until at least ``min_runs`` runs **and** ``min_seconds`` have passed,
capped at ``max_seconds`` / ``max_runs``. p50/p95 are numpy's linear-interpolated percentiles.

Peak memory is what running the model adds on top of what is already resident: on CPU the largest
RSS seen by a sampling thread during one run minus the RSS before it (psutil); on CUDA
``max_memory_allocated`` minus ``memory_allocated`` before the run. The footprint (parameters and
buffers, or artifact file sizes) is passed in by the caller, who knows which it is measuring.
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


def measure_performance(forward: Any, tokenizer: Any, envelope: EnvelopeSpec, footprint_bytes: int, **timing: Any) -> Performance:
    """Latency p50/p95 and peak memory at the envelope's batch size and sequence length.

    ``timing`` passes through to ``time_forward`` (``min_runs``, ``min_seconds``, ``max_seconds``,
    ``threads``) so tests can run short; the defaults are the documented protocol.
    """
    input_ids, attention_mask = synthetic_inputs(tokenizer, envelope.batch_size, envelope.sequence_length, envelope.device)
    result = time_forward(forward, input_ids, attention_mask, device=envelope.device, **timing)
    return Performance(
        device=envelope.device,
        batch_size=envelope.batch_size,
        sequence_length=envelope.sequence_length,
        latency_p50_ms=round(result.percentile(50), 3),
        latency_p95_ms=round(result.percentile(95), 3),
        runs=len(result.samples_ms),
        peak_memory_bytes=result.peak_memory_bytes,
        footprint_bytes=int(footprint_bytes),
        threads=result.threads,
    )

"""What the numbers were measured on: device name, CPU flags, library versions, threads.

Reading flags and versions imports nothing heavy (``/proc/cpuinfo`` and ``importlib.metadata``), so
the envelope check can use ``cpu_flags()`` without torch. ``environment()`` asks torch only for the
CUDA device name and the thread count.
"""

from __future__ import annotations

import importlib.metadata
import platform
from functools import lru_cache

from runners.base import Environment
from runners.registry import BACKENDS

#: CPU features that decide whether low-precision formats run natively (x86) or fast (Arm).
RELEVANT_FLAGS = (
    "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "avx512_bf16",
    "avx512_fp16", "amx_tile", "amx_int8", "amx_bf16", "asimd", "asimddp", "i8mm", "sve", "bf16",
)
#: Libraries whose versions change the numbers: the model stack, then every registered backend's
#: declared distributions (from the registry: no backend is named here).
LIBRARIES = tuple(dict.fromkeys((
    "torch", "transformers", "tokenizers",
    *(d for backend in BACKENDS.values() for d in backend.capabilities.distributions),
    "numpy", "scipy", "gguf", "safetensors",
)))


@lru_cache(maxsize=1)
def _cpuinfo() -> tuple[str, frozenset[str]]:
    name = platform.processor() or platform.machine()
    flags: set[str] = set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and value.strip():
                    name = value.strip()
                elif key in ("flags", "Features"):
                    flags.update(value.split())
    except OSError:
        pass  # not Linux: no flags known, the envelope check then says so
    return name, frozenset(flags)


def cpu_name() -> str:
    return _cpuinfo()[0]


def cpu_flags() -> tuple[str, ...]:
    """The RELEVANT_FLAGS this CPU has, in that order."""
    have = _cpuinfo()[1]
    return tuple(f for f in RELEVANT_FLAGS if f in have)


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def environment(device: str = "cpu", threads: int | None = None) -> Environment:
    """The environment record stored with every measurement."""
    import torch

    name = cpu_name()
    if device.startswith("cuda") and torch.cuda.is_available():
        major, minor = torch.cuda.get_device_capability()
        name = f"{torch.cuda.get_device_name()} (sm_{major}{minor}); host {name}"
    return Environment(device_name=name, cpu_flags=cpu_flags(), versions=library_versions(),
                       threads=int(threads if threads is not None else torch.get_num_threads()))

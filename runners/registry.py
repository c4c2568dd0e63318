"""The registered backends: the only list of backend names in quantgate. Pure Python: no torch import.

One ``Backend`` entry = a name, its implementation module (imported only when a play runs, through
``runners.backends.load``) and its declared ``Capabilities``. Registration is explicit (never
discovered by scanning); registration order is the preference order of ``backend: auto``.
``BACKEND_NAMES`` is what the manifest schema enumerates for ``quantization.backend``.

Planning uses declared capabilities only, so ``resolve`` and ``refusals`` give the same answer on
every machine, whether the model stack is installed or not (``auto`` cache keys do not depend on what
is installed). Installation is a separate question the runner asks before loading any model:
``missing(name)`` checks the declared pip distributions with ``importlib.metadata`` (nothing is
imported) and says which extra to install.
"""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass

from runners.backends.protocol import Capabilities

ALL_TASKS = ("sentence-similarity", "text-classification", "causal-lm")

#: ``quantization.algorithm``: how weights are rounded. rtn: each weight to its nearest grid point (no
#: data needed; the cheap first try). gptq: column by column with error feedback from the calibration
#: set's input statistics (causal LMs; minutes on a CPU). awq / smoothquant: activation-aware scaling
#: (llm-compressor), built on an accelerator only.
ALGORITHMS = ("rtn", "gptq", "awq", "smoothquant")


@dataclass(frozen=True)
class Backend:
    name: str
    module: str  # implementation module, imported lazily by the runner
    capabilities: Capabilities

    def refusal(self, device: str | None, weights: str, activations: str, task: str, method: str = "ptq",
                group_size: int | None = None, algorithm: str = "rtn") -> str | None:
        """Why this backend cannot run the request, from its declaration; None when it can.
        ``device=None`` leaves the device out (the runner's check when no envelope is given)."""
        caps = self.capabilities
        if algorithm not in caps.algorithms:
            return f"{self.name} does not run algorithm {algorithm} (it runs {', '.join(caps.algorithms)})"
        if device is not None and device not in caps.devices and caps.needs_accelerator:
            return (f"{algorithm} needs an accelerator: {self.name} builds it on {', '.join(caps.devices)} only, and this "
                    f"envelope's device is {device} (on a CPU, use algorithm gptq or rtn)")
        if device is not None and device not in caps.devices:
            return f"{self.name} runs on {', '.join(caps.devices)}, not {device}"
        if (weights, activations) not in caps.modes:
            offered = ", ".join(f"{w} weights with {a} activations" for w, a in caps.modes)
            return f"{self.name} cannot build {weights} weights with {activations} activations (it offers {offered})"
        if task not in caps.tasks:
            return f"{self.name} does not handle task {task} (it handles {', '.join(caps.tasks)})"
        if method not in caps.methods:
            return f"{self.name} does not run {method} (it runs {', '.join(caps.methods)})"
        if caps.group_sizes is not None and group_size not in caps.group_sizes:
            sizes = ", ".join("unset" if g is None else str(g) for g in caps.group_sizes)
            return (f"{self.name} cannot save a weight group size (group_size) of {group_size} faithfully "
                    f"(it honours: {sizes}; unset means {caps.default_group_size})")
        return None

    def supports(self, device: str | None, weights: str, activations: str, task: str, method: str = "ptq",
                 group_size: int | None = None, algorithm: str = "rtn") -> bool:
        return self.refusal(device, weights, activations, task, method, group_size, algorithm) is None

    def missing(self) -> tuple[str, ...]:
        """The declared ``requires`` distributions not installed here."""
        return tuple(d for d in self.capabilities.requires if not _installed(d))

    def versions(self) -> dict[str, str]:
        """Installed versions of the declared ``distributions`` ('' for one not installed), in order."""
        return {d: _version(d) for d in self.capabilities.distributions}

    def version(self) -> str:
        """The backend's version: that of its first declared distribution."""
        return _version(self.capabilities.distributions[0])


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return ""


def _installed(distribution: str) -> bool:
    return _version(distribution) != ""


BACKENDS: dict[str, Backend] = {
    b.name: b
    for b in (
        Backend(
            name="onnxruntime",
            module="runners.backends.onnxruntime_backend",
            capabilities=Capabilities(
                devices=("cpu",),
                # int8+dynamic: quantize_dynamic (per channel, embedding gather too); weight-only int8
                # and int4: MatMulNBits (block = group size, 32 by default).
                modes=(("int8", "dynamic-int8"), ("int8", "none"), ("int4", "none")),
                tasks=("sentence-similarity", "text-classification"),
                methods=("ptq", "mixed_precision"),
                artifact_format="onnx",
                distributions=("onnxruntime", "onnx"),
                requires=("onnxruntime", "onnx", "onnx-ir", "torch"),
            ),
        ),
        Backend(
            name="torchao",
            module="runners.backends.torchao_backend",
            capabilities=Capabilities(
                devices=("cpu", "cuda"),
                modes=(("int8", "none"), ("int8", "dynamic-int8"), ("int4", "none")),
                tasks=ALL_TASKS,
                methods=("ptq", "mixed_precision", "qat"),
                artifact_format="torch",
                distributions=("torchao",),
                requires=("torchao", "torch"),
            ),
        ),
        Backend(
            name="optimum-quanto",
            module="runners.backends.quanto_backend",
            capabilities=Capabilities(
                devices=("cpu", "cuda"),
                # Static activation calibration does not survive save/reload: weight-only only.
                modes=(("int8", "none"), ("int4", "none")),
                tasks=ALL_TASKS,
                methods=("ptq", "mixed_precision"),
                artifact_format="quanto",
                distributions=("optimum-quanto",),
                requires=("optimum-quanto", "torch"),
                # quanto does not save the group size; only its default (128) reloads faithfully.
                group_sizes=(None, 128),
                default_group_size=128,
            ),
        ),
        Backend(
            name="gptq",
            module="runners.backends.gptq_backend",
            capabilities=Capabilities(
                devices=("cpu", "cuda"),
                # Weight-only on torchao's symmetric grid; int4 grouped (32 by default), int8 per channel or grouped.
                modes=(("int4", "none"), ("int8", "none")),
                tasks=("causal-lm",),
                methods=("ptq", "mixed_precision"),
                artifact_format="torch",  # + a compressed-tensors checkpoint beside it (runners/backends/gptq_backend.py)
                distributions=("torchao", "compressed-tensors"),
                requires=("torchao", "compressed-tensors", "torch"),
                needs_calibration=True,
                algorithms=("gptq",),
            ),
        ),
        Backend(
            name="llm-compressor",
            module="runners.backends.llmcompressor_backend",
            capabilities=Capabilities(
                # AWQ refuses to run without an accelerator; SmoothQuant W8A8 only pays off where a GPU
                # runtime (vLLM) executes int8 activations. Declared so plan refuses them on a CPU envelope.
                devices=("cuda",),
                modes=(("int4", "none"), ("int8", "dynamic-int8")),
                tasks=("causal-lm",),
                methods=("ptq",),
                artifact_format="compressed-tensors",
                distributions=("llmcompressor", "compressed-tensors"),
                requires=("llmcompressor", "compressed-tensors", "torch"),
                extra="gpu",
                needs_calibration=True,
                needs_accelerator=True,
                algorithms=("awq", "smoothquant"),
            ),
        ),
    )
}

#: Every backend name, in registration (= ``auto`` preference) order; the manifest enumerates these.
BACKEND_NAMES: tuple[str, ...] = tuple(BACKENDS)


def version(name: str) -> str:
    """The installed version of a backend ('' when not installed)."""
    return BACKENDS[name].version()


def versions(name: str) -> dict[str, str]:
    """Installed versions of the distributions a backend's artifacts record."""
    return BACKENDS[name].versions()


def capable(device: str, weights: str, activations: str, task: str, method: str = "ptq",
            group_size: int | None = None, algorithm: str = "rtn") -> list[str]:
    """Names of the backends whose declaration covers this, in preference order (installed or not)."""
    return [n for n, b in BACKENDS.items() if b.supports(device, weights, activations, task, method, group_size, algorithm)]


def algorithm_builds_on(algorithm: str, device: str) -> bool:
    """Whether any registered backend runs ``algorithm`` on ``device`` (False for awq on a cpu envelope:
    the algorithm itself, not the backend choice, is what cannot run there)."""
    return any(algorithm in b.capabilities.algorithms and device in b.capabilities.devices for b in BACKENDS.values())


def resolve(requested: str, device: str, weights: str, activations: str, task: str, methods: tuple[str, ...] = ("ptq",),
            group_size: int | None = None, algorithm: str = "rtn") -> str | None:
    """The backend a manifest's ``backend:`` means for this envelope, or None when none can.

    Declared capabilities only: the answer does not depend on what is installed. ``auto`` picks the
    first registered backend that supports every method in ``methods`` (e.g. ptq and mixed_precision
    when mixed precision is enabled), else the first that supports ``methods[0]``. A named backend must
    be registered and support ``methods[0]``.
    """
    if requested != "auto":
        backend = BACKENDS.get(requested)
        if backend is None:
            return None
        return requested if backend.supports(device, weights, activations, task, methods[0], group_size, algorithm) else None
    first = capable(device, weights, activations, task, methods[0], group_size, algorithm)
    every = [n for n in first if all(BACKENDS[n].supports(device, weights, activations, task, m, group_size, algorithm) for m in methods)]
    for names in (every, first):
        if names:
            return names[0]
    return None


def refusals(requested: str, device: str, weights: str, activations: str, task: str, methods: tuple[str, ...] = ("ptq",),
             group_size: int | None = None, algorithm: str = "rtn") -> list[str]:
    """One line per backend considered (all for ``auto``, else the named one) saying why it cannot
    run ``methods[0]`` here, from declarations only. Empty when ``resolve`` finds one."""
    names = list(BACKENDS) if requested == "auto" else [requested]
    lines = []
    for name in names:
        backend = BACKENDS.get(name)
        if backend is None:
            lines.append(f"{name}: not a registered backend (known: {', '.join(BACKENDS)})")
            continue
        why = backend.refusal(device, weights, activations, task, methods[0], group_size, algorithm)
        if why:
            lines.append(f"{name}: {why}")
    return lines


def missing(name: str) -> str | None:
    """None when the backend's declared distributions are installed here, else what to install."""
    backend = BACKENDS[name]
    absent = backend.missing()
    if not absent:
        return None
    return (f"backend {name!r} is not installed here: pip install 'quantgate[{backend.capabilities.extra}]' "
            f"(missing: {', '.join(absent)})")

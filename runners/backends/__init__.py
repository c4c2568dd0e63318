"""Quantizing backends, one module per ``runners.registry.Backend`` entry.

The contract every module implements and the capabilities every entry declares are in
``runners.backends.protocol``; ``runners/backends/in_place.py`` holds what the torch-module backends
share. ``load(name)`` imports the module a registry entry names; nothing is discovered by scanning.
"""

from __future__ import annotations

import importlib

from runners.backends.protocol import QuantizationBackend
from runners.base import RunnerInputError


def load(name: str) -> QuantizationBackend:
    """The implementation module of a registered backend (imports it, and so its libraries)."""
    # Imported here: the registry imports runners.backends.protocol, which initialises this package.
    from runners.registry import BACKENDS

    backend = BACKENDS.get(name)
    if backend is None:
        raise RunnerInputError(f"quantization.backend: {name!r} is not a registered backend (known: {', '.join(BACKENDS)})")
    module = importlib.import_module(backend.module)
    return module  # type: ignore[return-value]  # a module satisfies the protocol structurally

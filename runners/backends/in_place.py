"""What the backends that quantize a torch module in place share (torchao, optimum-quanto).

``Prepared`` keeps the full-precision module and builds every candidate on a deep copy of it, so mixed
precision can build many candidates from one load; the backend supplies ``quantize_(module, plan)``
(in place) and its ``ModuleCandidate`` subclass (how the candidate runs and is saved). These
backends round to nearest: the calibration examples ``prepare`` receives are not used (their
capabilities say ``needs_calibration=False``).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from runners.backends.protocol import Forward, LayerPlan
from runners.datasets import Record


class ModuleCandidate:
    """A quantized torch module; subclasses define ``save`` and may override ``make_forward``."""

    def __init__(self, model: Any, plan: LayerPlan, task: str):
        self.model = model
        self.plan = plan
        self.forward: Forward = self.make_forward(model, task)

    @staticmethod
    def make_forward(model: Any, task: str) -> Forward:
        from runners.models import make_forward

        return make_forward(model, task)

    def footprint_bytes(self) -> int:
        from runners.models import footprint_bytes

        return footprint_bytes(self.model)

    def save(self, directory: Path) -> dict[str, Any]:
        raise NotImplementedError


class Prepared:
    """The full-precision module; ``quantize`` builds a candidate on a copy and leaves it untouched."""

    def __init__(self, model: Any, task: str, quantize_: Callable[[Any, LayerPlan], None],
                 candidate: Callable[[Any, LayerPlan, str], ModuleCandidate]):
        self.model = model
        self.task = task
        self._quantize_ = quantize_
        self._candidate = candidate

    def quantize(self, plan: LayerPlan) -> ModuleCandidate:
        module = copy.deepcopy(self.model)
        self._quantize_(module, plan)
        module.eval()
        return self._candidate(module, plan, self.task)


def prepare(model: Any, task: str, calibration: Sequence[Record], quantize_: Callable[[Any, LayerPlan], None],
            candidate: Callable[[Any, LayerPlan, str], ModuleCandidate]) -> Prepared:
    """Round-to-nearest backends need no statistics: ``calibration`` is accepted and not used."""
    del calibration
    return Prepared(model, task, quantize_, candidate)

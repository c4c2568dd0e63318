"""GPTQ for one Linear layer (Frantar et al., 2022, "GPTQ: Accurate Post-Training Quantization for
Generative Pre-trained Transformers"), on the same integer grid round-to-nearest uses in torchao.

Round-to-nearest rounds every weight on its own. GPTQ rounds the columns of a weight matrix one at a
time and spreads each column's rounding error over the columns not yet rounded, weighted by the
inverse of ``H = X^T X``, the layer's input second moments measured on calibration data, so that the
layer's *outputs* on inputs like the calibration set move as little as possible. That is why the
calibration set matters: ``H`` is all GPTQ knows about the workload.

The grid is torchao's symmetric affine int-x grid (``choose_qparams_affine`` with
``MappingType.SYMMETRIC``): per output row and group of ``group`` input columns (or the whole row),
``scale = max|w| / ((qmax - qmin) / 2)`` clamped at float32's epsilon, ``q = clamp(round(w * (1 / scale)),
qmin, qmax)``, zero point 0, ``w ~ q * scale``. The solver returns those integers and scales, so the
same numbers become a torchao tensor (what the CPU runs) and a compressed-tensors checkpoint (what a
GPU server runs) without re-rounding.

Two column orders:

- ``act_order=False``: columns left to right; each group's scale is chosen when the solver reaches the
  group, from the weights as updated so far (the original paper's grouped variant).
- ``act_order=True``: columns in decreasing ``diag(H)`` (the inputs with the most energy first, while
  the most unrounded columns remain to absorb their error); groups stay the contiguous column groups
  of the original order, so their scales are fixed up front from the original weights (what
  llm-compressor calls *static* activation ordering). The stored layout is unchanged either way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: Columns updated together before the lazy batch update of the rest (the paper's B).
BLOCK = 128
#: Dampening added to H's diagonal, as a fraction of its mean (the paper's lambda).
DAMP = 0.01


@dataclass(frozen=True)
class Grid:
    """A symmetric signed integer grid of ``bits`` bits; ``group``: input columns per scale (None: the row)."""

    bits: int
    group: int | None

    @property
    def qmin(self) -> int:
        return -(1 << (self.bits - 1))

    @property
    def qmax(self) -> int:
        return (1 << (self.bits - 1)) - 1

    def scales(self, weight: Any) -> Any:
        """One scale per row for ``weight`` (rows, columns): torchao's symmetric formula."""
        import torch

        amax = torch.maximum(-weight.min(dim=1).values.clamp(max=0), weight.max(dim=1).values.clamp(min=0))
        return (amax / ((self.qmax - self.qmin) / 2)).clamp(min=torch.finfo(torch.float32).eps)

    def round(self, column: Any, scale: Any) -> Any:
        import torch

        # Multiplying by the reciprocal, as torchao's quantize_affine does, so halves round the same way.
        return torch.clamp(torch.round(column * (1.0 / scale)), self.qmin, self.qmax)


@dataclass
class Solved:
    qdata: Any  # int8 (rows, columns), values within the grid
    scale: Any  # float32 (rows, columns // group) or (rows, 1)
    proxy_loss: float  # sum over columns of the rounding error GPTQ could not compensate (its own objective)

    def dequantized(self, group: int | None) -> Any:
        width = self.qdata.shape[1] if group is None else group
        return self.qdata.float() * self.scale.repeat_interleave(width, dim=1)


def solve(weight: Any, hessian: Any, grid: Grid, *, act_order: bool = False, damp: float = DAMP) -> Solved:
    """GPTQ-round ``weight`` (rows = outputs, columns = inputs) given ``hessian`` = sum of x x^T over
    the calibration inputs (columns x columns). Neither argument is modified."""
    import torch

    W = weight.detach().clone().float()
    H = hessian.detach().clone().double()
    rows, columns = W.shape
    group = grid.group or columns
    if columns % group:
        raise ValueError(f"{columns} input columns are not a multiple of the group size {group}")
    groups = columns // group

    dead = torch.diag(H) == 0  # inputs never seen non-zero: their weights cannot matter here
    H[dead, dead] = 1
    W[:, dead] = 0

    fixed_scales = grid.group is None or act_order
    scale = torch.zeros(rows, groups)
    if fixed_scales:
        for g in range(groups):
            scale[:, g] = grid.scales(W[:, g * group:(g + 1) * group])

    order = torch.argsort(torch.diag(H), descending=True) if act_order else torch.arange(columns)
    W = W[:, order]
    H = H[order][:, order]
    H += damp * torch.mean(torch.diag(H)) * torch.eye(columns, dtype=H.dtype)
    U = _inverse_cholesky_upper(H).float()
    group_of = order // group  # the group each (permuted) column belongs to

    Q = torch.zeros(rows, columns)
    losses = torch.zeros(rows)
    # Blocks hold whole groups, so a group's scale (chosen at its first column) sees every in-block update.
    block = max(BLOCK // group, 1) * group if not act_order else BLOCK
    for i1 in range(0, columns, block):
        i2 = min(i1 + block, columns)
        W1 = W[:, i1:i2].clone()
        E1 = torch.zeros_like(W1)
        U1 = U[i1:i2, i1:i2]
        for i in range(i2 - i1):
            col = i1 + i
            if not fixed_scales and col % group == 0:
                scale[:, col // group] = grid.scales(W1[:, i:i + group])
            s = scale[:, group_of[col]]
            w = W1[:, i]
            q = grid.round(w, s)
            Q[:, col] = q
            d = U1[i, i]
            err = (w - q * s) / d
            losses += err ** 2 / 2
            W1[:, i:] -= err.unsqueeze(1) * U1[i, i:].unsqueeze(0)
            E1[:, i] = err
        W[:, i2:] -= E1 @ U[i1:i2, i2:]

    inverse = torch.argsort(order)
    return Solved(qdata=Q[:, inverse].to(torch.int8), scale=scale, proxy_loss=float(losses.sum()))


def _inverse_cholesky_upper(H: Any) -> Any:
    """Upper Cholesky factor of H^-1, retrying with more dampening if H is not positive definite."""
    import torch

    extra = 0.0
    mean = float(torch.mean(torch.diag(H)))
    for _ in range(6):
        try:
            L = torch.linalg.cholesky(H + extra * mean * torch.eye(H.shape[0], dtype=H.dtype))
            return torch.linalg.cholesky(torch.cholesky_inverse(L), upper=True)
        except RuntimeError:  # torch.linalg.LinAlgError: not positive definite
            extra = extra * 10 if extra else 0.01
    raise RuntimeError("the calibration Hessian is not positive definite even with heavy dampening")


def round_to_nearest(weight: Any, grid: Grid) -> Solved:
    """The same grid without error feedback (the reference GPTQ is measured against)."""
    import torch

    W = weight.detach().float()
    rows, columns = W.shape
    group = grid.group or columns
    scale = torch.stack([grid.scales(W[:, g:g + group]) for g in range(0, columns, group)], dim=1)
    Q = grid.round(W, scale.repeat_interleave(group, dim=1))
    return Solved(qdata=Q.to(torch.int8), scale=scale, proxy_loss=float("nan"))

"""Dropout whose mask NumPy draws.

torch's CPU dropout draws one Bernoulli per element, vectorized only where MKL's generator
applies (Intel CPUs); elsewhere the mask costs an order of magnitude more than NumPy's
PCG64 drawing 16-bit integers, a visible share of a training step. The mask's seed comes
from torch's generator, so ``torch.manual_seed`` still fixes it.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

LEVELS = 1 << 16


class Dropout(nn.Module):
    """Zeroes each element with probability ``p`` (to 1/65,536) in training and scales the
    rest by ``1 / (1 - p)``; the identity in evaluation, like :class:`torch.nn.Dropout`."""

    def __init__(self, p: float = 0.5):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), not {p}")
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        seed = int(torch.randint(1 << 62, (1,)))
        bits = np.random.default_rng(seed).integers(0, LEVELS, size=tuple(x.shape), dtype=np.uint16)
        keep = torch.from_numpy(bits >= round(self.p * LEVELS))
        return x.mul(keep).mul_(1.0 / (1.0 - self.p))

    def extra_repr(self) -> str:
        return f"p={self.p}"

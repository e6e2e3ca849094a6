"""Query context for the heads (the 16-dim ``c_ctx`` and ``c_friend`` of §4.3).

A raw context is 112 numbers: fine tags (100, weights summing to 1 when given), coarse
categories (6, multi-hot) and a time slot (6, one-hot); all zero means "no context" (the
widths of a generated world; ``Widths.context`` in general). A learned linear map turns it
into the head's 16 dims.

Training fills it from real signal: for a place example, the interaction's own time slot
and the positive place's categories and top tags (each part dropped at random so that
queries without context rank well too), and a mismatching context for the in-context
loss; for a friend pair, a place the pair went to together in training, as the target of
the outing (no context for pairs that never did).

The place score also reads the raw context directly, through two learned terms: a
bilinear match with the place embedding, and :class:`ContextMatch`, a learned weight per
context dimension on what the place offers in the same layout (its tags, categories and
typical time slot; :func:`place_descriptors`). The second is what makes a tag in the
query lift the places that carry it: an MLP fed 16 squashed context dimensions beside
512 pair features learns such an interaction slowly, if at all.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from graphrec_pipeline.constants import N_TIME_SLOTS
from graphrec_pipeline.widths import Widths


def context_raw(
    widths: Widths,
    n: int,
    time_slot: np.ndarray | None = None,
    categories: np.ndarray | None = None,
    tags: np.ndarray | None = None,
) -> np.ndarray:
    """(n, 112) raw contexts. ``time_slot``: (n,) ints, -1 for none; ``categories``: (n, 6)
    multi-hot; ``tags``: (n, 100) weights (rows are normalized to sum to 1)."""
    raw = np.zeros((n, widths.context), dtype=np.float32)
    if tags is not None:
        total = tags.sum(axis=1, keepdims=True)
        raw[:, widths.context_tags] = np.where(total > 0, tags / np.maximum(total, 1e-12), 0.0)
    if categories is not None:
        raw[:, widths.context_categories] = categories
    if time_slot is not None:
        rows = np.flatnonzero(time_slot >= 0)
        raw[rows, widths.context_slot.start + time_slot[rows]] = 1.0
    return raw


def place_descriptors(tags: Tensor, categories: Tensor, slot: Tensor) -> Tensor:
    """(n, 112) what each place offers, in the raw context's layout: its tag weights
    scaled so that its strongest tag is 1, its categories (multi-hot) and its typical time
    slot (one-hot). ``tags`` (n, 100), ``categories`` (n, 6), ``slot`` (n,) ints."""
    tags = tags.float()
    n_tags, n_categories = tags.shape[1], categories.shape[1]
    out = torch.zeros(len(tags), n_tags + n_categories + N_TIME_SLOTS)
    out[:, :n_tags] = tags / tags.max(dim=1, keepdim=True).values.clamp_min(1e-12)
    out[:, n_tags : n_tags + n_categories] = categories.float()
    out[torch.arange(len(tags)), n_tags + n_categories + slot.long()] = 1.0
    return out


def describe_places(x_place: Tensor, widths: Widths) -> Tensor:
    """:func:`place_descriptors` of raw place rows laid out by ``widths``."""
    return place_descriptors(x_place[:, widths.place_fine], x_place[:, widths.place_category],
                             x_place[:, widths.place_slot])


class ContextMatch(nn.Module):
    """``sum_i w_i c_i d_{p,i}``: a learned weight per context dimension on the product of
    the query context ``c`` and the place descriptor ``d_p`` (:func:`place_descriptors`).
    Zero at initialisation; training sets how much each tag, category and slot match counts."""

    def __init__(self, d_raw: int):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(d_raw))

    def forward(self, ctx_raw: Tensor, descriptors: Tensor) -> Tensor:
        return (ctx_raw * self.weight * descriptors).sum(-1)


class ContextEncoder(nn.Module):
    """(N, 112) raw context -> (N, d_ctx)."""

    def __init__(self, d_raw: int, d_ctx: int):
        super().__init__()
        self.lin = nn.Linear(d_raw, d_ctx)

    def forward(self, raw: Tensor) -> Tensor:
        return torch.tanh(self.lin(raw))

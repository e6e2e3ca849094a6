"""How many threads torch computes with in training and in the embedding export.

Float sums depend on how a product is split across threads, so a model trained with 2
threads differs in its last bits from one trained with 1, and every embedding after it.
A Dask worker starts with ``OMP_NUM_THREADS=1``; a local step process with one thread per
core. Fixing the count makes the same seed and config give the same bytes whatever the
executor. ``$GRAPHREC_THREADS`` sets it (default 2); raise it on a bigger machine, at the
price of different (equally good) bytes.
"""

from __future__ import annotations

import os

import torch

DEFAULT = 2


def compute_threads() -> int:
    raw = os.environ.get("GRAPHREC_THREADS", str(DEFAULT))
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(f"GRAPHREC_THREADS must be a positive integer, not {raw!r}")
    return int(raw)


def use_compute_threads() -> int:
    """Set torch's intra-op threads to :func:`compute_threads`; returns the count."""
    n = compute_threads()
    torch.set_num_threads(n)
    return n

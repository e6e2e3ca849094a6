"""Thread pools for serving. One query multiplies one vector by a few thousand: OpenBLAS
and OpenMP would start their threads for it, and on a busy machine that costs a p99 of
milliseconds (a p50 of microseconds). Serving processes run their pools single-threaded
and take concurrency from requests instead."""

from __future__ import annotations

import torch
from threadpoolctl import threadpool_limits

_applied: dict = {}


def limit_threads(n: int = 1) -> None:
    """Cap every BLAS and OpenMP pool loaded in this process (numpy's and faiss's
    OpenBLAS, torch's OpenMP) and torch's intra-op pool to ``n`` threads."""
    if _applied.get("n") == n:
        return
    import faiss  # loaded before the cap, so that it reaches faiss's own OpenBLAS and OpenMP

    _applied["limits"] = threadpool_limits(limits=n)
    faiss.omp_set_num_threads(n)
    torch.set_num_threads(n)
    _applied["n"] = n

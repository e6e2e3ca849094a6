"""LightGCN-style propagation of ID embeddings through both graphs.

Most taste shows only in behaviour: who went where, and with whom. A per-node ID
embedding learns it, but slowly, one sampled node at a time; propagated the LightGCN way
(He et al., SIGIR'20) over the normalized adjacency of users and places, with
interaction edges and friendships alike,

.. math::
    e = \\tfrac{1}{L + 1} \\textstyle\\sum_{k=0}^{L} \\hat A^k E, \\qquad
    \\hat A = D^{-1/2} A D^{-1/2},

every gradient step moves the embeddings of a node's neighbourhood, and a user with few
visits borrows taste from their places and friends. :class:`IdGraph` holds the adjacency's
structure once and rebuilds its values per training step, with the step's supervised
edges masked out (a loss is never computed on an edge that carried a message).
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from torch import Tensor


class SymmetricSpMM(torch.autograd.Function):
    """``adj @ x`` for a symmetric sparse ``adj``: the gradient is ``adj @ grad``, so the
    backward pass reuses ``adj`` instead of transposing (sorting) it again at every step,
    which is most of a step's time when torch does it."""

    @staticmethod
    def forward(ctx, adj: Tensor, x: Tensor) -> Tensor:
        ctx.adj = adj
        return adj @ x

    @staticmethod
    def backward(ctx, grad: Tensor):
        return None, ctx.adj @ grad


def propagate(adj: Tensor, x: Tensor, layers: int, alpha: Tensor | None = None) -> Tensor:
    """``sum_k alpha_k adj^k x`` for k = 0..layers (``alpha``: 1 / (layers + 1) each unless given)."""
    alpha = torch.full((layers + 1,), 1.0 / (layers + 1)) if alpha is None else alpha
    out = x * alpha[0]
    for k in range(layers):
        x = SymmetricSpMM.apply(adj, x)
        out = out + x * alpha[k + 1]
    return out


class IdGraph:
    """The symmetric normalized adjacency over ``n_users + n_places`` nodes (users first)
    from interaction edges (both directions) and social edges (already both directions).

    ``adjacency(keep)`` takes a mask over the interaction edges followed by the social
    edges, in their ``edge_index`` order, and returns a CSR tensor over the kept ones,
    normalized by the kept degrees."""

    def __init__(self, up_edge_index: Tensor, uu_edge_index: Tensor, n_users: int, n_places: int):
        u, p = up_edge_index.numpy()
        su, sv = uu_edge_index.numpy()
        n_up = len(u)
        self.n = n_users + n_places
        self.n_edges = n_up + len(su)
        rows = np.concatenate([u, p + n_users, su])
        cols = np.concatenate([p + n_users, u, sv])
        edge = np.concatenate([np.arange(n_up), np.arange(n_up), n_up + np.arange(len(su))])
        order = np.lexsort((cols, rows))
        self.row, self.col, self.edge = rows[order], cols[order], edge[order]
        self.crow = torch.from_numpy(np.concatenate([[0], np.cumsum(np.bincount(self.row, minlength=self.n))]))
        self.col_t = torch.from_numpy(self.col)

    @classmethod
    def of(cls, graph) -> "IdGraph":
        """From a ``HeteroData`` training graph (``interacts`` and ``social`` edges)."""
        return cls(graph["user", "interacts", "place"].edge_index, graph["user", "social", "user"].edge_index,
                   graph["user"].num_nodes, graph["place"].num_nodes)

    def adjacency(self, keep: np.ndarray | None = None) -> Tensor:
        w = np.ones(len(self.row)) if keep is None else keep[self.edge].astype(np.float64)
        deg = np.bincount(self.row, weights=w, minlength=self.n)
        inv = np.where(deg > 0, 1.0 / np.sqrt(np.maximum(deg, 1e-12)), 0.0)
        values = torch.from_numpy((w * inv[self.row] * inv[self.col]).astype(np.float32))
        with warnings.catch_warnings():  # "sparse CSR support is in beta", once per process and step
            warnings.simplefilter("ignore", UserWarning)
            return torch.sparse_csr_tensor(self.crow, self.col_t, values, size=(self.n, self.n), check_invariants=False)

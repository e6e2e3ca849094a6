"""An edge-aware message-passing layer: edge features shape every message.

.. math::
    m_{j \\to i} = \\mathrm{ReLU}(W_s x_j + W_e e_{ji} + b)

    h_i = W_r x_i + \\mathrm{AGG}_{j \\in N(i)} \\; a_{ji} \\, m_{j \\to i}

with ``AGG`` a mean or a sum (``a = 1``), or GraphRec-style attention:
``a_{ji} = softmax_j(w^T \\mathrm{LeakyReLU}(m_{j \\to i} + W_q x_i))`` over the incoming edges of
``i``, so a user weighs their interactions and friends (Fan et al., GraphRec, WWW 2019).

``W_s x_j`` is computed once per node and gathered, not once per edge, which keeps a
full-graph step cheap on a CPU; the ReLU after adding ``W_e e`` is what lets the edge
features change the message, not merely rescale it.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.nn import MessagePassing
from torch_geometric.typing import Adj, OptTensor, PairTensor
from torch_geometric.utils import softmax


class EdgeAwareConv(MessagePassing):
    """Args:
        in_channels: source and target widths (an int for both).
        out_channels: output width.
        edge_dim: width of the edge features.
        aggr: ``"mean"``, ``"sum"`` or ``"attention"``.
    """

    def __init__(self, in_channels: int | tuple[int, int], out_channels: int, edge_dim: int, aggr: str = "mean"):
        if aggr not in ("mean", "sum", "attention"):
            raise ValueError(f"aggr must be mean, sum or attention, not {aggr!r}")
        super().__init__(aggr="sum" if aggr == "attention" else aggr, node_dim=0)
        src, dst = (in_channels, in_channels) if isinstance(in_channels, int) else in_channels
        self.attention = aggr == "attention"
        self.in_channels, self.out_channels, self.edge_dim, self.mode = (src, dst), out_channels, edge_dim, aggr
        self.lin_src = nn.Linear(src, out_channels)
        self.lin_edge = nn.Linear(edge_dim, out_channels, bias=False)
        self.lin_root = nn.Linear(dst, out_channels, bias=False)
        if self.attention:
            self.lin_query = nn.Linear(dst, out_channels, bias=False)
            self.att = nn.Linear(out_channels, 1, bias=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        super().reset_parameters()
        for module in self.children():
            if isinstance(module, nn.Linear):
                module.reset_parameters()

    def forward(self, x: Tensor | PairTensor, edge_index: Adj, edge_attr: Tensor) -> Tensor:
        x_src, x_dst = (x, x) if isinstance(x, Tensor) else x
        query = self.lin_query(x_dst) if self.attention else None
        out = self.propagate(
            edge_index, h=self.lin_src(x_src), edge_attr=edge_attr, query=query, size=(x_src.size(0), x_dst.size(0))
        )
        return out + self.lin_root(x_dst)

    def message(self, h_j: Tensor, edge_attr: Tensor, query_i: OptTensor, index: Tensor, ptr: OptTensor, size_i: int | None) -> Tensor:
        # ``e @ W^T`` rather than ``lin_edge(e)``: autograd then forms W's gradient as
        # ``e^T @ grad`` ((edge_dim, edges) x (edges, d)), a layout BLAS runs several times
        # faster than ``grad^T @ e`` for a few edge features; in place: one (edges, d)
        # buffer instead of three (no backward needs the sum before the ReLU)
        m = edge_attr.matmul(self.lin_edge.weight.t()).add_(h_j).relu_()
        if self.attention:
            score = self.att(F.leaky_relu(m + query_i, 0.2))
            m = m * softmax(score, index, ptr, size_i)
        return m

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.in_channels}, {self.out_channels}, "
                f"edge_dim={self.edge_dim}, aggr={self.mode!r})")

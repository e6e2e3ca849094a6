"""Heterogeneous message passing over interacts, rev_interacts and social edges (§4.3).

Each of ``num_gnn_layers`` layers applies one :class:`EdgeAwareConv` per edge type (sums
over relations into the same node type), then ReLU, LayerNorm, dropout and a residual
connection. Places receive from users they were interacted with; users from the places
they interacted with and from their social neighbours.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch_geometric.nn import HeteroConv

from graphrec_pipeline.constants import D_EDGE_UP, D_EDGE_UU
from graphrec_pipeline.artifacts.graph import PU, UP, UU
from graphrec_pipeline.model.config import ModelConfig
from graphrec_pipeline.model.conv import EdgeAwareConv
from graphrec_pipeline.model.dropout import Dropout

NODE_TYPES = ("user", "place")


class GraphRecBackbone(nn.Module):
    r"""``L`` layers of heterogeneous, edge-aware message passing with residuals:

    .. math::
        h^{(l+1)}_i = h^{(l)}_i + \mathrm{Dropout}\Big(\mathrm{LN}\big(\mathrm{ReLU}\big(
            \textstyle\sum_{r \in R(i)} \mathrm{Conv}_r^{(l)}(h^{(l)}, E_r)_i\big)\big)\Big)

    where ``R(i)`` are the relations into node ``i``'s type (a place: interacts; a user:
    rev_interacts and social) and each ``Conv_r`` is an :class:`EdgeAwareConv` whose
    messages depend on the edge features of ``E_r``.

    Args:
        cfg: uses ``d_model``, ``num_gnn_layers``, ``gnn_aggr`` and ``gnn_dropout``.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        d = cfg.d_model
        self.convs = nn.ModuleList(
            HeteroConv(
                {
                    UU: EdgeAwareConv(d, d, D_EDGE_UU, cfg.gnn_aggr),
                    UP: EdgeAwareConv((d, d), d, D_EDGE_UP, cfg.gnn_aggr),
                    PU: EdgeAwareConv((d, d), d, D_EDGE_UP, cfg.gnn_aggr),
                },
                aggr="sum",
            )
            for _ in range(cfg.num_gnn_layers)
        )
        self.norms = nn.ModuleList(
            nn.ModuleDict({t: nn.LayerNorm(d) for t in NODE_TYPES}) for _ in range(cfg.num_gnn_layers)
        )
        self.dropout = Dropout(cfg.gnn_dropout)

    def forward(
        self,
        x_dict: dict[str, Tensor],
        edge_index_dict: dict[tuple, Tensor],
        edge_attr_dict: dict[tuple, Tensor],
        edge_hop_dict: dict[tuple, Tensor] | None = None,
    ) -> dict[str, Tensor]:
        """``edge_hop_dict``: the hop each edge of a sampled subgraph was drawn at
        (``train/sampler.py``). Layer ``l`` of ``L`` then passes only edges of hop at most
        ``L - l``: the others lead to nodes whose later states no seed reads, so the seeds'
        outputs are the same with or without them."""
        h = x_dict
        n_layers = len(self.convs)
        for layer, (conv, norms) in enumerate(zip(self.convs, self.norms, strict=True)):
            if edge_hop_dict:
                edge_index_dict, edge_attr_dict = _within_hop(edge_index_dict, edge_attr_dict, edge_hop_dict,
                                                              n_layers - layer)
            out = conv(h, edge_index_dict, edge_attr_dict=edge_attr_dict)
            h = {t: h[t] + self.dropout(norms[t](torch.relu(out[t]))) if t in out else h[t] for t in NODE_TYPES}
        return h


def _within_hop(edge_index_dict: dict, edge_attr_dict: dict, edge_hop_dict: dict, max_hop: int) -> tuple[dict, dict]:
    """The edges of hop at most ``max_hop`` (all of a relation without hops)."""
    index, attr = {}, {}
    for rel, edge_index in edge_index_dict.items():
        hop = edge_hop_dict.get(rel)
        keep = None if hop is None else hop <= max_hop
        if keep is None or bool(keep.all()):
            index[rel], attr[rel] = edge_index, edge_attr_dict[rel]
        else:
            index[rel], attr[rel] = edge_index[:, keep], edge_attr_dict[rel][keep]
    return index, attr

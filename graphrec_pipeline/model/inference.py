"""Full-graph inference in bounded memory (§6.1 embedding export).

:meth:`GraphRec.embed` materializes one message per edge for every relation at once, which
at 100k users x 100k places (13M interaction edges) means tens of GB. Here each layer runs
relation by relation over blocks of destination nodes, with all incoming edges of a block
at once, so mean, sum and attention (a softmax over a node's incoming edges) aggregate
exactly as in the full pass: the result equals ``model.embed(graph)`` up to float rounding.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from graphrec_pipeline.model.backbone import NODE_TYPES
from graphrec_pipeline.model.graphrec import GraphRec

EDGES_PER_BLOCK = 2_000_000


def _blocks_by_destination(dst: Tensor, n_dst: int, max_edges: int) -> list[tuple[int, int, Tensor]]:
    """(first node, end node, edge positions) per block of consecutive destination nodes."""
    order = torch.argsort(dst, stable=True)
    counts = torch.bincount(dst, minlength=n_dst).numpy()
    ends = np.cumsum(counts)
    blocks, lo = [], 0
    while lo < n_dst:
        start_edge = ends[lo - 1] if lo else 0
        hi = int(np.searchsorted(ends, start_edge + max_edges, side="right"))
        hi = max(hi, lo + 1)
        hi = min(hi, n_dst)
        blocks.append((lo, hi, order[start_edge : ends[hi - 1]]))
        lo = hi
    return blocks


@torch.no_grad()
def embed_in_blocks(model: GraphRec, graph, max_edges: int = EDGES_PER_BLOCK,
                    ids: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """(z_user, z_place) of the whole graph, with at most ``max_edges`` messages alive at
    once; ``ids``: its ID table when already computed (``GraphRec.whole_graph_ids``)."""
    model.eval()
    h = model.encode(graph, ids)
    relations = []
    for et in graph.edge_types:
        src, _, dst = et
        ei, ea = graph[et].edge_index, graph[et].edge_attr
        relations.append((et, ei, ea, _blocks_by_destination(ei[1], h[dst].size(0), max_edges)))
    backbone = model.backbone
    for conv, norms in zip(backbone.convs, backbone.norms, strict=True):
        out = {t: torch.zeros_like(h[t]) for t in NODE_TYPES}
        received = set()
        for et, ei, ea, blocks in relations:
            src, _, dst = et
            layer = conv.convs[et]
            for lo, hi, pos in blocks:
                local = torch.stack([ei[0, pos], ei[1, pos] - lo])
                out[dst][lo:hi] += layer((h[src], h[dst][lo:hi]), local, ea[pos])
            received.add(dst)
        h = {t: h[t] + norms[t](torch.relu(out[t])) if t in received else h[t] for t in NODE_TYPES}
    return h["user"], h["place"]

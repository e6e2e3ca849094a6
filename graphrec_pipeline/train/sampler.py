"""Mini-batch message passing: a 2-hop neighbour-sampled subgraph around a step's seeds.

The equivalent of PyG's ``LinkNeighborLoader`` (which needs the compiled ``pyg-lib`` or
``torch-sparse`` extras) in a few vectorized NumPy lines: every relation is stored as CSR
over its target nodes; each hop draws ``fanout`` incoming edges per frontier node (with
replacement, uniformly), skipping edges the step may not propagate over (its supervised
interaction edges and held-out social pairs). The model then runs on the union of the
sampled edges with nodes relabelled locally, so memory depends on the batch, not the graph.
Each edge keeps the hop it was sampled at (``edge_hop``: 1 for edges into the seeds): the
last layer only needs the seeds' states, so it skips the deeper edges (PyG's
``trim_to_layer`` does the same for its loaders).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch_geometric.data import HeteroData

from graphrec_pipeline.artifacts.graph import PU, UP, UU

RELATIONS = {UP: ("user", "place"), PU: ("place", "user"), UU: ("user", "user")}


@dataclass
class CSR:
    rowptr: np.ndarray  # over target nodes
    src: np.ndarray  # source node of each edge, grouped by target
    eid: np.ndarray  # edge id (position in the graph's edge list)

    @classmethod
    def incoming(cls, edge_index: np.ndarray, n_targets: int) -> "CSR":
        order = np.argsort(edge_index[1], kind="stable")
        counts = np.bincount(edge_index[1], minlength=n_targets)
        return cls(np.concatenate([[0], np.cumsum(counts)]), edge_index[0][order], order)

    def sample(self, targets: np.ndarray, fanout: int, allowed: np.ndarray, rng) -> np.ndarray:
        """Edge ids of up to ``fanout`` sampled incoming edges per target (allowed only)."""
        deg = self.rowptr[targets + 1] - self.rowptr[targets]
        has = deg > 0
        t = np.repeat(targets[has], fanout)
        d = np.repeat(deg[has], fanout)
        pos = self.rowptr[t] + (rng.random(len(t)) * d).astype(np.int64)
        eids = self.eid[pos]
        return np.unique(eids[allowed[eids]])


class NeighborSampler:
    def __init__(self, graph: HeteroData, fanouts: tuple[int, ...] = (15, 10)):
        self.graph = graph
        self.fanouts = fanouts
        self.n = {"user": graph["user"].num_nodes, "place": graph["place"].num_nodes}
        self.csr = {rel: CSR.incoming(graph[rel].edge_index.numpy(), self.n[dst]) for rel, (_, dst) in RELATIONS.items()}

    def subgraph(self, seeds: dict[str, np.ndarray], allowed: dict[tuple, np.ndarray], rng):
        """(HeteroData over local ids, {node type: global ids}) around the seed nodes."""
        nodes = {t: np.unique(seeds[t]) for t in ("user", "place")}
        frontier = dict(nodes)
        picked = {rel: [] for rel in RELATIONS}
        hops = {rel: [] for rel in RELATIONS}
        for hop, fanout in enumerate(self.fanouts, start=1):
            found = {"user": [], "place": []}
            for rel, (src, dst) in RELATIONS.items():
                eids = self.csr[rel].sample(frontier[dst], fanout, allowed[rel], rng)
                picked[rel].append(eids)
                hops[rel].append(np.full(len(eids), hop, dtype=np.int64))
                found[src].append(self.graph[rel].edge_index[0].numpy()[eids])
            new = {t: np.setdiff1d(np.concatenate(found[t]) if found[t] else np.empty(0, np.int64), nodes[t]) for t in nodes}
            nodes = {t: np.union1d(nodes[t], new[t]) for t in nodes}
            frontier = new
        sub = HeteroData()
        for t in ("user", "place"):
            sub[t].n_id = torch.from_numpy(nodes[t])
            sub[t].x = self.graph[t].x[sub[t].n_id]
        for rel, (src, dst) in RELATIONS.items():
            # a hop's targets are nodes new at that hop, so an edge is sampled at one hop only
            eids, first = np.unique(np.concatenate(picked[rel]), return_index=True)
            sub[rel].edge_hop = torch.from_numpy(np.concatenate(hops[rel])[first])
            eids = torch.from_numpy(eids)
            ei = self.graph[rel].edge_index[:, eids].numpy()
            local = np.stack([np.searchsorted(nodes[src], ei[0]), np.searchsorted(nodes[dst], ei[1])])
            sub[rel].edge_index = torch.from_numpy(local).long()
            sub[rel].edge_attr = self.graph[rel].edge_attr[eids]
        return sub, nodes

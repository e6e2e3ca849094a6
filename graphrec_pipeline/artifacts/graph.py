"""The training graph's file (``GRAPH_FILE``): the PyG ``HeteroData`` of ``graph/build.py``
as one flat dict of tensors in safetensors, so it loads without pickle.

Keys: ``<node type>.x`` for ``user`` and ``place``, and ``<src>__<rel>__<dst>.edge_index``
and ``.edge_attr`` for each edge type.
"""

from __future__ import annotations

import torch
from torch_geometric.data import HeteroData

from graphrec_pipeline.artifacts import GRAPH_FILE
from graphrec_pipeline.storage import Storage

UP = ("user", "interacts", "place")
PU = ("place", "rev_interacts", "user")
UU = ("user", "social", "user")
EDGE_TYPES = (UP, PU, UU)
NODE_TYPES = ("user", "place")


def graph_to_tensors(data: HeteroData) -> dict[str, torch.Tensor]:
    out = {f"{t}.x": data[t].x.contiguous() for t in NODE_TYPES}
    for et in EDGE_TYPES:
        key = "__".join(et)
        out[f"{key}.edge_index"] = data[et].edge_index.contiguous()
        out[f"{key}.edge_attr"] = data[et].edge_attr.contiguous()
    return out


def graph_from_tensors(tensors: dict[str, torch.Tensor]) -> HeteroData:
    data = HeteroData()
    for t in NODE_TYPES:
        data[t].x = tensors[f"{t}.x"]
    for et in EDGE_TYPES:
        key = "__".join(et)
        data[et].edge_index = tensors[f"{key}.edge_index"]
        data[et].edge_attr = tensors[f"{key}.edge_attr"]
    return data


def save_graph(store: Storage, data: HeteroData) -> str:
    """The training graph into the release; returns the file's path."""
    return store.write_tensors(GRAPH_FILE, graph_to_tensors(data))


def load_graph(store: Storage) -> HeteroData:
    """The release's training graph, as :func:`save_graph` wrote it."""
    return graph_from_tensors(store.read_tensors(GRAPH_FILE))

"""The PyG ``HeteroData`` graph of §3 built from the tables and the split.

Nodes: ``user`` (148 features) and ``place`` (114). Edges: ``interacts`` and
``rev_interacts`` (12 features) from **training** interactions only, one edge per
user-place pair with the mean of its interactions' features (a distribution over time
buckets, mean rating and engagement); ``social`` (3 features, both directions): the pairs of
``user_user_edges`` that the edge rule (``world/social.py``: similar users, or at least
two co-attendances) supports on **training** interactions alone, with their
co-attendance counted there too, minus every validation or test friend-label pair. No
edge exists, and no feature has a value, because of held-out time. Ids are dense, so node
index == id; the mapping is still persisted (``id_map_*``) for serving.

The graph serializes to a flat dict of tensors (safetensors), so it loads without pickle.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import torch
from torch_geometric.data import HeteroData

from graphrec_pipeline.artifacts import GRAPH_FILE
from graphrec_pipeline.constants import D_EDGE_UP
from graphrec_pipeline.world import social
from graphrec_pipeline.storage import Storage
from graphrec_pipeline.graph.features import (
    encode_interaction_edges,
    encode_places,
    encode_social_edges,
    encode_users,
)


UP = ("user", "interacts", "place")
PU = ("place", "rev_interacts", "user")
UU = ("user", "social", "user")
EDGE_TYPES = (UP, PU, UU)


def training_interaction_edges(interactions: pl.DataFrame, split: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(2, E) user->place index and (E, 12) mean features of the training interactions."""
    train = interactions.filter(split["split"] == "train")
    feats = encode_interaction_edges(train)
    frame = pl.DataFrame(feats, schema=[f"f{i}" for i in range(D_EDGE_UP)]).with_columns(
        user=train["user_id"], place=train["place_id"]
    )
    pairs = frame.group_by("user", "place").mean().sort("user", "place")
    index = np.stack([pairs["user"].to_numpy(), pairs["place"].to_numpy()])
    return index, pairs.select(f"f{i}" for i in range(D_EDGE_UP)).to_numpy().astype(np.float32)


def training_social_edges(
    users: pl.DataFrame,
    interactions: pl.DataFrame,
    split: pl.DataFrame,
    edges: pl.DataFrame,
    friend_split: pl.DataFrame,
    n_neighborhoods: int,
) -> pl.DataFrame:
    """The world's social edges as the training period alone supports them (§2.5 columns):
    the edge rule re-applied to training interactions, kept where the world has the pair,
    minus validation and test friend-label pairs."""
    train = interactions.filter(split["split"] == "train")
    # The world's edges as candidates: its close pairs stay (stated overlap, no period),
    # its co-attendance pairs come back only if training visits repeat them.
    candidates = edges.select("user_u", "user_v", "interest_overlap_score")
    rebuilt = social.build_user_user_edges(n_neighborhoods, users, candidates, train)
    held_out = friend_split.filter(pl.col("split") != "train").select("user_u", "user_v")
    return (
        rebuilt.join(edges.select("user_u", "user_v"), on=["user_u", "user_v"], how="semi", maintain_order="left")
        .join(held_out, on=["user_u", "user_v"], how="anti", maintain_order="left")
    )


def build_graph(
    users: pl.DataFrame,
    places: pl.DataFrame,
    interactions: pl.DataFrame,
    split: pl.DataFrame,
    edges: pl.DataFrame,
    friend_split: pl.DataFrame,
    n_neighborhoods: int,
) -> HeteroData:
    data = HeteroData()
    data["user"].x = torch.from_numpy(encode_users(users, n_neighborhoods))
    data["place"].x = torch.from_numpy(encode_places(places))
    index, attr = training_interaction_edges(interactions, split)
    data[UP].edge_index = torch.from_numpy(index).long()
    data[UP].edge_attr = torch.from_numpy(attr)
    data[PU].edge_index = data[UP].edge_index.flip(0)
    data[PU].edge_attr = data[UP].edge_attr.clone()
    pairs = training_social_edges(users, interactions, split, edges, friend_split, n_neighborhoods)
    u, v = pairs["user_u"].to_numpy(), pairs["user_v"].to_numpy()
    feats = torch.from_numpy(encode_social_edges(pairs))
    data[UU].edge_index = torch.from_numpy(np.stack([np.concatenate([u, v]), np.concatenate([v, u])])).long()
    data[UU].edge_attr = torch.cat([feats, feats])
    return data


def pair_key(u: np.ndarray, v: np.ndarray, n_users: int) -> np.ndarray:
    """Order-free key of a user pair: the same for (u, v) and (v, u)."""
    return np.minimum(u, v).astype(np.int64) * n_users + np.maximum(u, v)


def graph_to_tensors(data: HeteroData) -> dict[str, torch.Tensor]:
    out = {f"{t}.x": data[t].x.contiguous() for t in ("user", "place")}
    for et in EDGE_TYPES:
        key = "__".join(et)
        out[f"{key}.edge_index"] = data[et].edge_index.contiguous()
        out[f"{key}.edge_attr"] = data[et].edge_attr.contiguous()
    return out


def graph_from_tensors(tensors: dict[str, torch.Tensor]) -> HeteroData:
    data = HeteroData()
    for t in ("user", "place"):
        data[t].x = tensors[f"{t}.x"]
    for et in EDGE_TYPES:
        key = "__".join(et)
        data[et].edge_index = tensors[f"{key}.edge_index"]
        data[et].edge_attr = tensors[f"{key}.edge_attr"]
    return data


def save_graph(store: Storage, data: HeteroData) -> str:
    """The training graph as one safetensors file of the release (``GRAPH_FILE``); its path."""
    return store.write_tensors(GRAPH_FILE, graph_to_tensors(data))


def load_graph(store: Storage) -> HeteroData:
    """The release's training graph, as :func:`save_graph` wrote it."""
    return graph_from_tensors(store.read_tensors(GRAPH_FILE))

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

Its file, a flat dict of tensors that loads without pickle, is ``artifacts/graph.py``.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import torch
from torch_geometric.data import HeteroData

from graphrec_pipeline.artifacts.graph import PU, UP, UU
from graphrec_pipeline.constants import D_EDGE_UP
from graphrec_pipeline.world import social
from graphrec_pipeline.widths import Widths
from graphrec_pipeline.graph.features import (
    encode_interaction_edges,
    encode_places,
    encode_social_edges,
    encode_users,
)


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
    widths = Widths.of_tables(users, places)
    data["user"].x = torch.from_numpy(encode_users(users, n_neighborhoods, widths))
    data["place"].x = torch.from_numpy(encode_places(places, widths))
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

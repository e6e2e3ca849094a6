"""Does held-out data reach the model? Counts of graph edges and features that only
held-out data explains.

* A held-out interaction leaks if its (user, place) pair is an ``interacts`` or
  ``rev_interacts`` edge while the pair never occurs in training (a pair seen in training
  and again later is a repeat visit, legitimately known).
* A held-out friend pair leaks if it is a ``social`` edge in either direction.
* Every edge feature is recomputed from training data alone (``build.py``'s rules) and
  compared: an edge the training period does not support, or a feature that differs
  (a co-attendance count that includes held-out visits, say), is counted.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import torch

from graphrec_pipeline.graph.build import pair_key, training_interaction_edges, training_social_edges
from graphrec_pipeline.graph.features import encode_social_edges

ATOL = 1e-6


def _keys(a: np.ndarray, b: np.ndarray, n: int) -> np.ndarray:
    return a.astype(np.int64) * n + b.astype(np.int64)


def _feature_mismatches(keys: np.ndarray, attr: np.ndarray, want_keys: np.ndarray, want_attr: np.ndarray) -> tuple[int, int]:
    """(edges with no expected counterpart, edges whose features differ from it)."""
    order = np.argsort(want_keys)
    want_keys, want_attr = want_keys[order], want_attr[order]
    pos = np.minimum(np.searchsorted(want_keys, keys), max(len(want_keys) - 1, 0))
    found = (want_keys[pos] == keys) if len(want_keys) else np.zeros(len(keys), bool)
    differ = found & ~np.isclose(attr, want_attr[pos], atol=ATOL).all(axis=1) if len(want_keys) else found
    return int((~found).sum()), int(differ.sum())


def leakage_report(
    tensors: dict[str, torch.Tensor],
    users: pl.DataFrame,
    interactions: pl.DataFrame,
    split: pl.DataFrame,
    labels: pl.DataFrame,
    edges: pl.DataFrame,
    friend_split: pl.DataFrame,
    n_neighborhoods: int,
) -> dict[str, int]:
    n_places = int(tensors["place.x"].shape[0])
    n_users = int(tensors["user.x"].shape[0])
    up = tensors["user__interacts__place.edge_index"].numpy()
    pu = tensors["place__rev_interacts__user.edge_index"].numpy()
    uu = tensors["user__social__user.edge_index"].numpy()

    tagged = interactions.select("user_id", "place_id").with_columns(split=split["split"])
    train = tagged.filter(pl.col("split") == "train").select("user_id", "place_id").unique()
    held = (
        tagged.filter(pl.col("split") != "train").select("user_id", "place_id").unique()
        .join(train, on=["user_id", "place_id"], how="anti")
    )
    held_keys = _keys(held["user_id"].to_numpy(), held["place_id"].to_numpy(), n_places)
    pairs = labels.select("user_u", "user_v").with_columns(split=friend_split["split"])
    held_pairs = pairs.filter(pl.col("split") != "train")
    held_social = pair_key(held_pairs["user_u"].to_numpy(), held_pairs["user_v"].to_numpy(), n_users)

    want_index, want_attr = training_interaction_edges(interactions, split)
    up_extra, up_differ = _feature_mismatches(
        _keys(up[0], up[1], n_places), tensors["user__interacts__place.edge_attr"].numpy(),
        _keys(want_index[0], want_index[1], n_places), want_attr)
    pu_extra, pu_differ = _feature_mismatches(
        _keys(pu[1], pu[0], n_places), tensors["place__rev_interacts__user.edge_attr"].numpy(),
        _keys(want_index[0], want_index[1], n_places), want_attr)
    social = training_social_edges(users, interactions, split, edges, friend_split, n_neighborhoods)
    su, sv = social["user_u"].to_numpy(), social["user_v"].to_numpy()
    s_attr = encode_social_edges(social)
    uu_extra, uu_differ = _feature_mismatches(
        _keys(uu[0], uu[1], n_users), tensors["user__social__user.edge_attr"].numpy(),
        _keys(np.concatenate([su, sv]), np.concatenate([sv, su]), n_users), np.concatenate([s_attr, s_attr]))
    return {
        "heldout_interactions_as_interacts_edges": int(np.isin(_keys(up[0], up[1], n_places), held_keys).sum()),
        "heldout_interactions_as_rev_interacts_edges": int(np.isin(_keys(pu[1], pu[0], n_places), held_keys).sum()),
        "heldout_friend_pairs_as_social_edges": int(np.isin(pair_key(uu[0], uu[1], n_users), held_social).sum()),
        "interacts_edges_not_from_training": up_extra + pu_extra,
        "interacts_features_not_from_training": up_differ + pu_differ,
        "social_edges_not_from_training": uu_extra,
        "social_features_not_from_training": uu_differ,
    }

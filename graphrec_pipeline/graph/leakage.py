"""Does held-out data reach the model? Counts of held-out pairs found among graph edges.

A held-out interaction leaks if its (user, place) pair is an ``interacts`` or
``rev_interacts`` edge while the pair never occurs in training (a pair seen in training
and again later is a repeat visit, legitimately known). A held-out friend pair leaks if
it is a ``social`` edge in either direction.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import torch

from graphrec_pipeline.graph.build import pair_key


def _keys(a: np.ndarray, b: np.ndarray, n: int) -> np.ndarray:
    return a.astype(np.int64) * n + b.astype(np.int64)


def leakage_report(
    tensors: dict[str, torch.Tensor],
    interactions: pl.DataFrame,
    split: pl.DataFrame,
    labels: pl.DataFrame,
    friend_split: pl.DataFrame,
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
    return {
        "heldout_interactions_as_interacts_edges": int(np.isin(_keys(up[0], up[1], n_places), held_keys).sum()),
        "heldout_interactions_as_rev_interacts_edges": int(np.isin(_keys(pu[1], pu[0], n_places), held_keys).sum()),
        "heldout_friend_pairs_as_social_edges": int(np.isin(pair_key(uu[0], uu[1], n_users), held_social).sum()),
    }

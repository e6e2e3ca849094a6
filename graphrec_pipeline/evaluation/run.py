"""One evaluation run: every model and baseline on the test split (see ``evaluate.py``)."""

from __future__ import annotations

import numpy as np
import polars as pl

from graphrec_pipeline.columns import dense_from_list
from graphrec_pipeline.constants import C_FINE
from graphrec_pipeline.evaluation.baselines import (
    content_scorer,
    dot_scorer,
    popularity_scorer,
    random_scorer,
    train_lightgcn,
)
from graphrec_pipeline.evaluation.evaluate import evaluate_friends, evaluate_places
from graphrec_pipeline.evaluation.ranking import BLOCK_ELEMENTS as DENSE_BLOCK
from graphrec_pipeline.graph.split import heldout_positives
from graphrec_pipeline.model.graphrec import GraphRec
from graphrec_pipeline.model.scoring import Scorer
from graphrec_pipeline.train.fit import Inputs
from graphrec_pipeline.world.affinity import WorldFeatures, affinity_block, l2_normalize
from graphrec_pipeline.world.social import POSITIVE_COATTENDANCE, POSITIVE_OVERLAP

HEAD_BLOCK = 262_144  # (user, place) pairs the place head scores at once


def evaluate_all(
    inputs: Inputs,
    model: GraphRec,
    positive_rating: float,
    with_oracle: bool,
    n_neighborhoods: int,
    max_users: int = 2000,
    lightgcn_steps: int = 150,
    seed: int = 0,
    log=print,
) -> pl.DataFrame:
    data = inputs.training_data(positive_rating)
    scorer = Scorer.from_graph(model, inputs.graph)
    users = inputs.users.sort("user_id")
    places = inputs.places.sort("place_id")
    user_unit = l2_normalize(dense_from_list(users["fine_pref"], C_FINE))
    place_unit = l2_normalize(dense_from_list(places["fine_tag_vector"], C_FINE))

    log("training the LightGCN baseline")
    lg_user, lg_place = train_lightgcn(data, steps=lightgcn_steps, seed=seed, log=log)
    place_scorers = {
        "graphrec": (scorer.head, HEAD_BLOCK),
        "graphrec_dot": (scorer.dot, DENSE_BLOCK),
        "popularity": (popularity_scorer(data.edge_place, data.n_places), DENSE_BLOCK),
        "content": (content_scorer(user_unit, place_unit), DENSE_BLOCK),
        "lightgcn": (dot_scorer(lg_user, lg_place), DENSE_BLOCK),
        "random": (random_scorer(seed), DENSE_BLOCK),
    }
    if with_oracle:
        feats = WorldFeatures.from_tables(users, places, n_neighborhoods)
        place_scorers["oracle"] = (lambda u, p: affinity_block(feats, u, p), DENSE_BLOCK)

    positives = heldout_positives(inputs.interactions, inputs.split, "test", positive_rating)
    train_pairs = inputs.train_pairs()
    log(f"ranking {len(place_scorers)} models over home-city places")
    rows = evaluate_places(place_scorers, data.user_city, data.place_city, train_pairs, positives,
                           max_users=max_users, seed=seed)
    log("ranking over all places (smaller user sample)")
    for r in evaluate_places(place_scorers, data.user_city, data.place_city, train_pairs, positives,
                             max_users=max(max_users // 4, 1), all_places=True, seed=seed):
        rows.append({**r, "task": "place_all"})

    test = inputs.labels.with_columns(split=inputs.friend_split["split"]).filter(pl.col("split") == "test")
    cos = lambda u, v: np.einsum("ij,ij->i", user_unit[u], user_unit[v])  # noqa: E731
    friend_scorers = {
        "graphrec": (lambda u, v: scorer.friend(u, v)[0], lambda u, v: scorer.friend(u, v)[1]),
        "content": (cos, cos),
    }
    if with_oracle:
        friend_scorers["oracle"] = oracle_friend_scorers(inputs.edges, user_unit)
    rows += evaluate_friends(friend_scorers, test)
    return pl.DataFrame(rows, schema={"model": pl.String, "task": pl.String, "metric": pl.String,
                                      "k": pl.Int32, "value": pl.Float64})


def oracle_friend_scorers(edges: pl.DataFrame, user_unit: np.ndarray):
    """The world's own §2.6 rule: compatibility from interest overlap and co-attendance
    (0 for pairs that are not edges, by construction); attendance probability
    ``min(1, overlap * (1 + co_attendance / 10))`` where the rule says compatible."""
    n = len(user_unit)
    keys = edges["user_u"].to_numpy() * n + edges["user_v"].to_numpy()
    order = np.argsort(keys)
    keys, counts = keys[order], edges["co_attendance_count"].to_numpy()[order]

    def parts(u: np.ndarray, v: np.ndarray):
        overlap = np.clip(np.einsum("ij,ij->i", user_unit[u], user_unit[v]), 0.0, 1.0)
        k = np.minimum(u, v) * n + np.maximum(u, v)
        pos = np.minimum(np.searchsorted(keys, k), max(len(keys) - 1, 0))
        coatt = np.where((len(keys) > 0) & (keys[pos] == k), counts[pos], 0) if len(keys) else np.zeros(len(u))
        compatible = (overlap >= POSITIVE_OVERLAP) | (coatt >= POSITIVE_COATTENDANCE)
        return overlap, coatt, compatible

    def compat(u, v):
        overlap, _, compatible = parts(u, v)
        return compatible + 0.5 * overlap

    def attend(u, v):
        overlap, coatt, compatible = parts(u, v)
        return np.where(compatible, np.minimum(1.0, overlap * (1.0 + coatt / 10.0)), 0.0)

    return compat, attend

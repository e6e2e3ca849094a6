"""One evaluation run: every model and baseline on every task of the test split.

Tasks (``evaluate.py``, ``context.py``, ``people.py``): ``place`` with its ``_solo`` and
``_outing`` parts, ``place_cold`` (positives at places without training edges: new
places) and ``place_all``; ``place_context``; ``people`` and ``people_new``;
``friend_compat``, ``friend_attend`` and ``friend_attend_within_compat``.

People rankers beside the served flow (``graphrec_served``; ``graphrec_served_new`` with
``new_people``): ``content``, ``content_new`` (cosine, past partners last),
``past_partners`` (most places together first, then cosine), ``popularity``, ``random``
and, for generated worlds, ``oracle`` and ``oracle_new`` (the world's own rule of who goes
out with whom, ``people.py``).
Friend scorers: ``graphrec`` (with the pairs' training-period co-attendance),
``graphrec_no_history`` (without), ``content``, ``content_history`` (the §2.6 attendance
rule on training-period co-attendance) and ``oracle`` (the rule on all periods).

Place rankers: ``graphrec`` (the place head over the whole city), ``graphrec_dot``
(the retrieval score), ``graphrec_match`` (the place head's preference match alone: no
message passing, an ablation that shows what the GNN adds), ``graphrec_served`` (what :class:`Recommender` returns: retrieval,
filters and the place score, with the pre-test visits as "visited"), ``lightgcn``,
``content``, ``popularity``, ``random`` and, for generated worlds, ``oracle`` and
``oracle_joint`` (``world/oracle.py``).
"""

from __future__ import annotations

import numpy as np
import polars as pl

from graphrec_pipeline import coattendance
from graphrec_pipeline.columns import dense_from_list
from graphrec_pipeline.constants import C_FINE
from graphrec_pipeline.evaluation.baselines import LIGHTGCN_LR, dot_scorer, train_lightgcn
from graphrec_pipeline.evaluation.context import evaluate_context
from graphrec_pipeline.evaluation.evaluate import evaluate_friends, evaluate_places, scored
from graphrec_pipeline.evaluation.people import (
    candidate_ranker,
    evaluate_people,
    excluded_keys,
    oracle_rankers,
    outing_partners,
    partner_popularity,
)
from graphrec_pipeline.graph.split import heldout_visits
from graphrec_pipeline.metrics import BLOCK_ELEMENTS as DENSE_BLOCK
from graphrec_pipeline.metrics import pair_keys
from graphrec_pipeline.model.context import context_raw
from graphrec_pipeline.model.graphrec import GraphRec
from graphrec_pipeline.model.scoring import Scorer
from graphrec_pipeline.simple_rankers import content_scorer, popularity_scorer, random_scorer
from graphrec_pipeline.train.fit import Inputs, validator
from graphrec_pipeline.train.trainer import TrainConfig
from graphrec_pipeline.world.affinity import WorldFeatures, l2_normalize
from graphrec_pipeline.world.config import WorldConfig
from graphrec_pipeline.world.oracle import joint_oracle_scorer, oracle_scorer, slot_log_prior
from graphrec_pipeline.world.social import POSITIVE_COATTENDANCE, POSITIVE_OVERLAP

HEAD_BLOCK = 262_144  # (user, place) pairs the place head scores at once
K = 20


def served_places(recommender, k: int = K):
    """(users, slot or None) -> (n, k) place ids exactly as ``recommend_places_batch`` answers."""

    def rank(users: np.ndarray, slot: int | None = None) -> np.ndarray:
        out = np.full((len(users), k), -1, dtype=np.int64)
        for i, recs in enumerate(recommender.recommend_places_batch(users, k=k, time_slot=slot)):
            out[i, : len(recs)] = [r.place_id for r in recs]
        return out

    return rank


def served_people(recommender, k: int = 10, new_people: bool = False):
    def rank(users: np.ndarray) -> np.ndarray:
        out = np.full((len(users), k), -1, dtype=np.int64)
        for i, recs in enumerate(recommender.recommend_people_batch(users, k=k, new_people=new_people)):
            out[i, : len(recs)] = [r.user_id for r in recs]
        return out

    return rank


def training_history(inputs: Inputs) -> coattendance.PairHistory:
    """The pairs' co-attendance over the training period: what the model was trained on,
    and all the served flow may know of the pairs when it is evaluated."""
    train = inputs.interactions.filter(inputs.split["split"] == "train")
    return coattendance.PairHistory.from_interactions(train, len(inputs.users))


def pre_test_keys(inputs: Inputs) -> np.ndarray:
    """Sorted ``user * n_places + place`` keys of every training and validation visit."""
    before = inputs.interactions.filter(inputs.split["split"] != "test").select("user_id", "place_id").unique()
    return np.sort(pair_keys(before["user_id"].to_numpy(), before["place_id"].to_numpy(), len(inputs.places)))


def evaluate_all(
    inputs: Inputs,
    model: GraphRec,
    positive_rating: float,
    with_oracle: bool,
    n_neighborhoods: int,
    max_users: int = 2000,
    lightgcn_lr: float = LIGHTGCN_LR,
    train_cfg: TrainConfig = TrainConfig(),
    seed: int = 0,
    recommender=None,
    log=print,
) -> pl.DataFrame:
    """``recommender``: a :class:`Recommender` over this model's served assets, built with
    ``visited_keys=pre_test_keys(inputs)`` and ``pair_history=training_history(inputs)``;
    without one the served flow is not evaluated.
    LightGCN trains under ``train_cfg``'s validation, patience and time cap (the GNN's)."""
    data = inputs.training_data(positive_rating)
    scorer = Scorer.from_graph(model, inputs.graph)
    users = inputs.users.sort("user_id")
    places = inputs.places.sort("place_id")
    n_users, n_places = len(users), len(places)
    user_unit = l2_normalize(dense_from_list(users["fine_pref"], C_FINE))
    place_unit = l2_normalize(dense_from_list(places["fine_tag_vector"], C_FINE))
    seen = pre_test_keys(inputs)
    train = inputs.interactions.filter(inputs.split["split"] == "train")
    feats = WorldFeatures.from_tables(users, places, n_neighborhoods) if with_oracle else None
    train_partners = coattendance.partners(train)
    history = training_history(inputs)

    log("training the LightGCN baseline")
    val = validator(inputs, data, train_cfg, positive_rating)
    lg_user, lg_place = train_lightgcn(data, lr=lightgcn_lr, seed=seed, validate=val.dot_ndcg,
                                       patience=train_cfg.patience, max_seconds=60 * train_cfg.max_minutes, log=log)
    scores = {
        "graphrec": (scorer.head, HEAD_BLOCK),
        "graphrec_dot": (scorer.dot, DENSE_BLOCK),
        "graphrec_match": (scorer.match, DENSE_BLOCK),
        "lightgcn": (dot_scorer(lg_user, lg_place), DENSE_BLOCK),
        "content": (content_scorer(user_unit, place_unit), DENSE_BLOCK),
        "popularity": (popularity_scorer(data.edge_place, n_places), DENSE_BLOCK),
        "random": (random_scorer(seed), DENSE_BLOCK),
    }
    if with_oracle:
        scores["oracle"] = (oracle_scorer(feats), DENSE_BLOCK)
        scores["oracle_joint"] = (joint_oracle_scorer(feats, train_partners), DENSE_BLOCK)

    visits = heldout_visits(inputs.interactions, inputs.split, "test", positive_rating)
    home = visits.filter(pl.Series(data.user_city[visits["user_id"].to_numpy()] == data.place_city[visits["place_id"].to_numpy()]))
    positives = visits.group_by("user_id", "place_id").agg(pl.col("outing").any()).sort("user_id", "place_id")
    home_positives = home.group_by("user_id", "place_id").agg(pl.col("outing").any()).sort("user_id", "place_id")

    rankers = {name: scored(fn, data.user_city, data.place_city, seen, block) for name, (fn, block) in scores.items()}
    if recommender is not None:
        rankers["graphrec_served"] = served_places(recommender)
    log(f"ranking {len(rankers)} models over home-city places")
    rows = evaluate_places(rankers, home_positives, n_places, max_users=max_users, seed=seed)
    cold = np.bincount(data.edge_place, minlength=n_places) == 0
    cold_positives = home_positives.filter(pl.Series(cold[home_positives["place_id"].to_numpy()]))
    if len(cold_positives):
        log(f"cold start: {len(cold_positives)} test positives at {int(cold.sum())} places without training edges")
        rows += [r for r in evaluate_places(rankers, cold_positives, n_places, max_users=max_users, task="place_cold",
                                            seed=seed) if r["task"] == "place_cold"]
    log("ranking over all places (smaller user sample)")
    everywhere = {name: scored(fn, data.user_city, data.place_city, seen, block, all_places=True)
                  for name, (fn, block) in scores.items()}
    rows += [r for r in evaluate_places(everywhere, positives, n_places, max_users=max(max_users // 4, 1),
                                        task="place_all", seed=seed) if r["task"] == "place_all"]

    log("context task: each test visit's own time slot")
    place_slot = places["typical_time_slot"].to_numpy()
    rows += evaluate_context(context_rankers(scorer, data, seen, feats, place_slot, recommender), home, n_places,
                             max_queries=max_users, seed=seed)

    log("people task: test-period outing partners")
    test = inputs.interactions.filter(inputs.split["split"] == "test")
    excluded = excluded_keys(n_users, inputs.blocks)
    cos = lambda u, v: user_unit[u] @ user_unit[v].T  # noqa: E731
    past = lambda u, v: history(u[:, None], v[None, :])  # noqa: E731
    people = {
        "content": candidate_ranker(cos, data.user_city, excluded),
        "content_new": candidate_ranker(lambda u, v: cos(u, v) - 2.0 * (past(u, v) > 0), data.user_city, excluded),
        "past_partners": candidate_ranker(lambda u, v: past(u, v) + cos(u, v), data.user_city, excluded),
        "popularity": candidate_ranker(partner_popularity(train_partners, n_users), data.user_city, excluded),
        "random": candidate_ranker(random_scorer(seed), data.user_city, excluded),
    }
    if with_oracle:
        people |= oracle_rankers(users, WorldConfig.similar_users_k, past, data.user_city, excluded)
    if recommender is not None:
        people = {"graphrec_served": served_people(recommender),
                  "graphrec_served_new": served_people(recommender, new_people=True), **people}
    rows += evaluate_people(people, outing_partners(train_partners, test), n_users, max_users=max_users, seed=seed)

    labels = inputs.labels.with_columns(split=inputs.friend_split["split"]).filter(pl.col("split") == "test")
    pair_cos = lambda u, v: np.einsum("ij,ij->i", user_unit[u], user_unit[v])  # noqa: E731
    friend_scorers = {
        "graphrec": (lambda u, v: scorer.friend(u, v, history=history(u, v))[0],
                     lambda u, v: scorer.friend(u, v, history=history(u, v))[1]),
        "graphrec_no_history": (lambda u, v: scorer.friend(u, v)[0], lambda u, v: scorer.friend(u, v)[1]),
        "content": (pair_cos, pair_cos),
        "content_history": (None, lambda u, v: np.clip(pair_cos(u, v), 0, 1) * (1 + history(u, v) / 10.0)),
    }
    if with_oracle:
        friend_scorers["oracle"] = oracle_friend_scorers(inputs.edges, user_unit)
    rows += evaluate_friends(friend_scorers, labels)
    return pl.DataFrame(rows, schema={"model": pl.String, "task": pl.String, "metric": pl.String,
                                      "k": pl.Int32, "value": pl.Float64})


def context_rankers(scorer: Scorer, data, seen: np.ndarray, feats: WorldFeatures | None, place_slot: np.ndarray,
                    recommender) -> dict:
    """(users, slot or None) -> ranked ids for graphrec's head, the served flow and the oracle."""

    def head(users: np.ndarray, slot: int | None) -> np.ndarray:
        ctx = None if slot is None else context_raw(1, time_slot=np.array([slot]))[0]
        score = lambda u, p: scorer.head(u, p, ctx)  # noqa: E731
        return scored(score, data.user_city, data.place_city, seen, HEAD_BLOCK)(users)

    rankers = {"graphrec": head}
    if recommender is not None:
        rankers["graphrec_served"] = served_places(recommender)
    if feats is not None:
        base = oracle_scorer(feats)

        def oracle_slot(users: np.ndarray, slot: int | None) -> np.ndarray:
            prior = None if slot is None else slot_log_prior(place_slot, slot)
            score = base if prior is None else (lambda u, p: base(u, p) + prior[p])
            return scored(score, data.user_city, data.place_city, seen)(users)

        rankers["oracle_slot"] = oracle_slot
    return rankers


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


def summary_tables(metrics: pl.DataFrame) -> dict[str, pl.DataFrame]:
    """The evaluation as the tables people read: one row per model, one column per
    (task, metric), baselines and oracles beside the model."""

    def wide(tasks: list[str], metrics_: list[str], k: int | None) -> pl.DataFrame:
        sel = metrics.filter(pl.col("task").is_in(tasks) & pl.col("metric").is_in(metrics_)
                             & (pl.col("k").is_null() if k is None else pl.col("k") == k))
        named = sel.with_columns(name=pl.col("task") + " " + pl.col("metric") + ("" if k is None else f"@{k}"))
        return named.pivot(on="name", index="model", values="value").with_columns(pl.selectors.float().round(4))

    return {
        "places": wide(["place", "place_solo", "place_outing", "place_cold", "place_all"], ["ndcg"], 20)
        .join(wide(["place"], ["recall", "hit_rate"], 20), on="model", how="left"),
        "context": wide(["place_context"], ["ndcg_context", "ndcg_empty", "lift"], 20),
        "people": wide(["people", "people_new"], ["recall", "ndcg", "hit_rate"], 10),
        "friends": wide(["friend_compat", "friend_attend", "friend_attend_within_compat"], ["auc", "ap"], None),
    }

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
``content``, ``popularity``, ``random`` and, for generated worlds, ``oracle`` (the full
noise-free affinity, latent taste included), ``oracle_joint`` (``world/oracle.py``) and
``oracle_observed`` (the affinity's stated part alone: what a perfect model of the
stated features would rank).

The home-city task is also reported per user segment, ``place_users_cold`` / ``_warm`` /
``_heavy`` (by training-period interactions) and ``place_users_social`` (users with at
least ``SOCIAL_MIN_FRIENDS`` friends in the training graph): :func:`user_segments`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from graphrec_pipeline import coattendance
from graphrec_pipeline.columns import dense_from_list
from graphrec_pipeline.defaults import TOP_K as K
from graphrec_pipeline.evaluation.baselines import dot_scorer
from graphrec_pipeline.evaluation.context import context_queries, evaluate_context
from graphrec_pipeline.evaluation.evaluate import (
    evaluate_friends,
    evaluate_ranked,
    place_groups,
    rank_users,
    rows_of,
    sample_users,
    scored,
)
from graphrec_pipeline.evaluation.people import KS as PEOPLE_KS
from graphrec_pipeline.evaluation.people import (
    excluded_keys,
    oracle_scorers,
    outing_partners,
    partner_popularity,
    people_groups,
)
from graphrec_pipeline.artifacts.graph import UU
from graphrec_pipeline.graph.split import heldout_visits
from graphrec_pipeline.metrics import last_block, pair_keys, rank_many_in_cities
from graphrec_pipeline.model.context import context_raw
from graphrec_pipeline.model.graphrec import GraphRec
from graphrec_pipeline.model.scoring import Scorer
from graphrec_pipeline.simple_rankers import content_scorer, popularity_scorer, random_scorer
from graphrec_pipeline.train.fit import Inputs
from graphrec_pipeline.world.affinity import WorldFeatures, l2_normalize
from graphrec_pipeline.world.config import WorldConfig
from graphrec_pipeline.world.latent import latent_taste
from graphrec_pipeline.world.oracle import joint_oracle_scorer, oracle_scorer, slot_log_prior
from graphrec_pipeline.world.social import POSITIVE_COATTENDANCE, POSITIVE_OVERLAP

HEAD_BLOCK = 262_144  # (user, place) pairs the place head scores at once
COLD_MAX_VISITS = 10  # a cold user has at most this many training-period interactions
HEAVY_MIN_VISITS = 300  # a heavy user at least this many
SOCIAL_MIN_FRIENDS = 5  # a social user has at least this many training-graph social edges


def user_segments(inputs: Inputs, train: pl.DataFrame) -> dict[str, np.ndarray]:
    """Boolean masks over users: ``cold``, ``warm`` and ``heavy`` by training-period
    interactions, and ``social``: users with at least ``SOCIAL_MIN_FRIENDS`` friends in the
    training graph (the users whose friends can tell a model something)."""
    n_users = len(inputs.users)
    visits = np.bincount(train["user_id"].to_numpy(), minlength=n_users)
    friends = np.bincount(inputs.graph[UU].edge_index[0].numpy(), minlength=n_users)
    cold, heavy = visits <= COLD_MAX_VISITS, visits >= HEAVY_MIN_VISITS
    return {"cold": cold, "warm": ~cold & ~heavy, "heavy": heavy, "social": friends >= SOCIAL_MIN_FRIENDS}


def segment_groups(task: str, positives: pl.DataFrame, segments: dict[str, np.ndarray]) -> dict:
    """The relevant pairs of ``task`` per user segment: tasks ``{task}_users_{segment}``."""
    pu, pp = positives["user_id"].to_numpy(), positives["place_id"].to_numpy()
    return {f"{task}_users_{name}": (pu[mask[pu]], pp[mask[pu]]) for name, mask in segments.items()}


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


METRIC_SCHEMA = {"model": pl.String, "task": pl.String, "metric": pl.String, "k": pl.Int32, "value": pl.Float64}


@dataclass(frozen=True)
class EvalSettings:
    """Args:
        max_users: test users sampled for the place, context and people tasks.
        seed: the sample's seed.
    """

    max_users: int = 2000
    seed: int = 0


def evaluate_all(
    inputs: Inputs,
    model: GraphRec,
    positive_rating: float,
    world: WorldConfig | None,
    max_users: int = EvalSettings.max_users,
    seed: int = EvalSettings.seed,
    recommender=None,
    lightgcn: tuple[np.ndarray, np.ndarray] | None = None,
    log=print,
    derived_labels: bool = False,
) -> pl.DataFrame:
    """``world``: the config of the generated world the tables come from, for its oracles
    (None for an imported world). ``derived_labels``: the friend labels were derived from
    the training data the model reads (an imported log's, by the §2.6 rules on its
    co-visits and taste overlap), so classifying them is circular and is not reported. ``recommender``: a :class:`Recommender` over this model's served assets, built with
    ``visited_keys=pre_test_keys(inputs)`` and ``pair_history=training_history(inputs)``;
    without one the served flow is not evaluated. ``lightgcn``: the (user, place)
    embeddings of the LightGCN baseline trained on the same graph (``baselines.py``);
    without them it is left out."""
    data = inputs.training_data(positive_rating)
    scorer = Scorer.from_graph(model, inputs.graph)
    users = inputs.users.sort("user_id")
    places = inputs.places.sort("place_id")
    n_users, n_places = len(users), len(places)
    user_unit = l2_normalize(dense_from_list(users["fine_pref"], data.widths.tags))
    place_unit = l2_normalize(dense_from_list(places["fine_tag_vector"], data.widths.tags))
    seen = pre_test_keys(inputs)
    train = inputs.interactions.filter(inputs.split["split"] == "train")
    with_oracle = world is not None
    feats = (WorldFeatures.from_tables(users, places, world.neighborhoods_per_city, latent_taste(world, users))
             if with_oracle else None)
    train_partners = coattendance.partners(train)
    history = training_history(inputs)

    scorers = {
        "graphrec": scorer.head,
        "graphrec_dot": scorer.dot,
        "graphrec_match": scorer.match,
        **({} if lightgcn is None else {"lightgcn": dot_scorer(*lightgcn)}),
        "content": content_scorer(user_unit, place_unit),
        "popularity": popularity_scorer(data.edge_place, n_places),
        "random": random_scorer(seed),
    }
    if with_oracle:
        scorers["oracle"] = last_block(oracle_scorer(feats))  # oracle_joint adds to the same block
        scorers["oracle_joint"] = joint_oracle_scorer(feats, train_partners, base=scorers["oracle"])
        scorers["oracle_observed"] = oracle_scorer(feats.observed())
    served = {} if recommender is None else {"graphrec_served": served_places(recommender)}

    visits = heldout_visits(inputs.interactions, inputs.split, "test", positive_rating)
    home = visits.filter(pl.Series(data.user_city[visits["user_id"].to_numpy()] == data.place_city[visits["place_id"].to_numpy()]))
    positives = visits.group_by("user_id", "place_id").agg(pl.col("outing").any()).sort("user_id", "place_id")
    home_positives = home.group_by("user_id", "place_id").agg(pl.col("outing").any()).sort("user_id", "place_id")
    cold = np.bincount(data.edge_place, minlength=n_places) == 0
    cold_positives = home_positives.filter(pl.Series(cold[home_positives["place_id"].to_numpy()]))
    queries = context_queries(home, max_users, seed)

    # The home-city rankings of every user that a home, cold-start or empty-context task
    # asks about, made once (each user sample is the one its task draws on its own).
    samples = {task: sample_users(np.unique(frame["user_id"].to_numpy()), max_users, seed)
               for task, frame in (("place", home_positives), ("place_cold", cold_positives))}
    union = np.unique(np.concatenate([*samples.values(), queries["user_id"].to_numpy()]))
    log(f"ranking {len(scorers) + len(served)} models over home-city places for {len(union):,} users")
    ranked = rank_users(scorers, served, union, data.user_city, data.place_city, seen)
    rows = evaluate_ranked(rows_of(ranked, union, samples["place"]), samples["place"],
                           place_groups("place", home_positives) | segment_groups("place", home_positives,
                                                                                  user_segments(inputs, train)),
                           n_places)
    if len(cold_positives):
        log(f"cold start: {len(cold_positives)} test positives at {int(cold.sum())} places without training edges")
        rows += evaluate_ranked(rows_of(ranked, union, samples["place_cold"]), samples["place_cold"],
                                place_groups("place_cold", cold_positives, ("",)), n_places)

    log("ranking over all places (smaller user sample)")
    everyone = sample_users(np.unique(positives["user_id"].to_numpy()), max(max_users // 4, 1), seed)
    everywhere = rank_users(scorers, {}, everyone, data.user_city, data.place_city, seen, all_places=True)
    rows += evaluate_ranked(everywhere, everyone, place_groups("place_all", positives, ("",)), n_places)

    log("context task: each test visit's own time slot")
    place_slot = places["typical_time_slot"].to_numpy()
    no_context = {"graphrec": "graphrec", "graphrec_served": "graphrec_served", "oracle_slot": "oracle"}

    def or_ranked(name: str, rank):
        """With a slot: ``rank``; without one: the home-city ranking already made."""
        return lambda users, slot: rank(users, slot) if slot is not None else rows_of(ranked, union, users)[no_context[name]]

    slot_rankers = context_rankers(scorer, data, seen, feats, place_slot, recommender)
    rows += evaluate_context({name: or_ranked(name, rank) for name, rank in slot_rankers.items()}, queries, home,
                             n_places)

    log("people task: test-period outing partners")
    test = inputs.interactions.filter(inputs.split["split"] == "test")
    excluded = excluded_keys(n_users, inputs.blocks)
    cos = last_block(lambda u, v: user_unit[u] @ user_unit[v].T)  # shared by the rankers of a block
    past = last_block(lambda u, v: history(u[:, None], v[None, :]))
    people = {
        "content": cos,
        "content_new": lambda u, v: cos(u, v) - 2.0 * (past(u, v) > 0),
        "past_partners": lambda u, v: past(u, v) + cos(u, v),
        "popularity": partner_popularity(train_partners, n_users),
        "random": random_scorer(seed),
    }
    if with_oracle:
        people |= oracle_scorers(world, users, past)
    served_people_rankers = {} if recommender is None else {
        "graphrec_served": served_people(recommender), "graphrec_served_new": served_people(recommender, new_people=True)}
    partners = outing_partners(train_partners, test)
    people_users = sample_users(np.unique(partners["user_id"].to_numpy()), max_users, seed)
    ranked_people = {name: rank(people_users) for name, rank in served_people_rankers.items()}
    ranked_people |= rank_many_in_cities(people, people_users, data.user_city, data.user_city, excluded, max(PEOPLE_KS))
    rows += evaluate_ranked(ranked_people, people_users, people_groups(partners), n_users, PEOPLE_KS)

    if derived_labels:
        log("friend classification skipped: the labels were derived from the same training data the model reads")
        return pl.DataFrame(rows, schema=METRIC_SCHEMA)
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
    return pl.DataFrame(rows, schema=METRIC_SCHEMA)


def context_rankers(scorer: Scorer, data, seen: np.ndarray, feats: WorldFeatures | None, place_slot: np.ndarray,
                    recommender) -> dict:
    """(users, slot or None) -> ranked ids for graphrec's head, the served flow and the oracle."""

    def head(users: np.ndarray, slot: int | None) -> np.ndarray:
        ctx = None if slot is None else context_raw(data.widths, 1, time_slot=np.array([slot]))[0]
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
        if sel.is_empty():
            return pl.DataFrame({"model": sorted(set(metrics["model"]))})
        named = sel.with_columns(name=pl.col("task") + " " + pl.col("metric") + ("" if k is None else f"@{k}"))
        return named.pivot(on="name", index="model", values="value").with_columns(pl.selectors.float().round(4))

    return {
        "places": wide(["place", "place_solo", "place_outing", "place_cold", "place_all"], ["ndcg"], 20)
        .join(wide(["place"], ["recall", "hit_rate"], 20), on="model", how="left"),
        "users": wide([f"place_users_{s}" for s in ("cold", "warm", "heavy", "social")], ["ndcg", "recall"], 20),
        "context": wide(["place_context"], ["ndcg_context", "ndcg_empty", "lift"], 20),
        "people": wide(["people", "people_new"], ["recall", "ndcg", "hit_rate"], 10),
        "friends": wide(["friend_compat", "friend_attend", "friend_attend_within_compat"], ["auc", "ap"], None),
    }

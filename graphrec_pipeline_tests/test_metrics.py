"""Metric definitions against values worked out by hand, and the shared helpers."""

import math

import numpy as np
import polars as pl
import pytest

from graphrec_pipeline import coattendance
from graphrec_pipeline.evaluation.people import outing_partners
from graphrec_pipeline.metrics import average_precision, metrics_by_group, pair_keys, ranking_metrics, roc_auc
from graphrec_pipeline_tests.conftest import TINY


def test_ranking_metrics_by_hand():
    # user 0: relevant {1, 2, 3}; ranked [1, 9, 2] -> hits at ranks 1 and 3
    # user 1: relevant {5}; ranked [7, 8, -1] -> no hit (the -1 pad is never a hit)
    n_items = 10
    ranked = np.array([[1, 9, 2], [7, 8, -1]])
    users = np.array([0, 1])
    relevant = np.sort(pair_keys(np.array([0, 0, 0, 1]), np.array([1, 2, 3, 5]), n_items))
    m = ranking_metrics(ranked, users, relevant, np.array([3, 1]), n_items, k=3)
    dcg0 = 1.0 + 1.0 / math.log2(4)
    idcg0 = 1.0 + 1.0 / math.log2(3) + 1.0 / math.log2(4)
    assert m["recall"] == pytest.approx((2 / 3 + 0) / 2)
    assert m["ndcg"] == pytest.approx((dcg0 / idcg0 + 0) / 2)
    assert m["hit_rate"] == pytest.approx(0.5)
    # k=2 sees only [1, 9]: recall is hits / |relevant| (PyG's LinkPredRecall), not / min(k, |relevant|)
    m2 = ranking_metrics(ranked, users, relevant, np.array([3, 1]), n_items, k=2)
    assert m2["recall"] == pytest.approx((1 / 3) / 2)
    assert m2["ndcg"] == pytest.approx((1.0 / (1.0 + 1.0 / math.log2(3))) / 2)


def test_a_pad_is_never_a_hit_even_where_its_key_collides():
    # user 1's pad (-1) has key 1 * 10 - 1 = 9, the key of (user 0, item 9)
    relevant = np.sort(pair_keys(np.array([0, 1]), np.array([9, 4]), 10))
    m = ranking_metrics(np.array([[-1]]), np.array([1]), relevant, np.array([1]), 10, k=1)
    assert m["hit_rate"] == 0.0


def test_roc_auc_and_average_precision_by_hand():
    labels = np.array([1, 0, 1, 0])
    scores = np.array([0.9, 0.8, 0.3, 0.1])
    # positive/negative pairs: (0.9 > 0.8), (0.9 > 0.1), (0.3 < 0.8), (0.3 > 0.1): 3 of 4
    assert roc_auc(labels, scores) == pytest.approx(0.75)
    # ranked 1, 0, 1, 0: precision at the positives 1/1 and 2/3
    assert average_precision(labels, scores) == pytest.approx((1.0 + 2 / 3) / 2)
    # a tie between a positive and a negative counts one half
    assert roc_auc(np.array([1, 0]), np.array([0.5, 0.5])) == pytest.approx(0.5)
    assert math.isnan(roc_auc(np.array([1, 1]), np.array([0.1, 0.2])))


def test_metrics_by_group_scores_each_group_over_its_own_users():
    ranked = np.array([[1, 2], [3, 4]])
    users = np.array([0, 1])
    groups = {"a": (np.array([0]), np.array([1])), "b": (np.array([1]), np.array([9]))}
    rows = {(r["group"], r["metric"]): r for r in metrics_by_group(ranked, users, groups, 10, (2,))}
    assert rows[("a", "hit_rate")]["value"] == 1.0 and rows[("a", "hit_rate")]["users"] == 1
    assert rows[("b", "hit_rate")]["value"] == 0.0 and rows[("b", "hit_rate")]["users"] == 1


def _visits(rows):
    return pl.DataFrame(rows, schema={"user_id": pl.Int64, "place_id": pl.Int64, "attended": pl.Boolean,
                                      "timestamp": pl.Datetime("us")}, orient="row")


def test_outings_and_partners_come_from_attended_visits_in_the_same_hour():
    from datetime import datetime as dt
    inter = _visits([
        (0, 5, True, dt(2026, 1, 5, 20, 10)), (1, 5, True, dt(2026, 1, 5, 20, 50)),  # together
        (2, 5, True, dt(2026, 1, 5, 21, 5)),  # next hour: alone
        (3, 5, False, dt(2026, 1, 5, 20, 30)),  # viewed, not attended
        (0, 6, True, dt(2026, 1, 6, 19, 0)), (1, 6, True, dt(2026, 1, 6, 19, 1)),  # together again
    ])
    assert coattendance.outing_mask(inter).tolist() == [True, True, False, False, True, True]
    assert coattendance.co_attendance(inter).rows() == [(0, 1, 2)]
    later = _visits([(0, 7, True, dt(2026, 3, 1, 20, 0)), (1, 7, True, dt(2026, 3, 1, 20, 0)),
                     (0, 8, True, dt(2026, 3, 2, 20, 0)), (2, 8, True, dt(2026, 3, 2, 20, 0))])
    partners = outing_partners(coattendance.partners(inter), later).sort("user_id", "partner_id")
    assert partners.rows() == [(0, 1, False), (0, 2, True), (1, 0, False), (2, 0, True)]


def test_pair_history_counts_places_together_in_either_order_and_any_shape():
    from datetime import datetime as dt
    inter = _visits([(0, 5, True, dt(2026, 1, 5, 20, 10)), (1, 5, True, dt(2026, 1, 5, 20, 50)),
                     (0, 6, True, dt(2026, 1, 6, 19, 0)), (1, 6, True, dt(2026, 1, 6, 19, 1)),
                     (3, 6, True, dt(2026, 1, 6, 19, 30)), (2, 7, True, dt(2026, 1, 7, 12, 0))])
    history = coattendance.PairHistory.from_interactions(inter, n_users=4)
    assert history(np.array([0, 1, 0, 1, 2]), np.array([1, 0, 3, 3, 2])).tolist() == [2, 2, 1, 1, 0]
    grid = history(np.array([[0], [3]]), np.arange(4)[None, :])
    assert grid.shape == (2, 4) and grid.tolist() == [[0, 2, 0, 1], [1, 1, 0, 0]]
    assert coattendance.PairHistory.from_interactions(inter.head(0), 4)(np.array([0]), np.array([1])).tolist() == [0]
    unsorted = pl.DataFrame({"user_u": [1, 0], "user_v": [2, 1], "co_attendance_count": [1, 1]})
    with pytest.raises(ValueError, match="sorted"):
        coattendance.PairHistory(unsorted, 4)


def test_people_oracle_knows_who_may_go_out_and_puts_past_partners_first_or_last(tiny_world):
    from graphrec_pipeline.evaluation.people import candidate_ranker, excluded_keys, friend_structure, oracle_scorers
    from graphrec_pipeline.world.social import sample_same_city_pairs

    users, inter = tiny_world["users"].sort("user_id"), tiny_world["interactions"]
    n = len(users)
    go = friend_structure(TINY, users)
    friends = coattendance.co_attendance(inter).filter(pl.col("co_attendance_count") >= 2)
    u, v = friends["user_u"].to_numpy(), friends["user_v"].to_numpy()
    assert len(u) > 20 and go(u, v).mean() > 0.9 and go(v, u).mean() == go(u, v).mean()
    ru, rv = sample_same_city_pairs(users, 2_000, np.random.default_rng(0))
    assert go(ru, rv).mean() < 0.5  # measured 0.19 (cities of 100, 20 neighbours each); 1.00 for friends

    history = coattendance.PairHistory.from_interactions(inter, n)
    city = users["home_city_id"].to_numpy()
    excluded = excluded_keys(n, tiny_world["user_blocks"])
    rankers = {name: candidate_ranker(score, city, excluded)
               for name, score in oracle_scorers(TINY, users, lambda a, b: history(a[:, None], b[None, :])).items()}
    mates = np.unique(np.concatenate([u, v]))[:20]
    first, last = rankers["oracle"](mates)[:, 0], rankers["oracle_new"](mates)
    assert (history(mates, first) > 0).all()
    assert (history(mates[:, None], last) == 0).all()


def test_ranking_many_scorers_by_block_equals_ranking_each_alone(tiny_world):
    """``rank_many_in_cities`` answers what ``rank_in_cities`` answers for each scorer, and
    oracles that share one ``last_block`` affinity compute it once per block."""
    from graphrec_pipeline.metrics import last_block, rank_in_cities, rank_many_in_cities
    from graphrec_pipeline.world.affinity import WorldFeatures, affinity_block
    from graphrec_pipeline.world.oracle import joint_oracle_scorer, oracle_scorer, restricted_oracle

    users, places, inter = (tiny_world[t].sort(c) for t, c in
                            (("users", "user_id"), ("places", "place_id"), ("interactions", "user_id")))
    feats = WorldFeatures.from_tables(users, places, 15)
    calls = []
    counted = lambda u, p: calls.append(len(u)) or affinity_block(feats, u, p)  # noqa: E731
    shared = last_block(counted)
    partners = coattendance.partners(inter)
    allowed = np.arange(len(places)) % 3 > 0
    scorers = {"oracle": shared, "joint": joint_oracle_scorer(feats, partners, base=shared),
               "restricted": restricted_oracle(feats, allowed, base=shared)}
    alone = {"oracle": oracle_scorer(feats), "joint": joint_oracle_scorer(feats, partners),
             "restricted": restricted_oracle(feats, allowed)}
    user_city, place_city = users["home_city_id"].to_numpy(), places["city_id"].to_numpy()
    who = np.arange(0, len(users), 2)
    seen = np.sort(pair_keys(inter["user_id"].to_numpy()[:500], inter["place_id"].to_numpy()[:500], len(places)))
    together = rank_many_in_cities(scorers, who, user_city, place_city, seen, 10, block_elements=5_000)
    for name, score in alone.items():
        np.testing.assert_array_equal(
            together[name], rank_in_cities(score, who, user_city, place_city, seen, 10, block_elements=5_000), name)
    assert sum(calls) == len(who)  # every user's affinity block once, for the three oracles
    assert (together["restricted"] >= 0).all() and allowed[together["restricted"]].all()


def test_joint_oracle_is_the_mean_affinity_of_the_partners(tiny_world):
    """The joint oracle sums the partners' features instead of scoring each partner: it
    must equal own affinity + the mean of every partner's affinity, partners of other
    cities included."""
    from graphrec_pipeline.world.affinity import WorldFeatures, affinity_block
    from graphrec_pipeline.world.oracle import joint_oracle_scorer

    users, places = tiny_world["users"].sort("user_id"), tiny_world["places"].sort("place_id")
    feats = WorldFeatures.from_tables(users, places, 15)
    partners = coattendance.partners(tiny_world["interactions"]).select("user_id", "partner_id").unique()
    partners = pl.concat([partners, pl.DataFrame({"user_id": [0, 0], "partner_id": [1, 299]})]).unique()  # far away too
    joint = joint_oracle_scorer(feats, partners)
    who, where = np.array([0, 5, 17, 123, 299]), np.arange(len(places))
    got = joint(who, where)
    for row, u in enumerate(who):
        mates = np.sort(partners.filter(pl.col("user_id") == u)["partner_id"].to_numpy())
        mean = affinity_block(feats, mates, where).mean(axis=0) if len(mates) else 0.0
        np.testing.assert_allclose(got[row], affinity_block(feats, np.array([u]), where)[0] + mean, rtol=1e-4, atol=1e-4)
    assert feats.user_city[1] != feats.user_city[0] or feats.user_city[299] != feats.user_city[0]

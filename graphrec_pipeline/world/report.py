"""Is the world learnable but not trivial? Summary statistics and a temporal hold-out.

The last ``holdout_fraction`` of the horizon is held out; a user's relevant items are the
home-city places they interacted with there and never before. Three rankers score every
home-city place the user has not seen: ``random``, ``popularity`` (training interactions
in the city) and, for generated worlds only, the ``oracle`` (the world's affinity). A
well-tuned world has popularity clearly above random and clearly below the oracle.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from graphrec_pipeline.evaluation.ranking import pair_keys, ranking_metrics, top_k
from graphrec_pipeline.world.affinity import WorldFeatures, affinity_block


def interaction_summary(users: pl.DataFrame, places: pl.DataFrame, interactions: pl.DataFrame) -> dict:
    """Interactions per user (quantiles) and the popularity long tail."""
    per_user = interactions.group_by("user_id").len()["len"]
    per_place = (
        interactions.group_by("place_id").len()["len"].sort(descending=True).to_numpy().astype(np.float64)
    )
    per_place = np.concatenate([per_place, np.zeros(len(places) - len(per_place))])
    share = np.cumsum(per_place) / max(per_place.sum(), 1.0)
    n = len(per_place)
    lorenz = np.cumsum(np.sort(per_place)) / max(per_place.sum(), 1.0)
    return {
        "interactions_per_user": {q: float(per_user.quantile(q)) for q in (0.0, 0.1, 0.5, 0.9, 0.99, 1.0)},
        "users_without_interactions": int(len(users) - len(per_user)),
        "top_1pct_places_share": float(share[max(int(0.01 * n) - 1, 0)]),
        "top_10pct_places_share": float(share[max(int(0.10 * n) - 1, 0)]),
        "places_without_interactions": int((per_place == 0).sum()),
        "popularity_gini": float(1.0 - 2.0 * lorenz.mean() + 1.0 / n),
    }


def holdout_recall(
    users: pl.DataFrame,
    places: pl.DataFrame,
    interactions: pl.DataFrame,
    n_neighborhoods: int,
    with_oracle: bool,
    k: int = 20,
    holdout_fraction: float = 0.2,
    max_users: int = 5000,
    seed: int = 0,
) -> dict[str, dict[str, float]]:
    """Recall/NDCG/HitRate@k of random, popularity and oracle rankers on the hold-out."""
    users = users.sort("user_id")
    n_places = len(places)
    t0, t1 = interactions["timestamp"].min(), interactions["timestamp"].max()
    cutoff = t0 + (t1 - t0) * (1.0 - holdout_fraction)
    city_of_user = users["home_city_id"].to_numpy()
    city_of_place = places.sort("place_id")["city_id"].to_numpy()

    train = interactions.filter(pl.col("timestamp") < cutoff).select("user_id", "place_id").unique()
    seen = np.sort(pair_keys(train["user_id"].to_numpy(), train["place_id"].to_numpy(), n_places))
    test = interactions.filter(pl.col("timestamp") >= cutoff).select("user_id", "place_id").unique()
    tu, tp = test["user_id"].to_numpy(), test["place_id"].to_numpy()
    keys = pair_keys(tu, tp, n_places)
    new = ~np.isin(keys, seen, assume_unique=False) & (city_of_user[tu] == city_of_place[tp])
    relevant = np.sort(keys[new])
    n_rel = np.bincount(tu[new], minlength=len(users))

    eval_users = np.flatnonzero(n_rel > 0)
    rng = np.random.default_rng(seed)
    if len(eval_users) > max_users:
        eval_users = np.sort(rng.choice(eval_users, max_users, replace=False))

    counts = np.bincount(train["place_id"].to_numpy(), minlength=n_places).astype(np.float64)
    rankers = {
        "random": lambda u, p: rng.random((len(u), len(p))),
        "popularity": lambda u, p: np.broadcast_to(counts[p], (len(u), len(p))),
    }
    if with_oracle:
        feats = WorldFeatures.from_tables(users, places, n_neighborhoods)
        rankers["oracle"] = lambda u, p: affinity_block(feats, u, p)

    results: dict[str, dict[str, float]] = {}
    for name, score in rankers.items():
        ranked_all = np.empty((len(eval_users), k), dtype=np.int64)
        for city in np.unique(city_of_user[eval_users]):
            sel = city_of_user[eval_users] == city
            cands = np.flatnonzero(city_of_place == city)
            ranked = top_k(score, eval_users[sel], cands, k, n_places, seen)
            ranked_all[sel] = np.pad(ranked, ((0, 0), (0, k - ranked.shape[1])), constant_values=-1)
        results[name] = ranking_metrics(ranked_all, eval_users, relevant, n_rel[eval_users], n_places, k)
    results["_"] = {"eval_users": float(len(eval_users)), "k": float(k)}
    return results

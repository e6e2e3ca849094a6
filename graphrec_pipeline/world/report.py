"""Is the world learnable, not trivial, and free of artifacts? Summaries and a hold-out.

The last ``holdout_fraction`` of the horizon is held out. A user's positives are the
home-city places they rated >= ``positive_rating`` there and never visited before; a
positive is an *outing* when one of those visits was co-attended (``coattendance.py``),
else *solo*. Every ranker scores every home-city place the user has not seen:

* ``random``, ``popularity`` (training-period interactions), ``content`` (cosine of
  ``fine_pref`` and ``fine_tag_vector``);
* for generated worlds, ``oracle`` and ``oracle_joint`` (``world/oracle.py``),
  ``oracle_observed`` (the stated part of the affinity alone, ``world/latent.py``), and two
  traps: the oracle among places that had a training-period outing
  (``oracle_outing_places``) and among the fifth of places with the most of them
  (``oracle_outing_hotspots``). A world whose outings pile onto a few places lets them
  beat the oracle.

Calibration targets (docs/benchmarks.md): the better oracle >= 2x popularity and >= 1.3x
content, the trap <= 0.8x the better oracle, outings no more concentrated on places than
solo visits (Gini of outing traffic <= Gini of solo traffic + 0.05), and, with latent
taste, the observed-only oracle at most 0.6x the full oracle: most taste shows only in
behaviour.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from graphrec_pipeline.defaults import POSITIVE_RATING, TOP_K
from graphrec_pipeline import coattendance
from graphrec_pipeline.columns import dense_from_list
from graphrec_pipeline.metrics import last_block, metrics_by_group, pair_keys, rank_many_in_cities
from graphrec_pipeline.simple_rankers import content_scorer, popularity_scorer, random_scorer
from graphrec_pipeline.world.affinity import WorldFeatures, l2_normalize
from graphrec_pipeline.world.config import WorldConfig
from graphrec_pipeline.world.latent import latent_taste
from graphrec_pipeline.world.oracle import joint_oracle_scorer, oracle_scorer, restricted_oracle

HOTSPOT_SHARE = 0.2


def gini(counts: np.ndarray) -> float:
    """Gini coefficient of non-negative counts (0: equal, 1: all on one item)."""
    c = np.sort(np.asarray(counts, dtype=np.float64))
    if len(c) == 0 or c.sum() == 0:
        return 0.0
    lorenz = np.cumsum(c) / c.sum()
    return float(1.0 - 2.0 * lorenz.mean() + 1.0 / len(c))


def interaction_summary(users: pl.DataFrame, places: pl.DataFrame, interactions: pl.DataFrame) -> dict:
    """Interactions per user (quantiles) and the popularity long tail."""
    per_user = interactions.group_by("user_id").len()["len"]
    per_place = np.bincount(interactions["place_id"].to_numpy(), minlength=len(places)).astype(np.float64)
    share = np.cumsum(np.sort(per_place)[::-1]) / max(per_place.sum(), 1.0)
    n = len(per_place)
    return {
        "interactions_per_user": {q: float(per_user.quantile(q)) for q in (0.0, 0.1, 0.5, 0.9, 0.99, 1.0)},
        "users_without_interactions": int(len(users) - len(per_user)),
        "top_1pct_places_share": float(share[max(int(0.01 * n) - 1, 0)]),
        "top_10pct_places_share": float(share[max(int(0.10 * n) - 1, 0)]),
        "places_without_interactions": int((per_place == 0).sum()),
        "popularity_gini": gini(per_place),
    }


def holdout_benchmark(
    users: pl.DataFrame,
    places: pl.DataFrame,
    interactions: pl.DataFrame,
    n_neighborhoods: int,
    world: WorldConfig | None,
    k: int = TOP_K,
    holdout_fraction: float = 0.2,
    positive_rating: float = POSITIVE_RATING,
    max_users: int = 5000,
    seed: int = 0,
) -> tuple[pl.DataFrame, dict]:
    """Rankers x {all, solo, outing} positives: (ranker, positives, metric, k, value, users)
    rows, and the calibration figures (traffic concentration, shares, target ratios).
    ``world``: the generated world's config, for the oracles (None: an imported world)."""
    users, places = users.sort("user_id"), places.sort("place_id")
    n_places = len(places)
    user_city, place_city = users["home_city_id"].to_numpy(), places["city_id"].to_numpy()
    t0, t1 = interactions["timestamp"].min(), interactions["timestamp"].max()
    cutoff = t0 + (t1 - t0) * (1.0 - holdout_fraction)
    tagged = interactions.select("user_id", "place_id", "timestamp", "implicit_rating").with_columns(
        outing=pl.Series(coattendance.outing_mask(interactions)), held=pl.col("timestamp") >= cutoff
    )
    train = tagged.filter(~pl.col("held"))
    seen = np.sort(pair_keys(train["user_id"].to_numpy(), train["place_id"].to_numpy(), n_places))
    positives = (
        tagged.filter(pl.col("held") & (pl.col("implicit_rating") >= positive_rating))
        .group_by("user_id", "place_id").agg(outing=pl.col("outing").any())
        .join(train.select("user_id", "place_id").unique(), on=["user_id", "place_id"], how="anti")
        .sort("user_id", "place_id")
    )
    pu, pp, po = (positives[c].to_numpy() for c in ("user_id", "place_id", "outing"))
    home = user_city[pu] == place_city[pp]
    pu, pp, po = pu[home], pp[home], po[home]
    groups = {"all": (pu, pp), "solo": (pu[~po], pp[~po]), "outing": (pu[po], pp[po])}

    eval_users = np.unique(pu)
    rng = np.random.default_rng(seed)
    if len(eval_users) > max_users:
        eval_users = np.sort(rng.choice(eval_users, max_users, replace=False))

    user_unit = l2_normalize(dense_from_list(users["fine_pref"]))
    place_unit = l2_normalize(dense_from_list(places["fine_tag_vector"]))
    train_outings = train.filter(pl.col("outing"))
    rankers = {
        "random": random_scorer(seed),
        "popularity": popularity_scorer(train["place_id"].to_numpy(), n_places),
        "content": content_scorer(user_unit, place_unit),
    }
    if world is not None:
        feats = WorldFeatures.from_tables(users, places, n_neighborhoods, latent_taste(world, users))
        affinity = last_block(oracle_scorer(feats))  # one affinity block for the four oracles
        rankers["oracle"] = affinity
        rankers["oracle_observed"] = oracle_scorer(feats.observed())
        partners = coattendance.partners(interactions.filter(pl.col("timestamp") < cutoff))
        rankers["oracle_joint"] = joint_oracle_scorer(feats, partners, base=affinity)
        outings_per_place = np.bincount(train_outings["place_id"].to_numpy(), minlength=n_places)
        hotspots = outings_per_place >= np.quantile(outings_per_place, 1.0 - HOTSPOT_SHARE)
        rankers["oracle_outing_places"] = restricted_oracle(feats, outings_per_place > 0, base=affinity)
        rankers["oracle_outing_hotspots"] = restricted_oracle(feats, hotspots & (outings_per_place > 0), base=affinity)

    rows = []
    for name, ranked in rank_many_in_cities(rankers, eval_users, user_city, place_city, seen, k).items():
        for r in metrics_by_group(ranked, eval_users, groups, n_places, (k,)):
            rows.append({"ranker": name, "positives": r.pop("group"), **r})
    table = pl.DataFrame(rows)
    return table, calibration(table, tagged, train_outings, places, pu, pp, po)


def calibration(table: pl.DataFrame, tagged: pl.DataFrame, train_outings: pl.DataFrame, places: pl.DataFrame,
                pu: np.ndarray, pp: np.ndarray, po: np.ndarray) -> dict:
    n_places = len(places)
    place = tagged["place_id"].to_numpy()
    outing = tagged["outing"].to_numpy()
    train_places = np.zeros(n_places, bool)
    train_places[tagged.filter(~pl.col("held"))["place_id"].to_numpy()] = True
    outing_places = np.zeros(n_places, bool)
    outing_places[train_outings["place_id"].to_numpy()] = True
    out = {
        "gini_outing_traffic": gini(np.bincount(place[outing], minlength=n_places)),
        "gini_solo_traffic": gini(np.bincount(place[~outing], minlength=n_places)),
        "outing_share_of_interactions": float(outing.mean()) if len(outing) else 0.0,
        "outing_share_of_positives": float(po.mean()) if len(po) else 0.0,
    }
    for kind, sel in (("solo", ~po), ("outing", po)):
        out[f"{kind}_positives_at_trained_places"] = float(train_places[pp[sel]].mean()) if sel.any() else 0.0
        out[f"{kind}_positives_at_outing_places"] = float(outing_places[pp[sel]].mean()) if sel.any() else 0.0
    ndcg = {r["ranker"]: r["value"] for r in table.filter((pl.col("positives") == "all") & (pl.col("metric") == "ndcg"))
            .iter_rows(named=True)}
    if "oracle" in ndcg:
        best = max(ndcg["oracle"], ndcg["oracle_joint"])
        out |= {
            "best_oracle_ndcg": best,
            "best_oracle_over_popularity": best / max(ndcg["popularity"], 1e-12),
            "best_oracle_over_content": best / max(ndcg["content"], 1e-12),
            "observed_oracle_over_oracle": ndcg["oracle_observed"] / max(ndcg["oracle"], 1e-12),
            "outing_places_rule_over_best_oracle": ndcg["oracle_outing_places"] / max(best, 1e-12),
            "outing_hotspots_rule_over_best_oracle": ndcg["oracle_outing_hotspots"] / max(best, 1e-12),
        }
    return out

"""How much the graph could still add in this world: two graph-derived terms on the trained
model, and the ceiling of the attendance task.

The trained place score is carried by the learned preference match of stated tastes
(docs/benchmarks.md, "The test-split evaluation"). What the node features do not show, and
only interactions can, is (a) which neighbourhoods a user frequents beyond home, and (b)
whom a user goes out with. This script adds each to the model's preference match as a
fixed, graph-derived term:

* ``areas``: ``w_a * share_u(location_p)``, the share of u's training edges at the place's
  (city, neighbourhood) location (a 1-hop mean over the interaction edges);
* ``partners``: ``w_t * cos(mean partner taste_u, tags_p)``, the stated tastes of u's
  training-period outing partners, weighted by co-attendance (a 1-hop mean over the
  co-attendance ties), against the place's tags,

picks each weight on the validation visits (home-city NDCG@20) and reports the test
split beside the match alone and the oracles. Both are computed from training-period data
only. A term that moves test NDCG by a few per cent is what message passing could add here.

Attendance (``friend_attend_within_compat``): the world draws ``label_attend`` from
``min(1, overlap * (1 + co_attendance / 10))`` with co-attendance over *all* periods, so
ranking by that probability is the best any scorer can do in expectation (it is the label's
own probability). The script reports its AUC, the same rule with training-period
co-attendance only (what an honest model can know), the cosine and the trained model with
and without its learned term on the pair's training-period co-attendance.

    python benchmarks/graph_headroom.py --data-dir data [--users 2000]
"""

from __future__ import annotations

import argparse

import numpy as np
import polars as pl
import torch

from common import append_result, log
from graphrec_pipeline.world.config import WorldConfig
from graphrec_pipeline.world.latent import latent_taste
from graphrec_pipeline import coattendance
from graphrec_pipeline.coattendance import PairHistory
from graphrec_pipeline.columns import dense_from_list
from graphrec_pipeline.constants import C_FINE
from graphrec_pipeline.evaluation.evaluate import evaluate_places, scored
from graphrec_pipeline.evaluation.run import pre_test_keys, training_history
from graphrec_pipeline.graph.split import SplitConfig, heldout_visits
from graphrec_pipeline.metrics import pair_keys, roc_auc
from graphrec_pipeline.model.scoring import Scorer
from graphrec_pipeline.releases import DataDir
from graphrec_pipeline.train.fit import Inputs
from graphrec_pipeline.model.saved import load_model
from graphrec_pipeline.world.affinity import WorldFeatures, l2_normalize
from graphrec_pipeline.world.oracle import joint_oracle_scorer, oracle_scorer

AREA_WEIGHTS = (0.5, 1.0, 2.0, 4.0)
TASTE_WEIGHTS = (0.5, 1.0, 2.0, 4.0)


def area_shares(user: np.ndarray, place: np.ndarray, location: np.ndarray, n_users: int) -> np.ndarray:
    """(n_users, n_locations) share of each user's edges at each place location."""
    n_loc = int(location.max()) + 1
    counts = np.bincount(user * n_loc + location[place], minlength=n_users * n_loc).reshape(n_users, n_loc)
    return (counts / np.maximum(counts.sum(1, keepdims=True), 1)).astype(np.float32)


def partner_tastes(partners: pl.DataFrame, taste: np.ndarray) -> np.ndarray:
    """(n_users, d) unit mean of the partners' tastes, weighted by co-attendance (0 without partners)."""
    u, v, w = (partners[c].to_numpy() for c in ("user_id", "partner_id", "co_attendance_count"))
    n = len(taste)
    adj = torch.sparse_coo_tensor(np.stack([u, v]), w.astype(np.float32), (n, n), check_invariants=True).coalesce()
    return l2_normalize((adj @ torch.from_numpy(taste)).numpy()).astype(np.float32)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-dir", default="data")
    ap.add_argument("--users", type=int, default=2000)
    args = ap.parse_args()
    store = DataDir.at(args.data_dir).live()
    inputs, model = Inputs.load(store), load_model(store)
    positive_rating = SplitConfig().positive_rating
    data = inputs.training_data(positive_rating)
    log("embedding the training graph")
    scorer = Scorer.from_graph(model, inputs.graph)
    users, places = inputs.users.sort("user_id"), inputs.places.sort("place_id")
    n_users, n_places = len(users), len(places)
    n_per_city = model.cfg.neighborhoods_per_city
    location = places["city_id"].to_numpy() * n_per_city + places["neighborhood_id"].to_numpy()
    areas = area_shares(data.edge_user, data.edge_place, location, n_users)
    train = inputs.interactions.filter(inputs.split["split"] == "train")
    partners = coattendance.partners(train)
    user_unit = l2_normalize(dense_from_list(users["fine_pref"], C_FINE)).astype(np.float32)
    place_unit = l2_normalize(dense_from_list(places["fine_tag_vector"], C_FINE)).astype(np.float32)
    mates = partner_tastes(partners, user_unit)

    train_keys = np.sort(pair_keys(*(inputs.train_pairs()[c].to_numpy() for c in ("user_id", "place_id")), n_places))
    sets = {}
    for split, seen in (("val", train_keys), ("test", pre_test_keys(inputs))):
        v = heldout_visits(inputs.interactions, inputs.split, split, positive_rating)
        v = v.filter(pl.Series(data.user_city[v["user_id"].to_numpy()] == data.place_city[v["place_id"].to_numpy()]))
        sets[split] = (v.group_by("user_id", "place_id").agg(pl.col("outing").any()).sort("user_id", "place_id"), seen)

    def ndcg(score, split: str) -> dict[str, float]:
        positives, seen = sets[split]
        rows = evaluate_places({"m": scored(score, data.user_city, data.place_city, seen)}, positives, n_places,
                               max_users=args.users)
        return {r["task"]: round(r["value"], 4) for r in rows if r["metric"] == "ndcg" and r["k"] == 20}

    def with_terms(wa: float, wt: float):
        return lambda u, p: scorer.match(u, p) + wa * areas[u][:, location[p]] + wt * (mates[u] @ place_unit[p].T)

    feats = WorldFeatures.from_tables(users, places, n_per_city, latent_taste(WorldConfig(), users))  # default world
    for name, score in (("graphrec_match", scorer.match), ("oracle", oracle_scorer(feats)),
                        ("oracle_joint", joint_oracle_scorer(feats, partners))):
        log(f"ranking by {name}")
        append_result("graph_headroom.jsonl", {"ranker": name, "val": ndcg(score, "val"), "test": ndcg(score, "test")})
    grid = [(a, t) for a in (0.0, *AREA_WEIGHTS) for t in (0.0, *TASTE_WEIGHTS) if a or t]
    results = []
    for wa, wt in grid:
        results.append({"ranker": "match + areas + partners' taste", "weights": [wa, wt],
                        "val": ndcg(with_terms(wa, wt), "val"), "test": ndcg(with_terms(wa, wt), "test")})
        append_result("graph_headroom.jsonl", results[-1])
    for split in ("val", "test"):
        best = max(results, key=lambda r: r[split]["place"])
        log(f"best on {split} (home-city NDCG@20): weights {best['weights']}, test {best['test']}")

    for split in ("val", "test"):
        for name, auc in attendance(inputs, scorer, user_unit, split).items():
            append_result("graph_headroom.jsonl", {"split": split, "attend_within_compat_auc": name, "value": auc})


def attendance(inputs: Inputs, scorer: Scorer, user_unit: np.ndarray, split: str) -> dict[str, float]:
    """AUC of attendance among the compatible label pairs of ``split``, per scorer."""
    labels = inputs.labels.with_columns(split=inputs.friend_split["split"]).filter(
        (pl.col("split") == split) & (pl.col("label_compat") == 1))
    u, v, y = (labels[c].to_numpy() for c in ("user_u", "user_v", "label_attend"))
    n = len(user_unit)
    overlap = np.clip(np.einsum("ij,ij->i", user_unit[u], user_unit[v]), 0.0, 1.0)
    every = PairHistory.from_interactions(inputs.interactions, n)(u, v)
    past = training_history(inputs)(u, v)
    rule = lambda c: np.minimum(1.0, overlap * (1.0 + c / 10.0))  # noqa: E731
    out = {
        "the label's own probability (all periods: the ceiling)": rule(every),
        "the rule on training-period co-attendance": rule(past),
        "cosine": overlap,
        "graphrec (its attendance, with the pair's training-period outings)": scorer.friend(u, v, history=past)[1],
        "graphrec without its history term": scorer.friend(u, v)[1],
    }
    return {name: round(roc_auc(y, s), 4) for name, s in out.items()} | {"pairs": len(y)}


if __name__ == "__main__":
    main()

"""How many of next period's *new* outing partners anyone could rank in the top 10.

The evaluation's ``oracle_new`` (``evaluation/people.py``) ranks by the world's own rule of
who may go out together (each other's similar-user candidates, at least
``FRIEND_MIN_OVERLAP`` alike), then cosine. New partners the rule does not allow are
strangers who were at the same place in the same hour by chance; the best foresight of
those uses the generator's own visit probabilities, ``P_u`` = softmax of the world's
affinity over the user's home city (``world/affinity.py``). This script reports, on the
``people_new`` task of the evaluation (2,000 users, past partners last):

* the share of new partners that the rule allows;
* cosine (``content_new``) and the rule (``oracle_new``);
* the rule plus ``b P_u . P_v`` for a small grid of mixes, picked on the test set itself,
  so the best of them is an upper estimate of what the tables allow;
* the rule plus ``b`` times the cosine of the two users' training-period visits (what a
  model could see instead of ``P``).

    python benchmarks/people_ceiling.py --data-dir data

The data directory must hold a world generated with the default world settings (its
latent tastes are rebuilt from them).
"""

from __future__ import annotations

import argparse

import numpy as np
import polars as pl

from common import append_result, log
from graphrec_pipeline import coattendance
from graphrec_pipeline.constants import N_NEIGHBORHOODS_PER_CITY
from graphrec_pipeline.evaluation.people import (
    candidate_ranker,
    evaluate_people,
    excluded_keys,
    friend_structure,
    outing_partners,
)
from graphrec_pipeline.evaluation.run import training_history
from graphrec_pipeline.releases import DataDir
from graphrec_pipeline.train.fit import Inputs
from graphrec_pipeline.world.affinity import WorldFeatures, affinity_block, l2_normalize
from graphrec_pipeline.world.config import WorldConfig
from graphrec_pipeline.world.latent import latent_taste
from graphrec_pipeline.world.social import fine_pref_unit


def visit_probabilities(users: pl.DataFrame, places: pl.DataFrame, user_city: np.ndarray) -> np.ndarray:
    """(users, places) softmax of the world's affinity over each user's home city (0 elsewhere)."""
    f = WorldFeatures.from_tables(users, places, N_NEIGHBORHOODS_PER_CITY, latent_taste(WorldConfig(), users))
    place_city = places["city_id"].to_numpy()
    p = np.zeros((len(users), len(places)), np.float32)
    for c in np.unique(user_city):
        us, ps = np.flatnonzero(user_city == c), np.flatnonzero(place_city == c)
        s = affinity_block(f, us, ps)
        s = np.exp(s - s.max(axis=1, keepdims=True))
        p[np.ix_(us, ps)] = s / s.sum(axis=1, keepdims=True)
    return p


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-dir", default="data")
    ap.add_argument("--users", type=int, default=2000)
    args = ap.parse_args()
    inputs = Inputs.load(DataDir.at(args.data_dir).live())
    split = inputs.split["split"]
    train = inputs.interactions.filter(split == "train")
    partners = outing_partners(coattendance.partners(train), inputs.interactions.filter(split == "test"))
    users, places = inputs.users.sort("user_id"), inputs.places.sort("place_id")
    n, city = len(users), users["home_city_id"].to_numpy()
    excluded = excluded_keys(n, inputs.blocks)
    history = training_history(inputs)
    unit = fine_pref_unit(users)
    go = friend_structure(WorldConfig(), users)

    new = partners.filter(pl.col("new"))
    allowed = float(go(new["user_id"].to_numpy(), new["partner_id"].to_numpy()).mean())
    append_result("people_ceiling.jsonl", {"new_partners": len(new), "share_the_rule_allows": round(allowed, 4)})

    def recall(name: str, score) -> float:
        ranked = candidate_ranker(lambda u, v: score(u, v) - 8.0 * (history(u[:, None], v[None, :]) > 0), city, excluded)
        rows = evaluate_people({name: ranked}, partners, n, max_users=args.users)
        value = next(r["value"] for r in rows if r["task"] == "people_new" and r["metric"] == "recall")
        append_result("people_ceiling.jsonl", {"ranker": name, "people_new_recall10": round(value, 4)})
        return value

    cos = lambda u, v: unit[u] @ unit[v].T  # noqa: E731
    rule = lambda u, v: 2.0 * go(u[:, None], v[None, :])  # noqa: E731
    recall("cosine", cos)
    recall("rule + cosine (oracle_new)", lambda u, v: rule(u, v) + cos(u, v))

    log("visit probabilities from the world's affinity")
    p = visit_probabilities(users, places, city)
    best = 0.0
    for cos_weight in (0.0, 0.3, 1.0):
        for b in (30.0, 50.0, 80.0):
            best = max(best, recall(f"rule + {cos_weight} cosine + {b} P_u.P_v",
                                    lambda u, v, w=cos_weight, b=b: rule(u, v) + w * cos(u, v) + b * (p[u] @ p[v].T)))
    visits = np.zeros((n, len(places)), np.float32)
    np.add.at(visits, (train["user_id"].to_numpy(), train["place_id"].to_numpy()), 1.0)
    visits = l2_normalize(np.log1p(visits))
    for b in (0.5, 1.0, 2.0):
        recall(f"rule + cosine + {b} training-visit cosine",
               lambda u, v, b=b: rule(u, v) + cos(u, v) + b * (visits[u] @ visits[v].T))
    append_result("people_ceiling.jsonl", {"upper_estimate": round(best, 4)})


if __name__ == "__main__":
    main()

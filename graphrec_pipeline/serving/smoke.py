"""The serving smoke test: a fixed sample of place and people queries through a
:class:`Recommender`, each expected to return ``k`` results wherever the city has ``k``
eligible items. What is eligible is counted from the tables with Polars, independently of
the recommender's own filters, so a filter bug shows as a short or long answer."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from graphrec_pipeline.serving.query import NoCandidatesError, PeopleQuery, PlaceQuery
from graphrec_pipeline.serving.recommender import Recommender
from graphrec_pipeline.storage import Storage
from graphrec_pipeline.taxonomy import TIME_SLOTS
from graphrec_pipeline.vocabulary import TAXONOMY, Vocabulary


def sample_queries(user_city: np.ndarray, place_city: np.ndarray, n: int, seed: int,
                   vocabulary: Vocabulary = TAXONOMY) -> list[tuple[str, dict]]:
    """A fixed mix of place and people queries over random users, with and without context
    and filters (an outing's target place is in the user's city), in the world's vocabulary."""
    rng = np.random.default_rng(seed)
    users = rng.choice(len(user_city), size=min(n, len(user_city)), replace=False)
    queries = []
    for i, u in enumerate(users.tolist()):
        slot = TIME_SLOTS[i % len(TIME_SLOTS)]
        cat = vocabulary.categories[i % len(vocabulary.categories)]
        tag = vocabulary.tags[(7 * i) % len(vocabulary.tags)]
        queries += [
            ("places", {"user_id": u, "k": 10}),
            ("places", {"user_id": u, "k": 10, "time_slot": slot, "tags": [tag], "categories": [cat], "max_price": 2}),
            ("people", {"user_id": u, "k": 10}),
            ("people", {"user_id": u, "k": 10, "activity_tags": [tag],
                        "target_place_id": int(rng.choice(np.flatnonzero(place_city == user_city[u])))}),
        ]
    return queries


class EligibleCounts:
    """How many items a query may return at most, counted from the tables."""

    def __init__(self, store: Storage):
        self.users = store.read_table("users", columns=["user_id", "home_city_id"])
        self.places = store.read_table("places", columns=["place_id", "city_id", "category_ids", "price_band"])
        self.visits = store.read_table("interactions", columns=["user_id", "place_id"]).unique()
        blocks = store.read_table("user_blocks", columns=["user_id", "blocked_user_id"])
        self.blocks = pl.concat([blocks, blocks.select(user_id="blocked_user_id", blocked_user_id="user_id")])

    def home(self, user: int) -> int:
        return int(self.users.filter(pl.col("user_id") == user)["home_city_id"][0])

    def places_for(self, user: int, query: PlaceQuery, exclude_visited: bool = True) -> int:
        city = self.home(user) if query.city_id is None else query.city_id
        ok = self.places.filter(pl.col("city_id") == city)
        if query.categories:
            ok = ok.filter(pl.col("category_ids").list.eval(pl.element().is_in(list(query.categories))).list.any())
        if query.max_price is not None:
            ok = ok.filter(pl.col("price_band") <= query.max_price)
        if exclude_visited:
            ok = ok.join(self.visits.filter(pl.col("user_id") == user), on="place_id", how="anti")
        return len(ok)

    def people_for(self, user: int, query: PeopleQuery) -> int:
        city = self.home(user) if query.city_id is None else query.city_id
        blocked = self.blocks.filter(pl.col("user_id") == user)["blocked_user_id"]
        return len(self.users.filter((pl.col("home_city_id") == city) & (pl.col("user_id") != user)
                                     & ~pl.col("user_id").is_in(blocked.implode())))


@dataclass
class SmokeReport:
    queries: int
    example_user: int
    failures: list[str] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)


def smoke_test(rec: Recommender, n_users: int = 25, seed: int = 0) -> SmokeReport:
    """Run :func:`sample_queries` through ``rec``; every error and every answer whose length
    differs from ``min(k, eligible)`` is a failure."""
    counts = EligibleCounts(rec.store)
    queries = sample_queries(rec.world.user_city, rec.world.place_city, n_users, seed, rec.vocabulary)
    if not rec.world.has_social:  # people recommendation answers that it has no social data
        queries = [q for q in queries if q[0] == "places"]
    report = SmokeReport(queries=len(queries), example_user=int(queries[0][1]["user_id"]))
    for kind, raw in queries:
        args = {k: v for k, v in raw.items() if k != "user_id"}
        user = raw["user_id"]
        try:
            if kind == "places":
                want = min(raw["k"], counts.places_for(user, PlaceQuery.parse(**args, vocabulary=rec.vocabulary),
                                                        rec.place_flow.exclude_visited))
            else:
                want = min(raw["k"], counts.people_for(user, PeopleQuery.parse(**args, vocabulary=rec.vocabulary)))
            start = time.perf_counter()
            got = (rec.recommend_places if kind == "places" else rec.recommend_people)(user, **args)
            report.latencies_ms.append((time.perf_counter() - start) * 1e3)
            if len(got) != want:
                report.failures.append(f"{kind} {raw}: {len(got)} results, expected {want}")
        except NoCandidatesError as err:
            if want:
                report.failures.append(f"{kind} {raw}: {err}, but {want} items are eligible")
        except (ValueError, RuntimeError) as err:  # QueryError and AssetError included
            report.failures.append(f"{kind} {raw}: {type(err).__name__}: {err}")
    return report

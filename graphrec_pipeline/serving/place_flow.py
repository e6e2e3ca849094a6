"""The place flow (§6.3): which places a user may be shown, how the place head scores
them under the query's context, and the results it builds.

The context (time slot, categories, tags) acts only through the trained model: its head,
bilinear match and learned per-dimension match on the place's tags, categories and slot;
there is no hand-written boost. Categories are also a hard filter, as is ``max_price``.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from graphrec_pipeline.model.context import context_raw
from graphrec_pipeline.model.pair_heads import PairHeads
from graphrec_pipeline.serving.explain import explain_places, place_names
from graphrec_pipeline.serving.query import PlaceQuery
from graphrec_pipeline.serving.results import PlaceRecommendation
from graphrec_pipeline.serving.world_view import WorldView


class PlaceFlow:
    """Filter, score and build place results for a :class:`PlaceQuery`."""

    kind = "place"

    def __init__(self, world: WorldView, heads: PairHeads, z_user: torch.Tensor, sides: torch.Tensor,
                 exclude_visited: bool = True):
        self.world, self.heads, self.z_user, self.exclude_visited = world, heads, z_user, exclude_visited
        self.sides = sides  # the users' sides weighted for the head's preference match (model/preference.py)
        vocab = world.vocabulary  # category and neighbourhood names, computed once
        self.category_names = np.array([vocab.category(c) for c in range(world.widths.categories)], dtype=object)
        self.neighborhood = functools.lru_cache(maxsize=4096)(vocab.neighborhood)

    def context(self, query: PlaceQuery) -> np.ndarray:
        """The raw context vector of the query (slot one-hot, categories, tags)."""
        categories = np.zeros((1, self.world.widths.categories), np.float32)
        categories[0, list(query.categories)] = 1.0
        tags = np.zeros((1, self.world.widths.tags), np.float32)
        tags[0, list(query.tags)] = 1.0
        return context_raw(self.world.widths, 1, time_slot=np.array([query.time_slot]), categories=categories, tags=tags)[0]

    def extra(self, query: PlaceQuery, users: np.ndarray, city: int) -> None:
        """Places come from the index alone."""
        return None

    def keep(self, query: PlaceQuery, users: np.ndarray, ids: np.ndarray) -> np.ndarray:
        """Unvisited (unless configured otherwise) and passing the hard filters."""
        w = self.world
        ok = ~w.visited(users, ids) if self.exclude_visited else np.ones(ids.shape, dtype=bool)
        if query.categories:
            ok &= w.place_categories[ids][..., list(query.categories)].any(axis=-1)
        if query.max_price is not None:
            ok &= w.place_price[ids] <= query.max_price
        return ok

    def scores(self, users: np.ndarray, places: np.ndarray, ctx_raw: np.ndarray) -> np.ndarray:
        """Place-head logits ``s_place(u, p | ctx)``, (b, m), of ``users[i]`` for ``places[i]``."""
        rows = torch.from_numpy(np.asarray(users, np.int64))
        (score,) = self.heads(self.z_user[rows], torch.from_numpy(ctx_raw), torch.from_numpy(np.asarray(places, np.int64)),
                              self.sides[rows])
        return score.numpy()

    def score(self, query: PlaceQuery, users: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        key = self.scores(users, ids, self.context(query))
        return key, [key]

    def build(self, query: PlaceQuery, user: int, ids: np.ndarray, extras: list[np.ndarray]) -> list[PlaceRecommendation]:
        w = self.world
        reasons = explain_places(w.fine_pref[user], w.cat_pref[user], w.area[user], int(w.user_city[user]),
                                 w.place_tags[ids], w.place_categories[ids], w.place_city[ids],
                                 w.place_neighborhood[ids], w.place_slot[ids], query.time_slot,
                                 np.array(query.tags, dtype=np.int64), w.vocabulary)
        names = (place_names(w.place_tags[ids], ids, w.vocabulary) if w.place_names is None
                 else w.place_names[ids].tolist())
        categories = [self.category_names[row].tolist() for row in w.place_categories[ids] > 0]  # k rows
        return [
            PlaceRecommendation(
                place_id=p, place_key=w.place_key(p), name=name, city_id=city, neighborhood=self.neighborhood(city, hood),
                categories=cats, price_band=price, score=sc, explanations=[r.text for r in why], reasons=why,
            )
            for p, name, city, hood, cats, price, sc, why in zip(
                ids.tolist(), names, w.place_city[ids].tolist(), w.place_neighborhood[ids].tolist(), categories,
                w.place_price[ids].tolist(), extras[0].tolist(), reasons, strict=True)
        ]


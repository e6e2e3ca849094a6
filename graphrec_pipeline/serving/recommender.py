"""Online recommendation (§6.3 places, §6.4 people) from the materialized assets.

:class:`Recommender` loads the embeddings, the per-city indexes, the trained heads and the
few table columns it needs once, then answers a single query in 2-4 ms on one CPU core:

* places: the ``M`` nearest places to ``z_u`` in the city's place index, hard filters
  (never-visited, categories, price), the place score with the query's context
  (time slot, categories, tags), top ``k``, explanations;
* people: the ``M`` nearest users in the city's user index, minus the user and anyone
  blocked in either direction, the friend head's ``s_compat`` and ``p_attend`` with the
  outing (target place, activity tags) as context, ``s_final``, top ``k``, explanations.

When filters leave fewer than ``k`` of the ``M`` candidates, the search widens (``4 M``, ...
up to the whole city) so a query gets ``k`` results whenever the city has them.

The context acts only through the trained model (its head, bilinear match and learned
per-dimension match on the place's tags, categories and slot); there is no hand-written
boost.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import polars as pl
import torch

from graphrec_pipeline.constants import C_COARSE, C_FINE
from graphrec_pipeline.model.context import context_raw, place_descriptors
from graphrec_pipeline.model.graphrec import GraphRec
from graphrec_pipeline.serving.city_indexes import CityIndexes, load_city_indexes
from graphrec_pipeline.serving.embeddings import EMBEDDINGS_MANIFEST, Embeddings, load_embeddings
from graphrec_pipeline.serving.explain import Explanation, explain_people, explain_places, place_name
from graphrec_pipeline.serving.pair_heads import PairHeads
from graphrec_pipeline.serving.query import (
    AssetError,
    NoCandidatesError,
    QueryError,
    check_id,
    check_k,
    check_price,
    parse_names,
    parse_time_slot,
)
from graphrec_pipeline.serving.world_view import WorldView
from graphrec_pipeline.lineage import lineage_problems
from graphrec_pipeline.releases import MANIFEST, ReleaseError, verify_files
from graphrec_pipeline.storage import Storage
from graphrec_pipeline.taxonomy import COARSE_CATEGORIES, FINE_TAGS, fine_tag_categories, neighborhood_name
from graphrec_pipeline.train.fit import MODEL_CONFIG, MODEL_WEIGHTS, load_model

CANDIDATES = 200
WIDEN = 4


@dataclass(frozen=True)
class PlaceRecommendation:
    place_id: int
    name: str
    city_id: int
    neighborhood: str
    categories: list[str]
    price_band: int
    score: float
    explanations: list[str]
    reasons: list[Explanation] = field(repr=False)

    def to_dict(self) -> dict:
        """The JSON shape of the CLI: ids, name, score and explanation strings."""
        return {k: getattr(self, k) for k in ("place_id", "name", "city_id", "score", "explanations")}


@dataclass(frozen=True)
class PersonRecommendation:
    user_id: int
    city_id: int
    s_compat: float
    p_attend: float
    s_final: float
    explanations: list[str]
    reasons: list[Explanation] = field(repr=False)

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in ("user_id", "s_compat", "p_attend", "s_final", "explanations")}


def _compact(ids: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Move each row's passing items to the front (in order) and drop the columns no row
    needs, so the heads score survivors, not everything retrieved."""
    if mask.all():
        return ids, mask
    width = int(mask.sum(1).max(initial=0))
    order = np.argsort(~mask, axis=1, kind="stable")[:, :width]
    return np.take_along_axis(ids, order, axis=1), np.take_along_axis(mask, order, axis=1)


def _block_rows(n: int, size: int = 64):
    return (slice(s, min(s + size, n)) for s in range(0, n, size))


class Recommender:
    """Answers place and people queries; see the module docstring for the two flows.

    ``recommend_places`` / ``recommend_people`` answer one user; the ``*_batch`` methods
    answer the same query for many users with one index search per city and the heads in
    blocks of users, and return what the single calls would.

    Args:
        store: where the assets live.
        alpha: weight of ``s_compat`` in ``s_final`` (default: the trained model's).
        candidates: ``M``, the candidates retrieved per query (and the largest ``k``).
        exclude_visited: leave out places the user has already interacted with.
        visited_keys: sorted ``user * n_places + place`` keys of what counts as visited
            (default: every interaction); evaluation passes the pre-test visits.
    """

    def __init__(self, store: Storage, alpha: float | None = None, candidates: int = CANDIDATES,
                 exclude_visited: bool = True, visited_keys: np.ndarray | None = None):
        self.store, self.candidates, self.exclude_visited = store, candidates, exclude_visited
        self.release = store.release
        _check_release(store)
        self.model, self.emb, self.indexes = _load_consistent(store)
        self.world = WorldView.load(store)
        if visited_keys is not None:
            self.world.visited_keys = np.asarray(visited_keys, dtype=np.int64)
        if (self.world.n_users, self.world.n_places) != (len(self.emb.z_user), len(self.emb.z_place)):
            raise AssetError(
                f"the tables have {self.world.n_users} users and {self.world.n_places} places but the "
                f"embeddings {len(self.emb.z_user)} and {len(self.emb.z_place)}: the world changed since training",
                "ann_indexes",
            )
        self.alpha = self.model.cfg.alpha if alpha is None else float(alpha)
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], not {self.alpha}")
        self.n_cities = int(max(self.world.user_city.max(), self.world.place_city.max())) + 1
        self.z_user = torch.from_numpy(np.array(self.emb.z_user))
        self.z_place = torch.from_numpy(np.array(self.emb.z_place))
        self.tag_categories = fine_tag_categories().astype(np.float32)
        w = self.world
        descriptors = place_descriptors(torch.tensor(w.place_tags), torch.tensor(w.place_categories),
                                        torch.tensor(w.place_slot))
        self.place_heads = PairHeads([self.model.place_head], self.model.place_context, self.z_place,
                                     self.model.place_match, self.model.context_match, descriptors)
        self.friend_heads = PairHeads([self.model.compat_head, self.model.attend_head], self.model.friend_context,
                                      self.z_user)

    def __repr__(self) -> str:
        return (f"Recommender(users={self.world.n_users}, places={self.world.n_places}, M={self.candidates}, "
                f"alpha={self.alpha}, model={self.emb.model_sha256[:12]})")

    # -- shared steps ------------------------------------------------------------------
    def _users(self, user_ids) -> np.ndarray:
        users = np.atleast_1d(np.asarray(user_ids))
        if users.dtype.kind not in "iu" or users.ndim != 1:
            raise QueryError(f"user ids must be integers, not {user_ids!r}")
        bad = users[(users < 0) | (users >= self.world.n_users)]
        if len(bad):
            raise QueryError(f"unknown user id {int(bad[0])}; ids are 0..{self.world.n_users - 1}"
                             + (f" ({len(bad)} unknown ids)" if len(bad) > 1 else ""))
        return users.astype(np.int64)

    def _cities(self, city_id: int | None, users: np.ndarray) -> np.ndarray:
        if city_id is None:
            return self.world.user_city[users]
        return np.full(len(users), check_id(city_id, self.n_cities, "city"))

    def _retrieve(self, kind: str, city: int, users: np.ndarray, k: int, keep):
        """Yield (rows, ids, mask): for each row of ``users``, the ``M`` nearest items to its
        ``z_u`` in the city's index (``mask``: which pass ``keep``), best first. Rows with
        fewer than ``k`` passing are searched again wider (4 M, ... the whole city)."""
        index = self.indexes.get(kind, city)
        if index is None:
            raise NoCandidatesError(f"city {city} has no {kind}s to recommend")
        rows, m = np.arange(len(users)), self.candidates
        while len(rows):
            ids = index.search(self.emb.z_user[users[rows]], m)[0]
            mask = keep(users[rows], ids) & (ids >= 0)
            done = (mask.sum(1) >= k) | (m >= len(index))
            yield rows[done], ids[done], mask[done]
            rows, m = rows[~done], min(m * WIDEN, len(index))

    def _rank(self, kind: str, users: np.ndarray, cities: np.ndarray, k: int, keep, score, build) -> list[list]:
        """Retrieve, score (``score(users, ids) -> (b, m)`` ranking keys plus extras), keep the
        top k that pass the filters, and ``build`` each user's result objects."""
        results: list[list] = [[] for _ in users]
        for city in np.unique(cities):
            sel = np.flatnonzero(cities == city)
            for rows, ids, mask in self._retrieve(kind, int(city), users[sel], k, keep):
                ids, mask = _compact(ids, mask)
                if ids.shape[1] == 0:  # nothing passes the filters: these users get no results
                    continue
                for block in _block_rows(len(rows)):
                    key, extras = score(users[sel[rows[block]]], ids[block])
                    key = np.where(mask[block], key, -np.inf)
                    order = np.argsort(-key, axis=1, kind="stable")[:, :k]
                    for i, row in enumerate(sel[rows[block]]):
                        top = order[i][mask[block][i, order[i]]]
                        results[row] = build(int(users[row]), ids[block][i, top], [e[i, top] for e in extras])
        return results

    # -- places ------------------------------------------------------------------------
    def place_filter(self, categories: np.ndarray, max_price: int | None):
        """keep(users (b,), places (b, m)) -> (b, m): unvisited and passing the hard filters."""
        w = self.world

        def keep(users: np.ndarray, ids: np.ndarray) -> np.ndarray:
            ok = ~w.visited(users, ids) if self.exclude_visited else np.ones(ids.shape, dtype=bool)
            if len(categories):
                ok &= w.place_categories[ids][..., categories].any(axis=-1)
            if max_price is not None:
                ok &= w.place_price[ids] <= max_price
            return ok

        return keep

    def place_scores(self, users: np.ndarray, places: np.ndarray, ctx_raw: np.ndarray) -> np.ndarray:
        """Place-head logits ``s_place(u, p | ctx)``, (b, m), of ``users[i]`` for ``places[i]``."""
        (score,) = self.place_heads(self.z_user[torch.from_numpy(np.asarray(users, np.int64))],
                                    torch.from_numpy(ctx_raw), torch.from_numpy(np.asarray(places, np.int64)))
        return score.numpy()

    def place_context(self, slot: int, cats: np.ndarray, tag_ids: np.ndarray) -> np.ndarray:
        categories = np.zeros((1, C_COARSE), np.float32)
        categories[0, cats] = 1.0
        tags = np.zeros((1, C_FINE), np.float32)
        tags[0, tag_ids] = 1.0
        return context_raw(1, time_slot=np.array([slot]), categories=categories, tags=tags)[0]

    def recommend_places(
        self,
        user_id: int,
        k: int = 10,
        city_id: int | None = None,
        time_slot: str | int | None = None,
        categories: str | list[str] | None = None,
        tags: str | list[str] | None = None,
        max_price: int | None = None,
    ) -> list[PlaceRecommendation]:
        """Top-k places for ``user_id`` in ``city_id`` (default: home city). ``time_slot`` and
        ``tags`` are soft context for the place head; ``categories`` is context and a hard
        filter; ``max_price`` (price band 0-4) a hard filter."""
        check_id(user_id, self.world.n_users, "user")
        found = self.recommend_places_batch([user_id], k, city_id, time_slot, categories, tags, max_price)[0]
        if not found:
            city = self._cities(city_id, np.array([user_id]))[0]
            raise NoCandidatesError(f"no place in city {city} passes the filters (categories, max_price, unvisited)")
        return found

    def recommend_places_batch(
        self,
        user_ids,
        k: int = 10,
        city_id: int | None = None,
        time_slot: str | int | None = None,
        categories: str | list[str] | None = None,
        tags: str | list[str] | None = None,
        max_price: int | None = None,
    ) -> list[list[PlaceRecommendation]]:
        """:meth:`recommend_places` for each of ``user_ids`` with the same query (an empty
        list for a user with nothing eligible)."""
        w = self.world
        users = self._users(user_ids)
        k = check_k(k, self.candidates)
        cities = self._cities(city_id, users)
        slot = parse_time_slot(time_slot)
        cats = parse_names(categories, COARSE_CATEGORIES, "category")
        tag_ids = parse_names(tags, FINE_TAGS, "tag")
        price = check_price(max_price)
        ctx = self.place_context(slot, cats, tag_ids)

        def score(batch_users: np.ndarray, ids: np.ndarray):
            key = self.place_scores(batch_users, ids, ctx)
            return key, [key]

        def build(user: int, ids: np.ndarray, extras: list[np.ndarray]) -> list[PlaceRecommendation]:
            reasons = explain_places(w.fine_pref[user], w.cat_pref[user], w.area[user], int(w.user_city[user]),
                                     w.place_tags[ids], w.place_categories[ids], w.place_city[ids],
                                     w.place_neighborhood[ids], w.place_slot[ids], slot, tag_ids)
            return [
                PlaceRecommendation(
                    place_id=int(p), name=place_name(w.place_tags[p], int(p)), city_id=int(w.place_city[p]),
                    neighborhood=neighborhood_name(int(w.place_city[p]), int(w.place_neighborhood[p])),
                    categories=[COARSE_CATEGORIES[c] for c in np.flatnonzero(w.place_categories[p])],
                    price_band=int(w.place_price[p]), score=float(sc), explanations=[r.text for r in why], reasons=why,
                )
                for p, sc, why in zip(ids, extras[0], reasons, strict=True)
            ]

        return self._rank("place", users, cities, k, self.place_filter(cats, price), score, build)

    # -- people ------------------------------------------------------------------------
    def people_filter(self):
        """keep(users (b,), others (b, m)) -> (b, m): not the user, not blocked either way."""

        def keep(users: np.ndarray, ids: np.ndarray) -> np.ndarray:
            return (ids != users[:, None]) & ~self.world.blocked(users, ids)

        return keep

    def friend_context(self, target_place: int | None, tag_ids: np.ndarray) -> np.ndarray:
        """The outing as context: the target place's tags and categories, plus the activity
        tags and their categories (training uses a place's, so both look alike)."""
        w = self.world
        tags = np.zeros((1, C_FINE), np.float32)
        categories = np.zeros((1, C_COARSE), np.float32)
        if target_place is not None:
            tags[0] += w.place_tags[target_place]
            categories[0] = np.maximum(categories[0], w.place_categories[target_place])
        if len(tag_ids):
            tags[0, tag_ids] += 1.0 / len(tag_ids)
            categories[0] = np.maximum(categories[0], self.tag_categories[tag_ids].max(axis=0))
        return context_raw(1, categories=categories, tags=tags)[0]

    def friend_scores(self, users: np.ndarray, others: np.ndarray, ctx_raw: np.ndarray) -> tuple[np.ndarray, ...]:
        """(s_compat, p_attend, s_final), each (b, m), of ``users[i]`` with ``others[i]``."""
        compat, attend = self.friend_heads(self.z_user[torch.from_numpy(np.asarray(users, np.int64))],
                                           torch.from_numpy(ctx_raw), torch.from_numpy(np.asarray(others, np.int64)))
        s_compat, p_attend = torch.sigmoid(compat).numpy(), torch.sigmoid(attend).numpy()
        return s_compat, p_attend, self.alpha * s_compat + (1 - self.alpha) * p_attend

    def recommend_people(
        self,
        user_id: int,
        k: int = 10,
        city_id: int | None = None,
        target_place_id: int | None = None,
        activity_tags: str | list[str] | None = None,
    ) -> list[PersonRecommendation]:
        """Top-k people for ``user_id`` to go out with in ``city_id`` (default: home city),
        ranked by ``s_final``; never the user themself nor anyone blocked either way."""
        check_id(user_id, self.world.n_users, "user")
        found = self.recommend_people_batch([user_id], k, city_id, target_place_id, activity_tags)[0]
        if not found:
            raise NoCandidatesError(f"city {self._cities(city_id, np.array([user_id]))[0]} has no other users to recommend")
        return found

    def recommend_people_batch(
        self,
        user_ids,
        k: int = 10,
        city_id: int | None = None,
        target_place_id: int | None = None,
        activity_tags: str | list[str] | None = None,
    ) -> list[list[PersonRecommendation]]:
        """:meth:`recommend_people` for each of ``user_ids`` with the same query (an empty
        list for a user with nobody eligible)."""
        w = self.world
        users = self._users(user_ids)
        k = check_k(k, self.candidates)
        cities = self._cities(city_id, users)
        target = None if target_place_id is None else check_id(target_place_id, w.n_places, "place")
        if target is not None and np.any(cities != w.place_city[target]):
            city = int(cities[cities != w.place_city[target]][0])
            raise QueryError(f"target place {target} is in city {int(w.place_city[target])}, not in the query's "
                             f"city {city}: choose a place of that city or pass its --city-id")
        tag_ids = parse_names(activity_tags, FINE_TAGS, "tag")
        ctx = self.friend_context(target, tag_ids)
        outing = tag_ids if target is None else np.union1d(tag_ids, np.flatnonzero(w.place_tags[target] > 0))

        def score(batch_users: np.ndarray, ids: np.ndarray):
            s_compat, p_attend, s_final = self.friend_scores(batch_users, ids, ctx)
            return s_final, [s_compat, p_attend, s_final]

        def build(user: int, ids: np.ndarray, extras: list[np.ndarray]) -> list[PersonRecommendation]:
            reasons = explain_people(w.fine_pref[user], w.vibe_pref[user], w.area[user], int(w.user_city[user]),
                                     w.fine_pref[ids], w.vibe_pref[ids], w.area[ids], w.user_city[ids], outing)
            return [
                PersonRecommendation(
                    user_id=int(v), city_id=int(w.user_city[v]), s_compat=float(c), p_attend=float(a),
                    s_final=float(f), explanations=[r.text for r in why], reasons=why,
                )
                for v, c, a, f, why in zip(ids, *extras, reasons, strict=True)
            ]

        return self._rank("user", users, cities, k, self.people_filter(), score, build)

    def available(self, kind: str, user_id: int, city_id: int | None = None, categories=None,
                  max_price: int | None = None) -> int:
        """How many items of the city a query could return at most (for checks and tests)."""
        users = np.array([check_id(user_id, self.world.n_users, "user")])
        city = int(self._cities(city_id, users)[0])
        if kind == "place":
            ids = np.flatnonzero(self.world.place_city == city)
            keep = self.place_filter(parse_names(categories, COARSE_CATEGORIES, "category"), check_price(max_price))
        else:
            ids = np.flatnonzero(self.world.user_city == city)
            keep = self.people_filter()
        return int(keep(users, ids[None])[0].sum())


def _check_release(store: Storage) -> None:
    """A sealed release: every file has its recorded digest (before any parser reads it).
    A release still being made (the pipeline's own checks): its pieces agree by lineage."""
    if (store.root / MANIFEST).exists():
        try:
            verify_files(store.root)
        except ReleaseError as err:
            raise AssetError(f"{err}; re-run the pipeline, or roll back to an earlier release (graphrec releases)",
                             None) from err
        return
    problems = lineage_problems(store)
    if problems:
        raise AssetError(f"the pieces of {store.root} disagree: " + "; ".join(problems), None)


def _load_consistent(store: Storage) -> tuple[GraphRec, Embeddings, CityIndexes]:
    """Model, embeddings and indexes (that they come from the same weights is checked by
    :func:`_check_release`: digests of a sealed release, lineage of one being made)."""
    try:
        store.local_path(MODEL_WEIGHTS), store.local_path(MODEL_CONFIG)
    except FileNotFoundError as err:
        raise AssetError(f"no trained model in {store.root}", "graphrec_model") from err
    if store.read_json(EMBEDDINGS_MANIFEST) is None:
        raise AssetError(f"no embeddings in {store.root}", "user_embeddings")
    try:
        indexes = load_city_indexes(store)
    except FileNotFoundError as err:
        raise AssetError(f"no ANN indexes in {store.root}", "ann_indexes") from err
    return load_model(store), load_embeddings(store), indexes


def results_frame(results: list[PlaceRecommendation] | list[PersonRecommendation]) -> pl.DataFrame:
    """Results as a table (one row each, explanations joined), for notebooks and metadata."""
    rows = [{k: v for k, v in asdict(r).items() if k != "reasons"} for r in results]
    frame = pl.DataFrame(rows)
    if not len(frame):
        return frame
    return frame.with_columns(pl.col("explanations").list.join(" "), pl.col(pl.Float64).round(4))

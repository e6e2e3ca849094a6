"""Online recommendation (§6.3 places, §6.4 people) from one release's assets.

:class:`Recommender` checks the release (digests of a sealed one, lineage of one being
made), loads the embeddings, the per-city indexes, the trained heads and the table columns
it needs once, and answers queries through the two flows (``place_flow``, ``people_flow``)
on the shared engine (``retrieval``). Queries are typed (``query.PlaceQuery``,
``query.PeopleQuery``); a single query is a batch of one.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import torch

from graphrec_pipeline.defaults import PEOPLE_CANDIDATES, RETRIEVAL_CANDIDATES
from graphrec_pipeline.coattendance import PairHistory
from graphrec_pipeline.lineage import lineage_problems
from graphrec_pipeline.artifacts import EMBEDDINGS_MANIFEST, MODEL_CONFIG, MODEL_MANIFEST, MODEL_WEIGHTS, WORLD_MANIFEST
from graphrec_pipeline.artifacts.embeddings import Embeddings, load_embeddings
from graphrec_pipeline.artifacts.indexes import live_version, manifest_file
from graphrec_pipeline.model.context import place_descriptors
from graphrec_pipeline.model.preference import place_sides, user_sides
from graphrec_pipeline.model.graphrec import GraphRec
from graphrec_pipeline.releases import MANIFEST, ReleaseError, verify_files
from graphrec_pipeline.serving.city_indexes import CityIndexes, load_city_indexes
from graphrec_pipeline.model.pair_heads import PairHeads
from graphrec_pipeline.serving.people_flow import PeopleFlow
from graphrec_pipeline.serving.place_flow import PlaceFlow
from graphrec_pipeline.serving.query import (
    AssetError,
    NoCandidatesError,
    PeopleQuery,
    PlaceQuery,
    QueryError,
    UnknownIdError,
    check_id,
)
from graphrec_pipeline.serving.results import PersonRecommendation, PlaceRecommendation
from graphrec_pipeline.serving.retrieval import rank
from graphrec_pipeline.serving.world_view import WorldView
from graphrec_pipeline.vocabulary import Vocabulary
from graphrec_pipeline.storage import Storage
from graphrec_pipeline.model.saved import ModelMismatchError, load_model



class Recommender:
    """Answers place and people queries for one release.

    :meth:`places` and :meth:`people` answer a typed query for many users (one index search
    per city, the heads in blocks of users); ``recommend_*`` parse the query from keyword
    arguments and answer one user, ``recommend_*_batch`` many.

    Args:
        store: the release to serve.
        alpha: weight of ``s_compat`` in ``s_final`` (default: the trained model's).
        candidates: ``M`` of the place flow, the candidates retrieved per query before
            widening. Context queries need 200: a time slot lifts places from beyond the
            retrieval's top 100 (docs/benchmarks.md).
        people_candidates: ``M`` of the people flow. People are retrieved by the same taste
            match that dominates their score, so fewer suffice: the served top 10 at 50 is
            the top 10 at 200, at about half the cost (docs/benchmarks.md).
        exclude_visited: leave out places the user has already interacted with.
        visited_keys: sorted ``user * n_places + place`` keys of what counts as visited
            (default: every interaction); evaluation passes the pre-test visits.
        pair_history: the pairs' past co-attendance that the friend logits and the
            ``new_people`` filter read (default: over every interaction); evaluation passes
            the training period's, what the model was trained on.
    """

    def __init__(self, store: Storage, alpha: float | None = None, candidates: int = RETRIEVAL_CANDIDATES,
                 people_candidates: int = PEOPLE_CANDIDATES,
                 exclude_visited: bool = True, visited_keys: np.ndarray | None = None,
                 pair_history: PairHistory | None = None):
        self.store, self.candidates, self.people_candidates = store, candidates, people_candidates
        self.release = store.release
        _check_release(store)
        self.model, self.emb, self.indexes = _load_consistent(store)
        self.world = WorldView.load(store)
        if visited_keys is not None:
            self.world.visited_keys = np.asarray(visited_keys, dtype=np.int64)
        if pair_history is not None:
            self.world.history = pair_history
        if (self.world.n_users, self.world.n_places) != (len(self.emb.z_user), len(self.emb.z_place)):
            raise AssetError(
                f"the tables have {self.world.n_users} users and {self.world.n_places} places but the "
                f"embeddings {len(self.emb.z_user)} and {len(self.emb.z_place)}: the world changed since training",
                "ann_indexes",
            )
        if self.world.widths != self.model.widths:
            raise AssetError(f"the tables have feature widths {self.world.widths} but the model "
                             f"{self.model.widths}: the world changed since training", "graphrec_model")
        self.alpha = self.model.cfg.alpha if alpha is None else float(alpha)
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], not {self.alpha}")
        self.n_cities = int(max(self.world.user_city.max(), self.world.place_city.max())) + 1
        self.z_user = torch.from_numpy(np.array(self.emb.z_user))
        self.z_place = torch.from_numpy(np.array(self.emb.z_place))
        w, m = self.world, self.model
        descriptors = place_descriptors(torch.tensor(w.place_tags), torch.tensor(w.place_categories),
                                        torch.tensor(w.place_slot))
        c = m.cfg
        sides = place_sides(w.place_categories, w.place_tags, w.place_city, w.place_neighborhood, w.place_popularity,
                            c.n_cities, c.neighborhoods_per_city)
        user_side = user_sides(w.cat_pref, w.fine_pref, w.user_city, w.user_neighborhood, c.n_cities,
                               c.neighborhoods_per_city)
        # The place head's match and collaborative term as one inner product: [W_0 s_u, e_u] . [s_p, e_p].
        e_user, e_place = torch.from_numpy(np.array(self.emb.e_user)), torch.from_numpy(np.array(self.emb.e_place))
        self.place_flow = PlaceFlow(w, PairHeads([m.place_head], m.place_context, self.z_place, m.place_match,
                                                 m.context_match, descriptors, torch.cat([sides, e_place], 1)),
                                    self.z_user, torch.cat([m.preference_match.weighted(user_side, 0), e_user], 1),
                                    exclude_visited)
        self.people_flow = PeopleFlow(w, PairHeads([m.compat_head, m.attend_head], m.friend_context, self.z_user),
                                      m.taste_match, m.history_terms, self.z_user, self.alpha)

    def __repr__(self) -> str:
        return (f"Recommender(release={self.release}, users={self.world.n_users}, places={self.world.n_places}, "
                f"M={self.candidates} (people {self.people_candidates}), alpha={self.alpha}, model={self.emb.model_sha256[:12]})")

    def _users(self, user_ids) -> np.ndarray:
        users = np.atleast_1d(np.asarray(user_ids))
        if users.dtype.kind not in "iu" or users.ndim != 1:
            raise QueryError(f"user ids must be integers, not {user_ids!r}")
        bad = users[(users < 0) | (users >= self.world.n_users)]
        if len(bad):
            raise UnknownIdError(f"unknown user id {int(bad[0])}; ids are 0..{self.world.n_users - 1}"
                             + (f" ({len(bad)} unknown ids)" if len(bad) > 1 else ""))
        return users.astype(np.int64)

    @property
    def vocabulary(self) -> Vocabulary:
        """The names of the release's categories and tags (queries and explanations use them)."""
        return self.world.vocabulary

    def user_ids(self, keys) -> np.ndarray:
        """Ids of original user keys (an imported log's; a generated world's are the ids as text)."""
        return self.world.user_ids(list(np.atleast_1d(keys)))

    def _cities(self, city_id: int | None, users: np.ndarray) -> np.ndarray:
        if city_id is None:
            return self.world.user_city[users]
        return np.full(len(users), check_id(city_id, self.n_cities, "city"))

    # -- typed queries: the one code path ------------------------------------------------
    def places(self, user_ids, query: PlaceQuery) -> list[list[PlaceRecommendation]]:
        """Each user's top ``query.k`` places in ``query.city_id`` (default: home city); an
        empty list for a user with nothing eligible."""
        users = self._users(user_ids)
        query.check_widths(self.world.widths)
        return rank(self.place_flow, query, self.indexes, self.emb.q_user, users, self._cities(query.city_id, users),
                    self.candidates)

    def people(self, user_ids, query: PeopleQuery) -> list[list[PersonRecommendation]]:
        """Each user's top ``query.k`` people to go out with, ranked by ``s_final``."""
        users = self._users(user_ids)
        if not self.world.has_social and len(users):
            raise NoCandidatesError("this release has no social data (no friend pairs, no co-visits): people "
                                    "recommendation needs a friends file or visits with timestamps")
        query.check_widths(self.world.widths)
        cities = self._cities(query.city_id, users)
        target = query.target_place_id
        if target is not None:
            check_id(target, self.world.n_places, "place")
            wrong = cities != self.world.place_city[target]
            if wrong.any():
                raise QueryError(f"target place {target} is in city {int(self.world.place_city[target])}, not in "
                                 f"the query's city {int(cities[wrong][0])}: choose a place of that city or pass "
                                 f"its city_id")
        return rank(self.people_flow, query, self.indexes, self.emb.r_user, users, cities, self.people_candidates)

    # -- one user, or keywords -------------------------------------------------------------
    def recommend_places(self, user_id: int, query: PlaceQuery | None = None, **keywords) -> list[PlaceRecommendation]:
        """Top-k places for one user, for ``query`` or the keywords of :meth:`PlaceQuery.parse`
        (k, city_id, time_slot, categories, tags, max_price). Raises :class:`NoCandidatesError`
        when nothing passes the filters."""
        check_id(user_id, self.world.n_users, "user")
        q = _query(PlaceQuery, query, keywords, self.vocabulary)
        found = self.places([user_id], q)[0]
        if not found:
            city = int(self._cities(q.city_id, np.array([user_id]))[0])
            raise NoCandidatesError(f"no place in city {city} passes the filters (categories, max_price, unvisited)")
        return found

    def recommend_places_batch(self, user_ids, **keywords) -> list[list[PlaceRecommendation]]:
        return self.places(user_ids, PlaceQuery.parse(**keywords, vocabulary=self.vocabulary))

    def recommend_people(self, user_id: int, query: PeopleQuery | None = None, **keywords) -> list[PersonRecommendation]:
        """Top-k people for one user, for ``query`` or the keywords of :meth:`PeopleQuery.parse`
        (k, city_id, target_place_id, activity_tags, new_people)."""
        check_id(user_id, self.world.n_users, "user")
        q = _query(PeopleQuery, query, keywords, self.vocabulary)
        found = self.people([user_id], q)[0]
        if not found:
            raise NoCandidatesError(f"city {int(self._cities(q.city_id, np.array([user_id]))[0])} has no other "
                                    "users to recommend")
        return found

    def recommend_people_batch(self, user_ids, **keywords) -> list[list[PersonRecommendation]]:
        return self.people(user_ids, PeopleQuery.parse(**keywords, vocabulary=self.vocabulary))

    def version(self) -> dict:
        """What this recommender serves: release, model, index version and world digests,
        and when each was built."""
        store = self.store

        def built(name: str) -> str | None:
            if not store.has(name):
                return None
            return dt.datetime.fromtimestamp(store.mtime(name), dt.timezone.utc).isoformat(timespec="seconds")

        world = store.read_json(WORLD_MANIFEST) or {}
        index_version = live_version(store)
        release = store.read_json(MANIFEST) or {}
        return {
            "release": self.release,
            "release_created": release.get("created"),
            "model_sha256": self.emb.model_sha256,
            "model_built": built(MODEL_MANIFEST),
            "index_version": index_version,
            "indexes_built": built(manifest_file(index_version)) if index_version else None,
            "world_sha256": world.get("world_sha256"),
            "world_built": built(WORLD_MANIFEST),
            "users": self.world.n_users,
            "places": self.world.n_places,
        }


def _query(kind, query, keywords: dict, vocabulary: Vocabulary):
    if query is not None and keywords:
        raise TypeError(f"pass a {kind.__name__} or keywords, not both ({', '.join(keywords)})")
    return query if query is not None else kind.parse(**keywords, vocabulary=vocabulary)


def _check_release(store: Storage) -> None:
    """A sealed release: every file has its recorded digest (before any parser reads it).
    A release still being made (the pipeline's own checks): its pieces agree by lineage."""
    if store.has(MANIFEST):
        try:
            verify_files(store.location)
        except ReleaseError as err:
            raise AssetError(f"{err}; re-run the pipeline, or roll back to an earlier release (graphrec releases)",
                             None) from err
        return
    problems = lineage_problems(store)
    if problems:
        raise AssetError(f"the pieces of {store.location} disagree: " + "; ".join(problems), None)


def _load_consistent(store: Storage) -> tuple[GraphRec, Embeddings, CityIndexes]:
    """Model, embeddings and indexes (that they come from the same weights is checked by
    :func:`_check_release`: digests of a sealed release, lineage of one being made)."""
    try:
        store.local_path(MODEL_WEIGHTS), store.local_path(MODEL_CONFIG)
    except FileNotFoundError as err:
        raise AssetError(f"no trained model in {store.location}", "graphrec_model") from err
    if store.read_json(EMBEDDINGS_MANIFEST) is None:
        raise AssetError(f"no embeddings in {store.location}", "user_embeddings")
    try:
        indexes = load_city_indexes(store)
    except FileNotFoundError as err:
        raise AssetError(f"no ANN indexes in {store.location}", "ann_indexes") from err
    try:
        model = load_model(store)
    except ModelMismatchError as err:
        raise AssetError(str(err), "graphrec_model") from err
    try:
        emb = load_embeddings(store)
    except FileNotFoundError as err:
        raise AssetError(str(err), "user_embeddings") from err
    return model, emb, indexes

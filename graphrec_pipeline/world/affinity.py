"""The world's ground truth: the noise-free user-place preference score of §7.4.

    affinity(u, p) = w_int * cos(fine_pref_u, fine_tag_vector_p)
                   + w_cat * <cat_pref_u, category_one_hot_p / |categories_p|>
                   + same_city * (w_area * area_freqs_u[neighborhood_p]
                                  + w_home * [neighborhood_p == home_neighborhood_u])
                   + (1 - same_city) * w_away
                   + w_pop * standardized log(base_popularity_p)
                   + latent_weight * <taste_u, character_p>

The last term is the taste no table states (``world/latent.py``); without it the score
is computed from the ``users`` and ``places`` tables alone, and with it from the tables
and the world's config (its seed and latent settings), so any stage can rebuild it.
The generator samples interactions from ``softmax(affinity + taste noise)``; evaluation
ranks by it as the ``oracle``. Joint outings are chosen by the pair's mean affinity, so
evaluation also ranks by ``oracle_joint`` (``world/oracle.py``). Real data has no oracle:
nothing downstream may require one.
"""

from __future__ import annotations

from dataclasses import dataclass

import dataclasses

import numpy as np
import polars as pl

from graphrec_pipeline.columns import dense_from_area, dense_from_list
from graphrec_pipeline.constants import C_COARSE, C_FINE
from graphrec_pipeline.world.latent import LatentTaste


@dataclass(frozen=True)
class AffinityWeights:
    """Weights of the affinity terms, in logit units of the sampling softmax."""

    interest: float = 9.0
    category: float = 2.0
    area: float = 2.0
    home: float = 0.7
    away: float = -1.0
    popularity: float = 0.45
    # Std of the per-(user, place) taste noise the generator adds; the oracle omits it.
    taste_noise: float = 0.7


@dataclass(frozen=True)
class WorldFeatures:
    """The table columns the affinity reads, as dense arrays indexed by id."""

    user_fine: np.ndarray  # (n_users, C_FINE), rows L2-normalized
    user_cat: np.ndarray  # (n_users, C_COARSE)
    user_area: np.ndarray  # (n_users, n_neighborhoods)
    user_city: np.ndarray
    user_home: np.ndarray
    place_fine: np.ndarray  # (n_places, C_FINE), rows L2-normalized
    place_tag_idx: np.ndarray  # (n_places, T): the place's nonzero tags, padded (places have few)
    place_tag_w: np.ndarray  # (n_places, T): their weights in ``place_fine``, 0 for padding
    place_cat: np.ndarray  # (n_places, C_COARSE), rows sum to 1
    place_city: np.ndarray
    place_neighborhood: np.ndarray
    place_pop: np.ndarray  # standardized log popularity
    user_latent: np.ndarray  # (n_users, r): latent taste times the latent weight; r = 0 without
    place_latent: np.ndarray  # (n_places, r): latent character

    @classmethod
    def from_tables(cls, users: pl.DataFrame, places: pl.DataFrame, n_neighborhoods: int,
                    latent: LatentTaste | None = None) -> "WorldFeatures":
        users = users.sort("user_id")
        places = places.sort("place_id")
        cat = dense_from_list(places["category_one_hot"], C_COARSE)
        log_pop = np.log(places["base_popularity"].to_numpy().astype(np.float64))
        place_fine = l2_normalize(dense_from_list(places["fine_tag_vector"], C_FINE))
        n_tags = max(int((place_fine > 0).sum(axis=1).max(initial=0)), 1)
        tag_idx = np.argsort(-place_fine, axis=1, kind="stable")[:, :n_tags].astype(np.int16)  # small: gathers are the cost
        return cls(
            user_fine=l2_normalize(dense_from_list(users["fine_pref"], C_FINE)),
            user_cat=dense_from_list(users["cat_pref"], C_COARSE),
            user_area=dense_from_area(users["area_freqs"], n_neighborhoods),
            user_city=users["home_city_id"].to_numpy(),
            user_home=users["home_neighborhood_id"].to_numpy(),
            place_fine=place_fine,
            place_tag_idx=tag_idx,
            place_tag_w=np.take_along_axis(place_fine, tag_idx, axis=1),
            place_cat=cat / np.maximum(cat.sum(axis=1, keepdims=True), 1e-12),
            place_city=places["city_id"].to_numpy(),
            place_neighborhood=places["neighborhood_id"].to_numpy(),
            place_pop=((log_pop - log_pop.mean()) / max(log_pop.std(), 1e-12)).astype(np.float32),
            user_latent=np.zeros((len(users), 0), np.float32) if latent is None else latent.weight * latent.user,
            place_latent=np.zeros((len(places), 0), np.float32) if latent is None else latent.place,
        )

    @property
    def has_latent(self) -> bool:
        return self.user_latent.shape[1] > 0

    def observed(self) -> "WorldFeatures":
        """The stated part of taste alone: the affinity without its latent term."""
        return dataclasses.replace(self, user_latent=self.user_latent[:, :0], place_latent=self.place_latent[:, :0])


    def pair_means(self, u: np.ndarray, v: np.ndarray, w: "AffinityWeights") -> "WorldFeatures":
        """Features of one virtual user per same-city pair (``u[i]``, ``v[i]``) whose affinity
        for any place is the mean of the two partners' (user ids become 0..n-1). Every term
        is linear in the user's features; the home term is folded into the area term."""
        n_hoods = self.user_area.shape[1]
        home = lambda x: np.eye(n_hoods, dtype=np.float32)[self.user_home[x]]  # noqa: E731
        area = self.user_area[u] + self.user_area[v] + (w.home / w.area) * (home(u) + home(v))
        return WorldFeatures(
            user_fine=0.5 * (self.user_fine[u] + self.user_fine[v]),
            user_cat=0.5 * (self.user_cat[u] + self.user_cat[v]),
            user_area=0.5 * area,
            user_city=self.user_city[u],
            user_home=np.full(len(u), -1),
            place_fine=self.place_fine,
            place_tag_idx=self.place_tag_idx,
            place_tag_w=self.place_tag_w,
            place_cat=self.place_cat,
            place_city=self.place_city,
            place_neighborhood=self.place_neighborhood,
            place_pop=self.place_pop,
            user_latent=0.5 * (self.user_latent[u] + self.user_latent[v]),
            place_latent=self.place_latent,
        )


def l2_normalize(x: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norm, 1e-12)).astype(np.float32)


def affinity_block(
    f: WorldFeatures, users: np.ndarray, places: np.ndarray, w: AffinityWeights = AffinityWeights()
) -> np.ndarray:
    """(len(users), len(places)) float32 affinity for every pair of the two id arrays.

    The inner products go through ``np.einsum``'s own loop, not BLAS: a BLAS product's last
    bits depend on its thread count on some CPUs, and the world must be the same bytes on
    one thread (a Dask worker) as on many."""
    score = w.interest * np.einsum("nd,md->nm", f.user_fine[users], f.place_fine[places])
    score += w.category * np.einsum("nd,md->nm", f.user_cat[users], f.place_cat[places])
    same_city = f.user_city[users][:, None] == f.place_city[places][None, :]
    nb = f.place_neighborhood[places]
    local = w.area * f.user_area[users][:, nb] + w.home * (f.user_home[users][:, None] == nb[None, :])
    score += np.where(same_city, local, w.away)
    score += w.popularity * f.place_pop[places][None, :]
    if f.has_latent:
        score += np.einsum("nd,md->nm", f.user_latent[users], f.place_latent[places])
    return score.astype(np.float32, copy=False)


PAIRS_PER_CHUNK = 262_144


def affinity_pairs(
    f: WorldFeatures, users: np.ndarray, places: np.ndarray, w: AffinityWeights = AffinityWeights()
) -> np.ndarray:
    """(n, m) float32 affinity of ``users[i]`` (n,) for each of its own ``places[i]`` (n, m):
    the same function as :func:`affinity_block` for per-row candidate sets. The interest
    term reads only each place's few nonzero tags (gathers are the cost here)."""
    n, m = places.shape
    out = np.empty((n, m), dtype=np.float32)
    rows = max(1, PAIRS_PER_CHUNK // max(m, 1))
    for s in range(0, n, rows):
        u, p = users[s : s + rows], places[s : s + rows]
        fine = f.user_fine[u]
        flat = f.place_tag_idx[p].reshape(len(u), -1).astype(np.intp) + (np.arange(len(u)) * fine.shape[1])[:, None]
        score = (fine.ravel()[flat].reshape(len(u), m, -1) * f.place_tag_w[p]).sum(axis=-1)
        score *= w.interest
        score += w.category * np.einsum("nd,nmd->nm", f.user_cat[u], f.place_cat[p])
        nb = f.place_neighborhood[p]
        local = w.area * np.take_along_axis(f.user_area[u], nb, axis=1) + w.home * (f.user_home[u][:, None] == nb)
        score += np.where(f.user_city[u][:, None] == f.place_city[p], local, w.away)
        score += w.popularity * f.place_pop[p]
        if f.has_latent:
            score += np.einsum("nd,nmd->nm", f.user_latent[u], f.place_latent[p])
        out[s : s + rows] = score
    return out

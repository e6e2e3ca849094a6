"""The part of taste that no table states: a low-rank latent taste per user and character
per place, shared within circles of friends.

Stated preferences (``fine_pref``, ``cat_pref``) are a partial view of taste, as in real
data, where most taste shows only in what people do and with whom. The world adds
``latent_weight * <taste_u, character_p>`` to every visit's affinity (``affinity.py``), so
the oracle ranks by it and a model can only learn it from behaviour and friendships.

* Places: a character vector with standard normal entries.
* Users: each user belongs to one community of their home city (about
  ``COMMUNITY_SIZE`` users each, drawn uniformly); their taste is
  ``sqrt(homophily) * centre_of_community + sqrt(1 - homophily) * own``, centres and own
  parts with entries of variance ``1 / latent_dim``, so ``<taste_u, character_p>`` has unit
  variance and the latent term's spread is ``latent_weight``.
* Who is alike: the *full taste* of a user is the unit vector
  ``[sqrt(1 - s) * fine_pref / |fine_pref|, sqrt(s) * taste / |taste|]`` with
  ``s = LATENT_SIMILARITY_SHARE``. Social candidates are the most similar users by full
  taste, and friends go out together as their full tastes agree
  (``social.py``, ``interactions.py``). Friends' latent tastes are then closer than random
  pairs' twice over: by community and by selection, so the social graph carries taste that
  the stated columns do not.

Nothing here is stored: the world's config (seed, latent settings) and the users table
rebuild it, which the evaluation's oracle does. With ``latent_weight == 0`` there is no
latent taste and the world is the literal §7 world, byte for byte.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from graphrec_pipeline.world.config import WorldConfig

COMMUNITY_SIZE = 40  # users per community of a city, on average
LATENT_SIMILARITY_SHARE = 0.5  # share of the latent taste in the full-taste cosine


@dataclass(frozen=True)
class LatentTaste:
    """``user`` (n_users, r) tastes, ``place`` (n_places, r) characters and each user's
    ``community`` (global ids, communities of one city are contiguous); ``weight`` scales
    the affinity term."""

    user: np.ndarray
    place: np.ndarray
    community: np.ndarray
    weight: float


def latent_taste(cfg: WorldConfig, users: pl.DataFrame) -> LatentTaste | None:
    """The world's latent tastes and characters, from their own random streams (the
    tables' streams are untouched); None when ``cfg.latent_weight`` is 0."""
    if cfg.latent_weight == 0:
        return None
    r = cfg.latent_dim
    city = users.sort("user_id")["home_city_id"].to_numpy()
    rng = cfg.rng("latent/users")
    sizes = np.bincount(city, minlength=cfg.n_cities)
    n_comm = np.maximum(1, np.round(sizes / COMMUNITY_SIZE)).astype(np.int64)
    first = np.concatenate([[0], np.cumsum(n_comm)])
    community = first[city] + np.minimum((rng.random(len(city)) * n_comm[city]).astype(np.int64), n_comm[city] - 1)
    scale = 1.0 / np.sqrt(r)
    centres = rng.normal(0.0, scale, size=(int(first[-1]), r))
    own = rng.normal(0.0, scale, size=(len(city), r))
    h = cfg.homophily
    user = np.sqrt(h) * centres[community] + np.sqrt(1.0 - h) * own
    place = cfg.rng("latent/places").normal(0.0, 1.0, size=(cfg.n_places, r))
    return LatentTaste(user.astype(np.float32), place.astype(np.float32), community, float(cfg.latent_weight))


def full_taste(fine_unit: np.ndarray, taste: np.ndarray | None) -> np.ndarray:
    """Unit vectors whose inner products are the full-taste cosines (module doc) from the
    users' L2-normalized ``fine_pref`` and latent tastes (any scale; None or no columns:
    the stated ``fine_unit`` itself)."""
    if taste is None or taste.shape[1] == 0:
        return fine_unit
    taste = taste / np.maximum(np.linalg.norm(taste, axis=1, keepdims=True), 1e-12)
    s = LATENT_SIMILARITY_SHARE
    return np.concatenate([np.sqrt(1.0 - s) * fine_unit, np.sqrt(s) * taste], axis=1).astype(np.float32)

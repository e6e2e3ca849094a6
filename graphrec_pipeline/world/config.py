"""Scale, seed and behaviour knobs of the synthetic world (§2.1, §7.1)."""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from datetime import date, datetime

import numpy as np

from graphrec_pipeline import constants as K


@dataclass(frozen=True)
class WorldConfig:
    """Everything the generator needs; the same config and seed give the same bytes.

    Args:
        n_users, n_places, n_cities, neighborhoods_per_city: scale (§2.1 defaults).
        start_date: first day of the interaction horizon (ISO date).
        horizon_days: length of the horizon in days.
        min_interactions_per_user, max_interactions_per_user: caps on a user's
            interaction count (§7.4 step 1).
        interactions_per_view: share of post views that become an interaction; with the
            user's sessions/week, views/session and the horizon it sets the raw count.
        travel_rate: share of a user's interactions drawn from other cities.
        exposure_size: most places of their city a user is shown (a random window shared
            by a batch of users); keeps generation linear in users at large scale.
        similar_users_k: neighbours per user in the similar-user candidate search (§7.5).
        latent_weight: spread, in logit units, of the latent taste term of the affinity
            (``world/latent.py``); 0 gives the literal §7 world, whose visits follow the
            stated preferences only.
        latent_dim: rank of the latent tastes and characters.
        homophily: share of a user's latent taste that is their community's (0: none).
        seed: root of every random stream.
    """

    n_users: int = K.N_USERS
    n_places: int = K.N_PLACES
    n_cities: int = K.N_CITIES
    neighborhoods_per_city: int = K.N_NEIGHBORHOODS_PER_CITY
    start_date: str = "2026-01-05"
    horizon_days: int = 182
    min_interactions_per_user: int = 20
    max_interactions_per_user: int = 1000
    interactions_per_view: float = 0.05
    travel_rate: float = 0.03
    exposure_size: int = 2000
    similar_users_k: int = 20
    latent_weight: float = 1.5
    latent_dim: int = 8
    homophily: float = 0.5
    seed: int = 42

    def __post_init__(self) -> None:
        problems = []
        if self.n_users < 2 or self.n_places < 1:
            problems.append("n_users must be >= 2 and n_places >= 1")
        if not 1 <= self.n_cities <= self.n_places:
            problems.append("n_cities must be in [1, n_places]")
        if self.neighborhoods_per_city < 1:
            problems.append("neighborhoods_per_city must be >= 1")
        if self.horizon_days < 14:
            problems.append("horizon_days must be >= 14 (two full weeks)")
        if not 1 <= self.min_interactions_per_user <= self.max_interactions_per_user:
            problems.append("need 1 <= min_interactions_per_user <= max_interactions_per_user")
        if not 0.0 <= self.travel_rate < 1.0:
            problems.append("travel_rate must be in [0, 1)")
        if self.exposure_size < 1:
            problems.append("exposure_size must be >= 1")
        if self.similar_users_k < 1:
            problems.append("similar_users_k must be >= 1")
        if self.latent_weight < 0:
            problems.append("latent_weight must be >= 0")
        if self.latent_dim < 1:
            problems.append("latent_dim must be >= 1")
        if not 0.0 <= self.homophily <= 1.0:
            problems.append("homophily must be in [0, 1]")
        try:
            date.fromisoformat(self.start_date)
        except ValueError:
            problems.append(f"start_date {self.start_date!r} is not an ISO date")
        if problems:
            raise ValueError("invalid WorldConfig: " + "; ".join(problems))

    @property
    def start(self) -> datetime:
        return datetime.fromisoformat(self.start_date)

    def rng(self, stream: str) -> np.random.Generator:
        """An independent generator per named stream, so stages never share draws."""
        return np.random.default_rng(np.random.SeedSequence([self.seed, zlib.crc32(stream.encode())]))

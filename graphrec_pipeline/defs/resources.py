"""Dagster resources: where data lives, and what world to build (scale, seed, source)."""


from typing import Literal

import dagster as dg
from pydantic import Field

from graphrec_pipeline import constants as K
from graphrec_pipeline.storage import Storage
from graphrec_pipeline.world.config import WorldConfig

_DEFAULTS = WorldConfig()


class StorageResource(dg.ConfigurableResource):
    """The data directory: ``data_dir`` if set, else ``$GRAPHREC_DATA_DIR``, else ``./data``."""

    data_dir: str | None = Field(default=None, description="Data directory (default: $GRAPHREC_DATA_DIR or ./data).")

    def storage(self) -> Storage:
        return Storage(self.data_dir)


class WorldResource(dg.ConfigurableResource):
    """Scale, horizon, caps and seed of the synthetic world, or a directory of your own
    Parquet tables (``source: parquet``) in the §2 schemas to use instead."""

    n_users: int = Field(default=K.N_USERS, description="Number of users.")
    n_places: int = Field(default=K.N_PLACES, description="Number of places.")
    n_cities: int = Field(default=K.N_CITIES, description="Number of cities.")
    neighborhoods_per_city: int = Field(default=K.N_NEIGHBORHOODS_PER_CITY, description="Neighborhoods per city.")
    start_date: str = Field(default=_DEFAULTS.start_date, description="First day of the horizon (ISO).")
    horizon_days: int = Field(default=_DEFAULTS.horizon_days, description="Length of the horizon in days.")
    min_interactions_per_user: int = Field(default=_DEFAULTS.min_interactions_per_user)
    max_interactions_per_user: int = Field(default=_DEFAULTS.max_interactions_per_user)
    seed: int = Field(default=_DEFAULTS.seed, description="Root random seed: same seed and config, same bytes.")
    source: Literal["generate", "parquet"] = Field(
        default="generate", description="'generate' a synthetic world, or import 'parquet' files from source_dir."
    )
    source_dir: str | None = Field(default=None, description="Directory of <table>.parquet files when source=parquet.")

    def world_config(self) -> WorldConfig:
        return WorldConfig(
            n_users=self.n_users,
            n_places=self.n_places,
            n_cities=self.n_cities,
            neighborhoods_per_city=self.neighborhoods_per_city,
            start_date=self.start_date,
            horizon_days=self.horizon_days,
            min_interactions_per_user=self.min_interactions_per_user,
            max_interactions_per_user=self.max_interactions_per_user,
            seed=self.seed,
        )

    @property
    def generated(self) -> bool:
        return self.source == "generate"

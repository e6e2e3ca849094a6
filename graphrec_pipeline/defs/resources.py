"""Dagster resources: where data lives, what world to build (scale, seed, source), and the
recommender that serves queries from the materialized assets."""


from typing import Literal

import dagster as dg
import polars as pl
from pydantic import Field, PrivateAttr

from graphrec_pipeline.defaults import PEOPLE_CANDIDATES, POSITIVE_RATING, RETRIEVAL_CANDIDATES
from graphrec_pipeline.ingest import ImportConfig, log_widths
from graphrec_pipeline import constants as K
from graphrec_pipeline.serving.query import PeopleQuery, PlaceQuery
from graphrec_pipeline.serving.recommender import Recommender
from graphrec_pipeline.serving.results import PersonRecommendation, PlaceRecommendation
from graphrec_pipeline.releases import DataDir
from graphrec_pipeline.storage import Storage, StorageUnavailable
from graphrec_pipeline.world.config import WorldConfig
from graphrec_pipeline.widths import TAXONOMY_WIDTHS, Widths

_DEFAULTS = WorldConfig()
_IMPORT = ImportConfig()


class StorageResource(dg.ConfigurableResource):
    """The data directory: ``data_dir`` if set, else ``$GRAPHREC_DATA_DIR``, else ``./data``;
    a local folder or ``s3://bucket/prefix`` (``endpoint_url``, else ``$AWS_ENDPOINT_URL``,
    selects MinIO or another S3-compatible store; credentials come from the AWS chain).

    A run writes into its own release (``releases.py``) while holding the directory's lock;
    readers see the live release. Settings say how long to queue behind another run and
    how many releases to keep."""

    data_dir: str | None = Field(
        default=None, description="Data directory or s3://bucket/prefix (default: $GRAPHREC_DATA_DIR or ./data)."
    )
    endpoint_url: str | None = Field(
        default=None, description="S3-compatible endpoint for an s3:// data_dir (default: $AWS_ENDPOINT_URL, else AWS)."
    )
    lock_wait_seconds: float = Field(default=0.0, description="How long a run waits for another run's lock (0: fail fast).")
    lock_grace_seconds: float = Field(
        default=30.0, description="A lock whose process is gone is taken over after this many seconds without a step."
    )
    keep_releases: int = Field(default=3, description="Complete releases kept (the live one always is).")
    prune_min_age_hours: float = Field(default=0.0, description="Never prune a release younger than this.")

    def data(self) -> DataDir:
        return DataDir.at(self.data_dir, self.endpoint_url)

    def storage(self) -> Storage:
        """The live release, as readers see it."""
        return self.data().live()

    def for_run(self, context) -> Storage:
        """This run's own release (holding the data directory's lock)."""

        def finished(run_id: str) -> bool | None:
            run = context.instance.get_run_by_id(run_id) if run_id else None
            return None if run is None else run.is_finished

        run_id = context.run.run_id  # asset and asset-check contexts alike
        try:
            return self.data().for_run(run_id, self.lock_grace_seconds, self.lock_wait_seconds, finished)
        except StorageUnavailable as err:  # one line in the UI, not a traceback
            raise dg.Failure(description=str(err), allow_retries=False) from None


class WorldResource(dg.ConfigurableResource):
    """Scale, horizon, caps and seed of the synthetic world; or a directory of your own
    Parquet tables in the §2 schemas (``source: parquet``); or a check-in log to import
    (``source: events``: CSV or Parquet files; ``source: recbole``: RecBole atomic files),
    whose tables the ``world_import`` step derives (``ingest/``)."""

    n_users: int = Field(default=K.N_USERS, description="Number of users.")
    n_places: int = Field(default=K.N_PLACES, description="Number of places.")
    n_cities: int = Field(default=K.N_CITIES, description="Number of cities.")
    neighborhoods_per_city: int = Field(default=K.N_NEIGHBORHOODS_PER_CITY, description="Neighborhoods per city.")
    start_date: str = Field(default=_DEFAULTS.start_date, description="First day of the horizon (ISO).")
    horizon_days: int = Field(default=_DEFAULTS.horizon_days, description="Length of the horizon in days.")
    min_interactions_per_user: int = Field(default=_DEFAULTS.min_interactions_per_user)
    max_interactions_per_user: int = Field(default=_DEFAULTS.max_interactions_per_user)
    latent_weight: float = Field(default=_DEFAULTS.latent_weight, description=(
        "Spread (logit units) of the latent taste that no table states (world/latent.py); 0 gives the literal "
        "§7 world, whose visits follow the stated preferences alone (configs/seed_world.yaml)."))
    latent_dim: int = Field(default=_DEFAULTS.latent_dim, description="Rank of the latent tastes and characters.")
    homophily: float = Field(default=_DEFAULTS.homophily, description=(
        "Share of a user's latent taste that their community shares (0: none, 1: all)."))
    seed: int = Field(default=_DEFAULTS.seed, description="Root random seed: same seed and config, same bytes.")
    positive_rating: float = Field(default=POSITIVE_RATING, description=(
        "A visit rated at least this is a positive: the training examples, the validation and held-out positives, "
        "every metric and the world report. One setting of the world, so the steps of a run cannot disagree."))
    source: Literal["generate", "parquet", "events", "recbole"] = Field(
        default="generate", description="'generate' a synthetic world, import the six 'parquet' tables from "
        "source_dir, or import a check-in log: 'events' (events/places/friends/blocks as CSV or Parquet) or "
        "'recbole' (<dataset>.inter/.item/.net)."
    )
    source_dir: str | None = Field(default=None, description="Directory (or s3:// prefix) of the files to import.")
    columns: dict[str, dict[str, str]] = Field(default_factory=dict, description=(
        "Per log file (events, places, friends, blocks), the canonical column -> the file's column, e.g. "
        "{events: {user: user_id, place: venue_id}}."))
    max_categories: int = Field(default=_IMPORT.max_categories, description="Categories kept from a log, by frequency "
                                "(the rest become 'other'); the kept categories are the world's category slots.")
    max_tags: int = Field(default=_IMPORT.max_tags, description="Tags kept from a log, by frequency; the kept "
                          "tags are the world's tag slots.")

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
            latent_weight=self.latent_weight,
            latent_dim=self.latent_dim,
            homophily=self.homophily,
            seed=self.seed,
        )

    def import_config(self) -> ImportConfig:
        return ImportConfig(neighborhoods_per_city=self.neighborhoods_per_city, max_categories=self.max_categories,
                            max_tags=self.max_tags, seed=self.seed)

    @property
    def generated(self) -> bool:
        return self.source == "generate"

    @property
    def imported_log(self) -> bool:
        return self.source in ("events", "recbole")

    def cities(self, store: Storage, staged: bool = False) -> int:
        """How many cities the world has: the setting, or an imported log's city vocabulary."""
        if not self.imported_log:
            return self.n_cities
        return store.read_table("vocabulary", staged=staged).filter(pl.col("kind") == "city").height

    def widths(self, store: Storage, staged: bool = False) -> Widths:
        """The feature widths the world's tables have: the §2 contract's, or an imported
        log's vocabulary sizes."""
        if not self.imported_log:
            return TAXONOMY_WIDTHS
        return log_widths(store.read_table("vocabulary", staged=staged))


class RecommenderResource(dg.ConfigurableResource):
    """Place and people recommendations from the materialized assets (§6.3, §6.4).

    Loads the model heads, embeddings, per-city indexes and tables once, on first use.
    Works outside Dagster too: ``RecommenderResource(storage=StorageResource(data_dir="data"))``.
    """

    storage: StorageResource
    alpha: float | None = Field(default=None, description="Weight of s_compat in s_final (default: the model's).")
    candidates: int = Field(default=RETRIEVAL_CANDIDATES, description="M of the place flow: candidates retrieved per query.")
    people_candidates: int = Field(default=PEOPLE_CANDIDATES, description="M of the people flow (retrieval ranks by its score's taste match).")
    exclude_visited: bool = Field(default=True, description="Leave out places the user has already visited.")

    _recommender = PrivateAttr(default=None)

    def recommender(self) -> Recommender:
        """The loaded :class:`Recommender` (loaded on first call, then reused)."""
        if self._recommender is None:
            self._recommender = self.build()
        return self._recommender

    def build(self, visited_keys=None, store: Storage | None = None, pair_history=None) -> Recommender:
        """A fresh :class:`Recommender` with these settings over ``store`` (default: the live
        release); ``visited_keys`` replaces what counts as visited and ``pair_history`` the
        pairs' past co-attendance (evaluation: the visits before the test period, the
        training period's outings)."""
        return Recommender(
            store or self.storage.storage(), alpha=self.alpha, candidates=self.candidates,
            people_candidates=self.people_candidates,
            exclude_visited=self.exclude_visited, visited_keys=visited_keys, pair_history=pair_history,
        )

    def recommend_places(self, user_id: int, query: PlaceQuery = PlaceQuery()) -> list[PlaceRecommendation]:
        """Top-k places for one user; build the query with ``PlaceQuery.parse(time_slot="evening", ...)``."""
        return self.recommender().recommend_places(user_id, query)

    def recommend_people(self, user_id: int, query: PeopleQuery = PeopleQuery()) -> list[PersonRecommendation]:
        """Top-k people for one user; ``PeopleQuery.parse(target_place_id=..., activity_tags=...)``."""
        return self.recommender().recommend_people(user_id, query)

    def places(self, user_ids, query: PlaceQuery = PlaceQuery()) -> list[list[PlaceRecommendation]]:
        """The same place query for many users (an empty list where nothing is eligible)."""
        return self.recommender().places(user_ids, query)

    def people(self, user_ids, query: PeopleQuery = PeopleQuery()) -> list[list[PersonRecommendation]]:
        return self.recommender().people(user_ids, query)

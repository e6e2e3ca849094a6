"""The table columns serving reads, loaded once as dense arrays indexed by id, with the
vectorized lookups the filters need (visited places, blocks in either direction) and the
pairs' past co-attendance the friend logits read."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from graphrec_pipeline.coattendance import PairHistory
from graphrec_pipeline.columns import dense_from_area, dense_from_list
from graphrec_pipeline.graph.features import popularity_feature
from graphrec_pipeline.serving.query import AssetError, UnknownIdError
from graphrec_pipeline.vocabulary import TAXONOMY, Vocabulary
from graphrec_pipeline.storage import Storage
from graphrec_pipeline.widths import Widths


@dataclass
class WorldView:
    """The table columns serving reads, as dense arrays indexed by id."""

    user_city: np.ndarray
    user_neighborhood: np.ndarray  # home neighbourhood
    fine_pref: np.ndarray
    cat_pref: np.ndarray
    vibe_pref: np.ndarray
    area: np.ndarray  # (users, neighborhoods) area_freqs over the home city's neighborhoods
    place_city: np.ndarray
    place_neighborhood: np.ndarray
    place_categories: np.ndarray
    place_tags: np.ndarray
    place_price: np.ndarray
    place_slot: np.ndarray  # typical time slot
    place_popularity: np.ndarray  # the popularity feature the model reads (graph/features.py)
    visited_keys: np.ndarray  # sorted user * n_places + place of every interaction
    block_keys: np.ndarray  # sorted u * n_users + v, both directions
    history: PairHistory  # co-attendance of every pair that went out together
    widths: Widths  # of the category, tag and vibe vectors (widths.py)
    vocabulary: Vocabulary = TAXONOMY  # names of the category and tag slots
    user_keys: np.ndarray | None = None  # an imported log's original keys, by id
    place_keys: np.ndarray | None = None
    place_names: np.ndarray | None = None  # an imported log's place names, by id
    place_coords: np.ndarray | None = None  # (places, 2) latitude, longitude of an imported log (NaN: unknown)
    has_social: bool = True  # whether the world has any social edge (a log may have none)

    @classmethod
    def load(cls, store: Storage) -> "WorldView":
        try:
            users = store.read_table("users").sort("user_id")
            places = store.read_table("places").sort("place_id")
            visits = store.read_table("interactions", columns=["user_id", "place_id", "timestamp", "attended"])
            blocks = store.read_table("user_blocks")
        except FileNotFoundError as err:
            raise AssetError(f"world tables missing ({err})", "published_tables") from err
        n_users, widths = len(users), Widths.of_tables(users, places)
        pairs = visits.select("user_id", "place_id").unique().sort("user_id", "place_id")
        n_hoods = int(places["neighborhood_id"].max()) + 1 if len(places) else 1
        bu, bv = blocks["user_id"].to_numpy(), blocks["blocked_user_id"].to_numpy()
        keys_of: dict = {}
        if store.exists("user_keys") and store.exists("place_keys") and store.exists("vocabulary"):
            place_keys = store.read_table("place_keys").sort("place_id")
            keys_of = {"vocabulary": Vocabulary.from_table(store.read_table("vocabulary")),
                       "user_keys": store.read_table("user_keys").sort("user_id")["user_key"].to_numpy(),
                       "place_keys": place_keys["place_key"].to_numpy(), "place_names": place_keys["name"].to_numpy(),
                       "place_coords": place_keys.select(pl.col("latitude", "longitude").cast(pl.Float64))
                       .to_numpy()}
        keys = np.concatenate([bu * n_users + bv, bv * n_users + bu]).astype(np.int64)
        return cls(
            user_city=users["home_city_id"].to_numpy(),
            user_neighborhood=users["home_neighborhood_id"].to_numpy(),
            fine_pref=dense_from_list(users["fine_pref"], widths.tags),
            cat_pref=dense_from_list(users["cat_pref"], widths.categories),
            vibe_pref=dense_from_list(users["vibe_pref"], widths.vibes),
            area=dense_from_area(users["area_freqs"], n_hoods),
            place_city=places["city_id"].to_numpy(),
            place_neighborhood=places["neighborhood_id"].to_numpy(),
            place_categories=dense_from_list(places["category_one_hot"], widths.categories),
            place_tags=dense_from_list(places["fine_tag_vector"], widths.tags),
            place_price=places["price_band"].to_numpy(),
            place_slot=places["typical_time_slot"].to_numpy(),
            place_popularity=popularity_feature(places["base_popularity"].to_numpy()),
            visited_keys=pairs["user_id"].to_numpy() * len(places) + pairs["place_id"].to_numpy(),
            block_keys=np.unique(keys),
            history=PairHistory.from_interactions(visits, n_users),
            widths=widths,
            has_social=store.parquet_metadata("user_user_edges").num_rows > 0,
            **keys_of,
        )

    @property
    def n_users(self) -> int:
        return len(self.user_city)

    @property
    def n_places(self) -> int:
        return len(self.place_city)

    def user_key(self, user: int) -> str:
        return str(user) if self.user_keys is None else str(self.user_keys[user])

    def place_key(self, place: int) -> str:
        return str(place) if self.place_keys is None else str(self.place_keys[place])

    def user_ids(self, keys: list[str]) -> np.ndarray:
        """The ids of original user keys (a generated world's keys are its ids as text)."""
        known = self.user_keys if self.user_keys is not None else np.arange(self.n_users).astype(str)
        order = np.argsort(known, kind="stable")
        wanted = np.asarray([str(k) for k in keys])
        pos = np.minimum(np.searchsorted(known[order], wanted), len(known) - 1)
        found = known[order][pos] == wanted
        if not found.all():
            missing = wanted[~found]
            raise UnknownIdError(f"unknown user key {str(missing[0])!r}" + (f" ({len(missing)} unknown keys)" if len(missing) > 1 else ""))
        return order[pos]

    def visited(self, users: np.ndarray, places: np.ndarray) -> np.ndarray:
        """(b, m): whether ``users[i]`` has interacted with ``places[i, j]``."""
        keys = users[:, None].astype(np.int64) * self.n_places + places
        return _member(self.visited_keys, keys)

    def visited_by(self, user: int) -> np.ndarray:
        lo, hi = np.searchsorted(self.visited_keys, [user * self.n_places, (user + 1) * self.n_places])
        return self.visited_keys[lo:hi] - user * self.n_places

    def blocked(self, users: np.ndarray, others: np.ndarray) -> np.ndarray:
        """(b, m): whether ``others[i, j]`` blocked ``users[i]`` or was blocked by them."""
        return _member(self.block_keys, users[:, None].astype(np.int64) * self.n_users + others)


def _member(sorted_keys: np.ndarray, keys: np.ndarray) -> np.ndarray:
    if len(sorted_keys) == 0:
        return np.zeros(keys.shape, dtype=bool)
    pos = np.minimum(np.searchsorted(sorted_keys, keys), len(sorted_keys) - 1)
    return sorted_keys[pos] == keys

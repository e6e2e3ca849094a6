"""How many category, tag and vibe slots a world's vectors have, and the feature layouts
that follow from them.

A generated world uses the taxonomy's widths (6 categories, 100 tags, 30 vibes), which
give the 148-wide user rows and 114-wide place rows of §3.2. An imported log has its own
vocabularies, so its widths are their sizes (and one vibe slot: a log says nothing about
vibes). Every stage reads the widths of the world in hand, from the tables' list lengths
(:meth:`Widths.of_tables`) or from the saved model's config, never from the constants.

Layouts (``c`` categories, ``t`` tags, ``v`` vibes):

    user  (10 + c + t + v): city, neighbourhood | cat_pref c | fine_pref t | vibe_pref v |
                            top-5 area weights | 5 activity rates
    place (8 + c + t):      city, neighbourhood | category_one_hot c | fine_tag_vector t |
                            price_band, typical_time_slot | 4 popularity terms
    query context (t + c + 6): tags | categories | time slot one-hot
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from graphrec_pipeline.constants import (
    C_COARSE,
    C_FINE,
    C_VIBE,
    MAX_NEIGHBORHOODS_PER_USER,
    N_BEHAVIOR_STATS,
    N_TIME_SLOTS,
)

USER_CITY, USER_NEIGHBORHOOD = 0, 1
PLACE_CITY, PLACE_NEIGHBORHOOD = 0, 1
N_PLACE_POPULARITY = 4


@dataclass(frozen=True)
class Widths:
    """Slots of the category, tag and vibe vectors; the column slices of the raw user and
    place rows and of the query context follow from them."""

    categories: int = C_COARSE
    tags: int = C_FINE
    vibes: int = C_VIBE

    def __post_init__(self) -> None:
        if min(self.categories, self.tags, self.vibes) < 1:
            raise ValueError(f"every width is at least 1, not {self}")

    @classmethod
    def of_tables(cls, users: pl.DataFrame, places: pl.DataFrame) -> "Widths":
        """The widths of a world's tables: the list lengths of their first rows (the §2.7
        checks hold every row to them)."""
        if users.height == 0 or places.height == 0:
            raise ValueError("a world without users or places has no feature widths")
        return cls(categories=int(places["category_one_hot"].list.len()[0]),
                   tags=int(places["fine_tag_vector"].list.len()[0]),
                   vibes=int(users["vibe_pref"].list.len()[0]))

    @classmethod
    def of_rows(cls, user_raw: int, categories: int, tags: int) -> "Widths":
        """The widths whose user rows are ``user_raw`` wide, given the other two."""
        return cls(categories, tags, user_raw - (2 + categories + tags + MAX_NEIGHBORHOODS_PER_USER + N_BEHAVIOR_STATS))

    # -- raw user rows ------------------------------------------------------------------
    @property
    def user_raw(self) -> int:
        return 2 + self.categories + self.tags + self.vibes + MAX_NEIGHBORHOODS_PER_USER + N_BEHAVIOR_STATS

    @property
    def user_continuous(self) -> slice:
        return slice(2, self.user_raw)

    @property
    def user_cat_pref(self) -> slice:
        return slice(2, 2 + self.categories)

    @property
    def user_fine_pref(self) -> slice:
        return slice(2 + self.categories, 2 + self.categories + self.tags)

    @property
    def user_vibe_pref(self) -> slice:
        start = 2 + self.categories + self.tags
        return slice(start, start + self.vibes)

    # -- raw place rows -----------------------------------------------------------------
    @property
    def place_raw(self) -> int:
        return 2 + self.categories + self.tags + 2 + N_PLACE_POPULARITY

    @property
    def place_category(self) -> slice:
        return slice(2, 2 + self.categories)

    @property
    def place_fine(self) -> slice:
        return slice(2 + self.categories, 2 + self.categories + self.tags)

    @property
    def place_price(self) -> int:
        return 2 + self.categories + self.tags

    @property
    def place_slot(self) -> int:
        return 3 + self.categories + self.tags

    @property
    def place_popularity(self) -> slice:
        return slice(4 + self.categories + self.tags, self.place_raw)

    # -- query contexts -----------------------------------------------------------------
    @property
    def context(self) -> int:
        return self.tags + self.categories + N_TIME_SLOTS

    @property
    def context_tags(self) -> slice:
        return slice(0, self.tags)

    @property
    def context_categories(self) -> slice:
        return slice(self.tags, self.tags + self.categories)

    @property
    def context_slot(self) -> slice:
        return slice(self.tags + self.categories, self.context)

    @property
    def profiles(self) -> tuple[int, int, int]:
        """A user's taste profiles: categories, tags, vibes."""
        return (self.categories, self.tags, self.vibes)


TAXONOMY_WIDTHS = Widths()
assert (TAXONOMY_WIDTHS.user_raw, TAXONOMY_WIDTHS.place_raw, TAXONOMY_WIDTHS.context) == (148, 114, 112)

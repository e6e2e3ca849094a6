"""The names behind the category and tag slots of the feature layout.

A generated world names them with the taxonomy (``taxonomy.py``); an imported log with
its own vocabulary, published as the ``vocabulary`` table (kind, index, name). Queries
parse names and explanations print them through one :class:`Vocabulary`.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from graphrec_pipeline.taxonomy import COARSE_CATEGORIES, FINE_TAGS, city_name, neighborhood_name


@dataclass(frozen=True)
class Vocabulary:
    """Category and tag names by slot, and city names."""

    categories: tuple[str, ...]
    tags: tuple[str, ...]
    cities: tuple[str, ...] = ()  # empty: the taxonomy's city and neighbourhood names
    vibes: bool = True  # whether users' vibe vectors say anything (an imported log's are uniform)

    @classmethod
    def from_table(cls, table: pl.DataFrame) -> "Vocabulary":
        """From the ``vocabulary`` table: (kind, index, name) rows."""
        def names(kind: str) -> tuple[str, ...]:
            return tuple(table.filter(pl.col("kind") == kind).sort("index")["name"].to_list())
        return cls(names("category"), names("tag"), names("city"), vibes=False)

    def category(self, i: int) -> str:
        return self.categories[i] if i < len(self.categories) else f"category {i}"

    def tag(self, i: int) -> str:
        return self.tags[i] if i < len(self.tags) else f"tag {i}"

    def label(self, i: int) -> str:
        """A tag as a person reads it."""
        return self.tag(i).replace("_", " ")

    def city(self, city: int) -> str:
        return self.cities[city] if city < len(self.cities) else city_name(city)

    def neighborhood(self, city: int, hood: int) -> str:
        if not self.cities:
            return neighborhood_name(city, hood)
        return f"{self.cities[city]}, area {hood + 1}"


TAXONOMY = Vocabulary(tuple(COARSE_CATEGORIES), tuple(FINE_TAGS))

"""What a recommendation answer holds: one result type per flow, and a table view of them."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import polars as pl

from graphrec_pipeline.serving.explain import Explanation


@dataclass(frozen=True)
class PlaceRecommendation:
    place_id: int
    place_key: str  # the imported log's key (a generated world's: the id as text)
    name: str
    city_id: int
    neighborhood: str
    categories: list[str]
    price_band: int
    score: float
    explanations: list[str]
    reasons: list[Explanation] = field(repr=False)

    def to_dict(self) -> dict:
        """The JSON shape of the CLI and the HTTP API: ids, name, score and explanation strings."""
        return {k: getattr(self, k) for k in ("place_id", "place_key", "name", "city_id", "score", "explanations")}


@dataclass(frozen=True)
class PersonRecommendation:
    user_id: int
    user_key: str
    city_id: int
    s_compat: float
    p_attend: float
    s_final: float
    explanations: list[str]
    reasons: list[Explanation] = field(repr=False)

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in ("user_id", "user_key", "s_compat", "p_attend", "s_final", "explanations")}


def results_frame(results: list[PlaceRecommendation] | list[PersonRecommendation]) -> pl.DataFrame:
    """Results as a table (one row each, explanations joined), for notebooks and metadata."""
    rows = [{k: v for k, v in asdict(r).items() if k != "reasons"} for r in results]
    frame = pl.DataFrame(rows)
    if not len(frame):
        return frame
    return frame.with_columns(pl.col("explanations").list.join(" "), pl.col(pl.Float64).round(4))

"""What a person looks at first in a table: a preview and its key distributions."""

from __future__ import annotations

import polars as pl

_DISTRIBUTIONS: dict[str, list[str]] = {
    "users": ["home_city_id"],
    "places": ["city_id", "price_band", "typical_time_slot"],
    "interactions": ["time_of_day_bucket", "day_of_week_bucket", "attended"],
    "user_user_edges": ["co_attendance_count"],
    "friend_labels": ["label_compat", "label_attend"],
    "user_blocks": [],
}
_QUANTILES: dict[str, list[str]] = {
    "users": ["avg_sessions_per_week", "avg_views_per_session", "avg_attends_per_month"],
    "places": ["base_popularity", "avg_daily_visits", "conversion_rate", "novelty_score"],
    "interactions": ["dwell_time", "implicit_rating", "num_likes", "num_saves"],
    "user_user_edges": ["interest_overlap_score", "same_neighborhood_freq"],
    "friend_labels": [],
    "user_blocks": [],
}


def _cell(value, width: int) -> str:
    text = str(value).replace("|", "/")
    return text if len(text) <= width else text[: width - 3] + "..."


def markdown_table(frame: pl.DataFrame, max_cell: int = 40) -> str:
    header = "| " + " | ".join(frame.columns) + " |"
    rule = "|" + "---|" * len(frame.columns)
    rows = ["| " + " | ".join(_cell(v, max_cell) for v in row) + " |" for row in frame.iter_rows()]
    return "\n".join([header, rule, *rows])


def table_profile(name: str, frame: pl.DataFrame) -> dict[str, str]:
    """Markdown blocks: a 5-row preview, value counts and quantiles of the key columns."""
    out = {"preview": markdown_table(frame.head(5))}
    for col in _DISTRIBUTIONS.get(name, []):
        counts = frame[col].value_counts().sort(col).with_columns(share=(pl.col("count") / len(frame)).round(4))
        out[f"distribution_{col}"] = markdown_table(counts)
    cols = [c for c in _QUANTILES.get(name, []) if c in frame.columns]
    if cols:
        qs = [0.0, 0.1, 0.5, 0.9, 0.99, 1.0]
        rows = [{"column": c, **{f"q{q:g}": round(float(frame[c].quantile(q)), 4) for q in qs}} for c in cols]
        out["quantiles"] = markdown_table(pl.DataFrame(rows))
    return out

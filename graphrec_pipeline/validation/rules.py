"""Row-level rules of every world table (§2.7, §2.6, and the relational rules).

Each rule is a name, a Polars expression that is true on every valid row, and one line
saying what it demands; a failure reports the name and sample offending rows. Rules that
look across tables (foreign keys, the label rules) take the referenced data in a
:class:`References`, built from tables that have already passed their own checks.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import polars as pl

from graphrec_pipeline.constants import (
    N_DAY_OF_WEEK,
    N_PRICE_BANDS,
    N_TIME_OF_DAY,
    N_TIME_SLOTS,
    SUM_TOLERANCE,
)
from graphrec_pipeline.timeslots import day_of_week_expr, time_of_day_expr
from graphrec_pipeline.widths import TAXONOMY_WIDTHS, Widths
from graphrec_pipeline.world.social import (
    NEGATIVE_MAX_OVERLAP,
    POSITIVE_COATTENDANCE,
    POSITIVE_OVERLAP,
)


@dataclass(frozen=True)
class Rule:
    name: str
    expr: pl.Expr
    description: str


@dataclass
class References:
    """What cross-table rules compare against."""

    n_cities: int
    neighborhoods_per_city: int
    user_ids: pl.Series | None = None
    place_ids: pl.Series | None = None
    # Aligned to friend_labels rows: each pair's fine_pref cosine and co-attendance count.
    label_overlap: np.ndarray | None = None
    label_coattendance: np.ndarray | None = None
    extra: dict = field(default_factory=dict)
    widths: Widths = TAXONOMY_WIDTHS  # of the vectors: the §2 contract's, or an imported vocabulary's


def _between(col: str, lo, hi) -> pl.Expr:
    return pl.col(col).is_between(lo, hi)


def _vector_rules(col: str, width: int, sums_to_one: bool) -> list[Rule]:
    c = pl.col(col)
    rules = [
        Rule(f"{col}_length", c.list.len() == width, f"{col} has exactly {width} entries"),
        Rule(f"{col}_finite", c.list.eval(pl.element().is_finite()).list.all(), f"{col} has no NaN or inf"),
        Rule(f"{col}_in_unit_range", c.list.eval(pl.element().is_between(0.0, 1.0)).list.all(), f"{col} entries in [0, 1]"),
    ]
    if sums_to_one:
        rules.append(
            Rule(f"{col}_sums_to_one", (c.list.sum() - 1.0).abs() < SUM_TOLERANCE, f"{col} sums to 1 (±{SUM_TOLERANCE})")
        )
    return rules


def _finite(*cols: str) -> list[Rule]:
    return [Rule(f"{c}_finite", pl.col(c).is_finite(), f"{c} is not NaN or inf") for c in cols]


def _foreign_key(col: str, ids: pl.Series | None, target: str) -> list[Rule]:
    if ids is None:
        return []
    return [Rule(f"foreign_key_{col}", pl.col(col).is_in(ids.implode()), f"every {col} exists in {target}")]


def _ordered_pair(u: str, v: str) -> Rule:
    return Rule(f"{u}_lt_{v}", pl.col(u) < pl.col(v), f"one row per pair, stored with {u} < {v}")


def users_rules(ref: References, n_rows: int) -> list[Rule]:
    area = pl.col("area_freqs")
    stats = ["avg_sessions_per_week", "avg_views_per_session", "avg_likes_per_session",
             "avg_saves_per_session", "avg_attends_per_month"]
    return [
        Rule("user_id_range", _between("user_id", 0, n_rows - 1), "0 <= user_id < number of users"),
        Rule("home_city_id_range", _between("home_city_id", 0, ref.n_cities - 1), f"0 <= home_city_id < {ref.n_cities}"),
        Rule("home_neighborhood_id_range", _between("home_neighborhood_id", 0, ref.neighborhoods_per_city - 1),
             f"0 <= home_neighborhood_id < {ref.neighborhoods_per_city}"),
        *_vector_rules("cat_pref", ref.widths.categories, True),
        *_vector_rules("fine_pref", ref.widths.tags, True),
        *_vector_rules("vibe_pref", ref.widths.vibes, True),
        Rule("area_freqs_not_empty", area.list.len() > 0, "area_freqs names at least one neighborhood"),
        Rule("area_freqs_keys_range",
             area.list.eval(pl.element().struct.field("key").is_between(0, ref.neighborhoods_per_city - 1)).list.all(),
             f"area_freqs keys are neighborhood ids in [0, {ref.neighborhoods_per_city})"),
        Rule("area_freqs_keys_unique",
             area.list.eval(pl.element().struct.field("key")).list.n_unique() == area.list.len(),
             "area_freqs has each neighborhood at most once"),
        Rule("area_freqs_non_negative",
             area.list.eval(pl.element().struct.field("value") >= 0).list.all(), "area_freqs weights >= 0 and not NaN"),
        Rule("area_freqs_sums_to_one",
             (area.list.eval(pl.element().struct.field("value")).list.sum() - 1.0).abs() < SUM_TOLERANCE,
             f"area_freqs weights sum to 1 (±{SUM_TOLERANCE})"),
        Rule("avg_sessions_per_week_positive", pl.col("avg_sessions_per_week") > 0, "avg_sessions_per_week > 0"),
        Rule("avg_views_per_session_positive", pl.col("avg_views_per_session") > 0, "avg_views_per_session > 0"),
        *[Rule(f"{c}_non_negative", pl.col(c) >= 0, f"{c} >= 0") for c in stats[2:]],
        *_finite(*stats),
    ]


def places_rules(ref: References, n_rows: int) -> list[Rule]:
    ids = pl.col("category_ids")
    one_hot = pl.col("category_one_hot")
    return [
        Rule("place_id_range", _between("place_id", 0, n_rows - 1), "0 <= place_id < number of places"),
        Rule("city_id_range", _between("city_id", 0, ref.n_cities - 1), f"0 <= city_id < {ref.n_cities}"),
        Rule("neighborhood_id_range", _between("neighborhood_id", 0, ref.neighborhoods_per_city - 1),
             f"0 <= neighborhood_id < {ref.neighborhoods_per_city}"),
        *_vector_rules("category_one_hot", ref.widths.categories, False),
        Rule("category_ids_not_empty", ids.list.len() > 0, "a place has at least one category"),
        Rule("category_ids_range", ids.list.eval(pl.element().is_between(0, ref.widths.categories - 1)).list.all(),
             f"category ids in [0, {ref.widths.categories})"),
        Rule("category_ids_match_one_hot",
             ids.list.sort() == one_hot.list.eval((pl.element() > 0).arg_true()).list.eval(pl.element().cast(pl.Int32)),
             "category_ids are exactly the positions where category_one_hot > 0"),
        *_vector_rules("fine_tag_vector", ref.widths.tags, True),
        Rule("price_band_range", _between("price_band", 0, N_PRICE_BANDS - 1), f"0 <= price_band < {N_PRICE_BANDS}"),
        Rule("typical_time_slot_range", _between("typical_time_slot", 0, N_TIME_SLOTS - 1),
             f"0 <= typical_time_slot < {N_TIME_SLOTS}"),
        Rule("base_popularity_positive", pl.col("base_popularity") > 0, "base_popularity > 0"),
        Rule("avg_daily_visits_non_negative", pl.col("avg_daily_visits") >= 0, "avg_daily_visits >= 0"),
        Rule("conversion_rate_range", _between("conversion_rate", 0.0, 1.0), "conversion_rate in [0, 1]"),
        Rule("novelty_score_range", _between("novelty_score", 0.0, 1.0), "novelty_score in [0, 1]"),
        *_finite("base_popularity", "avg_daily_visits", "conversion_rate", "novelty_score"),
    ]


def interactions_rules(ref: References, n_rows: int) -> list[Rule]:
    return [
        *_foreign_key("user_id", ref.user_ids, "users.user_id"),
        *_foreign_key("place_id", ref.place_ids, "places.place_id"),
        Rule("dwell_time_non_negative", pl.col("dwell_time") >= 0, "dwell_time >= 0 seconds"),
        *[Rule(f"{c}_non_negative", pl.col(c) >= 0, f"{c} >= 0") for c in ("num_likes", "num_saves", "num_shares")],
        Rule("implicit_rating_range", _between("implicit_rating", 1.0, 5.0), "implicit_rating in [1, 5]"),
        Rule("time_of_day_bucket_range", _between("time_of_day_bucket", 0, N_TIME_OF_DAY - 1),
             f"0 <= time_of_day_bucket < {N_TIME_OF_DAY}"),
        Rule("day_of_week_bucket_range", _between("day_of_week_bucket", 0, N_DAY_OF_WEEK - 1),
             f"0 <= day_of_week_bucket < {N_DAY_OF_WEEK}"),
        Rule("time_buckets_match_timestamp",
             (pl.col("time_of_day_bucket") == time_of_day_expr(pl.col("timestamp")))
             & (pl.col("day_of_week_bucket") == day_of_week_expr(pl.col("timestamp"))),
             "buckets derive from the timestamp (morning 06-12, afternoon 12-17, evening 17-22, "
             "night otherwise; weekend = Saturday/Sunday)"),
        *_finite("dwell_time", "implicit_rating"),
    ]


def user_user_edges_rules(ref: References, n_rows: int) -> list[Rule]:
    return [
        _ordered_pair("user_u", "user_v"),
        *_foreign_key("user_u", ref.user_ids, "users.user_id"),
        *_foreign_key("user_v", ref.user_ids, "users.user_id"),
        Rule("interest_overlap_score_range", _between("interest_overlap_score", 0.0, 1.0), "interest_overlap_score in [0, 1]"),
        Rule("co_attendance_count_non_negative", pl.col("co_attendance_count") >= 0, "co_attendance_count >= 0"),
        Rule("same_neighborhood_freq_range", _between("same_neighborhood_freq", 0.0, 1.0), "same_neighborhood_freq in [0, 1]"),
        *_finite("interest_overlap_score", "same_neighborhood_freq"),
    ]


def friend_labels_rules(ref: References, n_rows: int) -> list[Rule]:
    rules = [
        _ordered_pair("user_u", "user_v"),
        *_foreign_key("user_u", ref.user_ids, "users.user_id"),
        *_foreign_key("user_v", ref.user_ids, "users.user_id"),
        Rule("label_compat_binary", pl.col("label_compat").is_in([0, 1]), "label_compat is 0 or 1"),
        Rule("label_attend_binary", pl.col("label_attend").is_in([0, 1]), "label_attend is 0 or 1"),
        Rule("negative_pairs_never_attend", (pl.col("label_compat") == 1) | (pl.col("label_attend") == 0),
             "label_attend is 0 wherever label_compat is 0 (§2.6)"),
    ]
    if ref.label_overlap is not None and ref.label_coattendance is not None:
        overlap = pl.lit(pl.Series("overlap", ref.label_overlap))
        coatt = pl.lit(pl.Series("coatt", ref.label_coattendance))
        rules += [
            Rule("positive_compat_rule",
                 (pl.col("label_compat") == 0) | (overlap >= POSITIVE_OVERLAP - 1e-6) | (coatt >= POSITIVE_COATTENDANCE),
                 f"label_compat=1 needs interest overlap >= {POSITIVE_OVERLAP} or co-attendance >= "
                 f"{POSITIVE_COATTENDANCE} (§2.6; overlap = cosine of fine_pref, co-attendance from user_user_edges)"),
            Rule("negative_compat_rule",
                 (pl.col("label_compat") == 1) | ((overlap < NEGATIVE_MAX_OVERLAP + 1e-6) & (coatt == 0)),
                 f"label_compat=0 needs interest overlap < {NEGATIVE_MAX_OVERLAP} and no co-attendance (§2.6)"),
        ]
    return rules


def user_blocks_rules(ref: References, n_rows: int) -> list[Rule]:
    return [
        Rule("no_self_block", pl.col("user_id") != pl.col("blocked_user_id"), "a user cannot block themself"),
        *_foreign_key("user_id", ref.user_ids, "users.user_id"),
        *_foreign_key("blocked_user_id", ref.user_ids, "users.user_id"),
    ]


RULES = {
    "users": users_rules,
    "places": places_rules,
    "interactions": interactions_rules,
    "user_user_edges": user_user_edges_rules,
    "friend_labels": friend_labels_rules,
    "user_blocks": user_blocks_rules,
}

"""Every validation rule rejects a frame that breaks it, naming the rule."""

import polars as pl
import pytest

from graphrec_pipeline.tables import WORLD_TABLES
from graphrec_pipeline.validation.rules import References
from graphrec_pipeline.validation.validate import TableValidationError, label_references, validate_table
from graphrec_pipeline.widths import Widths
from graphrec_pipeline_tests.conftest import TINY


def refs(world, labels=None) -> References:
    ref = References(TINY.n_cities, TINY.neighborhoods_per_city, world["users"]["user_id"], world["places"]["place_id"])
    ref.label_overlap, ref.label_coattendance = label_references(
        world["users"], world["user_user_edges"], world["friend_labels"] if labels is None else labels
    )
    return ref


def first_row(col: str, value) -> pl.Expr:
    """``col`` with row 0 replaced by ``value`` (keeping the dtype)."""
    return pl.when(pl.int_range(pl.len()) == 0).then(value).otherwise(pl.col(col)).alias(col)


def set_list(col: str, values: list[float]) -> pl.Expr:
    return first_row(col, pl.lit(pl.Series([values], dtype=pl.List(pl.Float32))))



BREAKS = [
    # users
    ("users", lambda w: first_row("user_id", 10**9), "user_id_range"),
    ("users", lambda w: first_row("user_id", 1), "unique_user_id"),
    ("users", lambda w: first_row("home_city_id", pl.lit(TINY.n_cities, pl.Int32)), "home_city_id_range"),
    ("users", lambda w: first_row("home_neighborhood_id", pl.lit(-1, pl.Int32)), "home_neighborhood_id_range"),
    ("users", lambda w: set_list("cat_pref", [0.5] * 6), "cat_pref_sums_to_one"),
    ("users", lambda w: set_list("cat_pref", [1.0]), "cat_pref_length"),
    ("users", lambda w: set_list("vibe_pref", [float("nan")] * 30), "vibe_pref_finite"),
    ("users", lambda w: set_list("fine_pref", [1.5] + [-0.5 / 99] * 99), "fine_pref_in_unit_range"),
    ("users", lambda w: first_row("avg_sessions_per_week", pl.lit(0.0, pl.Float32)), "avg_sessions_per_week_positive"),
    ("users", lambda w: first_row("avg_views_per_session", pl.lit(-1.0, pl.Float32)), "avg_views_per_session_positive"),
    ("users", lambda w: first_row("avg_likes_per_session", pl.lit(float("nan"), pl.Float32)), "no_nulls_avg_likes_per_session"),
    ("users", lambda w: first_row("area_freqs", pl.lit(pl.Series([[{"key": 1, "value": 0.7}]], dtype=w["users"]["area_freqs"].dtype))), "area_freqs_sums_to_one"),
    ("users", lambda w: first_row("area_freqs", pl.lit(pl.Series([[{"key": 99, "value": 1.0}]], dtype=w["users"]["area_freqs"].dtype))), "area_freqs_keys_range"),
    ("users", lambda w: first_row("area_freqs", pl.lit(pl.Series([[]], dtype=w["users"]["area_freqs"].dtype))), "area_freqs_not_empty"),
    ("users", lambda w: pl.col("home_city_id").cast(pl.Int64), "dtype_home_city_id"),
    ("users", lambda w: pl.lit(1).alias("extra"), "no_extra_columns"),
    # places
    ("places", lambda w: first_row("city_id", pl.lit(-1, pl.Int32)), "city_id_range"),
    ("places", lambda w: set_list("fine_tag_vector", [0.02] * 100), "fine_tag_vector_sums_to_one"),
    ("places", lambda w: set_list("category_one_hot", [0, 0, 2.0, 0, 0, 0]), "category_one_hot_in_unit_range"),
    ("places", lambda w: first_row("category_ids", pl.lit(pl.Series([[5]], dtype=pl.List(pl.Int32)))), "category_ids_match_one_hot"),
    ("places", lambda w: first_row("price_band", pl.lit(5, pl.Int32)), "price_band_range"),
    ("places", lambda w: first_row("typical_time_slot", pl.lit(6, pl.Int32)), "typical_time_slot_range"),
    ("places", lambda w: first_row("base_popularity", pl.lit(0.0, pl.Float32)), "base_popularity_positive"),
    ("places", lambda w: first_row("conversion_rate", pl.lit(1.5, pl.Float32)), "conversion_rate_range"),
    ("places", lambda w: first_row("novelty_score", pl.lit(float("inf"), pl.Float32)), "novelty_score_range"),
    # interactions
    ("interactions", lambda w: first_row("user_id", 10**6), "foreign_key_user_id"),
    ("interactions", lambda w: first_row("place_id", 10**6), "foreign_key_place_id"),
    ("interactions", lambda w: first_row("implicit_rating", pl.lit(5.5, pl.Float32)), "implicit_rating_range"),
    ("interactions", lambda w: first_row("implicit_rating", pl.lit(0.5, pl.Float32)), "implicit_rating_range"),
    ("interactions", lambda w: first_row("time_of_day_bucket", pl.lit(4, pl.Int32)), "time_of_day_bucket_range"),
    ("interactions", lambda w: first_row("day_of_week_bucket", pl.lit(2, pl.Int32)), "day_of_week_bucket_range"),
    ("interactions", lambda w: first_row("time_of_day_bucket", (pl.col("time_of_day_bucket") + 1) % 4), "time_buckets_match_timestamp"),
    ("interactions", lambda w: first_row("num_likes", pl.lit(-1, pl.Int32)), "num_likes_non_negative"),
    ("interactions", lambda w: first_row("dwell_time", pl.lit(float("nan"), pl.Float32)), "no_nulls_dwell_time"),
    ("interactions", lambda w: pl.col("attended").cast(pl.Int32), "dtype_attended"),
    # user_user_edges
    ("user_user_edges", lambda w: first_row("user_u", pl.col("user_v") + 1), "user_u_lt_user_v"),
    ("user_user_edges", lambda w: first_row("user_v", 10**6), "foreign_key_user_v"),
    ("user_user_edges", lambda w: first_row("interest_overlap_score", pl.lit(1.2, pl.Float32)), "interest_overlap_score_range"),
    ("user_user_edges", lambda w: first_row("co_attendance_count", pl.lit(-1, pl.Int32)), "co_attendance_count_non_negative"),
    ("user_user_edges", lambda w: first_row("same_neighborhood_freq", pl.lit(-0.1, pl.Float32)), "same_neighborhood_freq_range"),
    # friend_labels
    ("friend_labels", lambda w: first_row("label_compat", pl.lit(2, pl.Int32)), "label_compat_binary"),
    ("friend_labels", lambda w: first_row("user_u", 10**6), "foreign_key_user_u"),
    ("friend_labels", lambda w: first_row("label_attend", pl.lit(1, pl.Int32)), "negative_pairs_never_attend"),
    # user_blocks
    ("user_blocks", lambda w: first_row("blocked_user_id", pl.col("user_id")), "no_self_block"),
    ("user_blocks", lambda w: first_row("blocked_user_id", 10**6), "foreign_key_blocked_user_id"),
]


@pytest.mark.parametrize("table", WORLD_TABLES)
def test_generated_tables_pass(tiny_world, table):
    validate_table(table, tiny_world[table], refs(tiny_world))


@pytest.mark.parametrize(("table", "mutate", "rule"), BREAKS, ids=[f"{t}-{r}" for t, _, r in BREAKS])
def test_breaking_a_rule_is_rejected_by_name(tiny_world, table, mutate, rule):
    frame = tiny_world[table]
    if table == "friend_labels":  # break a negative row, which has label_attend 0
        frame = frame.sort("label_compat")
    bad = frame.with_columns(mutate(tiny_world))
    with pytest.raises(TableValidationError) as err:
        validate_table(table, bad, refs(tiny_world, bad if table == "friend_labels" else None))
    assert rule in err.value.rules
    assert rule in str(err.value)


def test_duplicate_pair_is_rejected(tiny_world):
    edges = tiny_world["user_user_edges"]
    with pytest.raises(TableValidationError, match="unique_key"):
        validate_table("user_user_edges", pl.concat([edges, edges.head(1)]), refs(tiny_world))


def test_label_rules_of_section_2_6(tiny_world):
    """A positive needs overlap >= 0.6 or co-attendance >= 2; a negative overlap < 0.3 and none."""
    labels = tiny_world["friend_labels"]
    flipped = labels.with_columns(label_compat=1 - pl.col("label_compat"), label_attend=pl.lit(0, pl.Int32))
    overlap, coatt = label_references(tiny_world["users"], tiny_world["user_user_edges"], flipped)
    assert ((overlap < 0.6) & (coatt < 2))[flipped["label_compat"].to_numpy() == 1].any()
    with pytest.raises(TableValidationError) as err:
        validate_table("friend_labels", flipped, refs(tiny_world, flipped))
    assert {"positive_compat_rule", "negative_compat_rule"} <= set(err.value.rules)


def test_error_shows_offending_rows(tiny_world):
    bad = tiny_world["interactions"].with_columns(first_row("user_id", 777_777))
    with pytest.raises(TableValidationError) as err:
        validate_table("interactions", bad, refs(tiny_world))
    failure = next(f for f in err.value.failures if f.rule == "foreign_key_user_id")
    assert failure.n_rows == 1
    assert failure.sample["user_id"].to_list() == [777_777]


def test_rules_of_one_validation_do_not_leak_into_the_next(tiny_world):
    """Rules depend on the table's size and the world's shape; each call gets its own."""
    small = tiny_world["places"].filter(pl.col("place_id") < 100)
    with pytest.raises(TableValidationError, match="place_id_range"):
        validate_table("places", small.with_columns(place_id=pl.col("place_id") + 100), refs(tiny_world))
    validate_table("places", tiny_world["places"], refs(tiny_world))
    wider = References(TINY.n_cities + 5, TINY.neighborhoods_per_city)
    validate_table("places", tiny_world["places"], wider)


def _truncated(path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


BAD_FILES = [
    ("places", lambda t: t.slice(0, 0), None, "not_empty", "found: 0 rows"),
    ("users", lambda t: t.drop_columns(["fine_pref", "home_city_id"]), None, "missing_columns",
     "missing: home_city_id, fine_pref"),
    ("interactions", lambda t: t, _truncated, "readable_parquet", "found: "),
]


@pytest.mark.parametrize(("table", "edit", "damage", "rule", "found"), BAD_FILES, ids=[b[3] for b in BAD_FILES])
def test_a_bad_file_fails_by_rule_naming_the_file(tiny_world, tmp_path, table, edit, damage, rule, found):
    from graphrec_pipeline.storage import Storage
    from graphrec_pipeline.tables import to_arrow
    from graphrec_pipeline.validation.audit import audit_staged

    store = Storage(tmp_path)
    for name in WORLD_TABLES:
        store.write_table(name, to_arrow(name, tiny_world[name]), staged=True)
    store.write_table(table, edit(to_arrow(table, tiny_world[table])), staged=True)
    if damage:
        damage(store.table_path(table, staged=True))
    failures = audit_staged(store, table, TINY.n_cities, TINY.neighborhoods_per_city, Widths())
    assert [f.rule for f in failures] == [rule]
    assert str(store.table_path(table, staged=True)) in failures[0].description
    assert found in str(failures[0].sample)

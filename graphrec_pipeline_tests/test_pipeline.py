"""The small config materializes in process: tables in Parquet and DuckDB, checks pass."""

import duckdb
import polars as pl
import pyarrow.parquet as pq
import pytest

from graphrec_pipeline.releases import DataDir
from graphrec_pipeline.tables import SCHEMAS, WORLD_TABLES, same_type


def test_every_step_and_check_succeeds(small_world):
    _, result = small_world
    assert result.success
    evaluations = result.get_asset_check_evaluations()
    expected = {f"{t}_contract" for t in WORLD_TABLES} | {
        "training_graph_has_no_leakage", "ann_indexes_recall", "recommender_answers_queries"}
    assert {e.check_name for e in evaluations} == expected
    assert all(e.passed for e in evaluations)


@pytest.mark.parametrize("table", WORLD_TABLES)
def test_published_parquet_has_contract_types(small_world, table):
    data_dir, _ = small_world
    schema = pq.read_schema(DataDir(data_dir).live().table_path(table))
    assert schema.names == SCHEMAS[table].names
    for field in SCHEMAS[table]:
        assert same_type(schema.field(field.name).type, field.type), field.name


def test_duckdb_holds_every_table_with_parquet_counts(small_world):
    data_dir, _ = small_world
    with duckdb.connect(str(data_dir / "graphrec.duckdb"), read_only=True) as con:
        for table in WORLD_TABLES:
            n_db = con.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]
            assert n_db == pq.read_metadata(DataDir(data_dir).live().table_path(table)).num_rows
        types = dict(con.execute("SELECT column_name, column_type FROM (DESCRIBE users)").fetchall())
    assert types["fine_pref"] == "FLOAT[]" and types["area_freqs"] == "MAP(INTEGER, FLOAT)"


def test_counts_are_plausible(small_world):
    live = DataDir(small_world[0]).live()
    n = {t: pq.read_metadata(live.table_path(t)).num_rows for t in WORLD_TABLES}
    assert n["users"] == 1000 and n["places"] == 1000
    assert 20 * 1000 <= n["interactions"] <= 1000 * 1000
    labels = live.read_table("friend_labels")
    assert set(labels["label_compat"].unique()) == {0, 1}
    assert 0 < labels.filter(pl.col("label_compat") == 1)["label_attend"].mean() < 1
    assert n["user_user_edges"] > n["users"]
    assert 0 < n["user_blocks"] < n["users"]


def test_world_report_orders_rankers(small_world):
    _, result = small_world
    meta = next(
        m.materialization.metadata
        for m in result.get_asset_materialization_events()
        if m.asset_key.path[-1] == "world_report"
    )
    ndcg = {r: meta[f"ndcg20_{r}_all"].value for r in ("random", "popularity", "content", "oracle", "oracle_joint")}
    assert ndcg["random"] < ndcg["popularity"] < ndcg["content"] < max(ndcg["oracle"], ndcg["oracle_joint"])
    for kind in ("solo", "outing"):
        assert f"ndcg20_oracle_{kind}" in meta and f"recall20_content_{kind}" in meta
    # Measured on this world: 0.80x; the trap must stay clearly below the oracle.
    assert meta["outing_hotspots_rule_over_best_oracle"].value < 0.95
    assert meta["gini_outing_traffic"].value <= meta["gini_solo_traffic"].value + 0.15


def test_eval_metrics_table_is_appended_per_run(small_world):
    data_dir, result = small_world
    with duckdb.connect(str(data_dir / "graphrec.duckdb"), read_only=True) as con:
        rows = con.execute(
            "SELECT run_id, model, task, metric, k, value FROM eval_metrics WHERE run_id = ?", [result.run_id]
        ).fetchall()
        splits = dict(con.execute("SELECT split, count(*) FROM interaction_split GROUP BY 1").fetchall())
    models = {r[1] for r in rows}
    assert {"graphrec", "graphrec_dot", "graphrec_served", "oracle", "oracle_joint", "oracle_slot", "popularity",
            "content", "lightgcn", "random"} <= models
    assert {r[2] for r in rows} >= {"place", "place_solo", "place_outing", "place_all", "place_context", "people",
                                    "people_new", "friend_compat", "friend_attend", "friend_attend_within_compat"}
    assert all(0.0 <= r[5] <= 1.0 for r in rows if r[3] != "lift")
    people = {r[1] for r in rows if r[2] == "people"}
    assert people == {"graphrec_served", "content", "popularity", "random"}
    assert set(splits) == {"train", "val", "test"} and splits["train"] > splits["test"] > 0


def test_training_curves_are_a_picture_and_a_table(small_world):
    import base64

    _, result = small_world
    meta = next(m.materialization.metadata for m in result.get_asset_materialization_events()
                if m.asset_key.path[-1] == "graphrec_model")
    text = meta["loss_curve"].value
    png = base64.b64decode(text.split("data:image/png;base64,", 1)[1].split(")", 1)[0])
    assert png.startswith(b"\x89PNG") and len(png) > 5_000
    assert "val_ndcg20" in text and "| epoch" in text  # the table under the picture


@pytest.mark.parametrize(("asset", "key"), [("eval_metrics", "chart"), ("world_report", "long_tail")])
def test_evaluation_and_long_tail_are_pictures(small_world, asset, key):
    import base64

    _, result = small_world
    meta = next(m.materialization.metadata for m in result.get_asset_materialization_events()
                if m.asset_key.path[-1] == asset)
    png = base64.b64decode(meta[key].value.split("data:image/png;base64,", 1)[1].split(")", 1)[0])
    assert png.startswith(b"\x89PNG") and len(png) > 5_000


def test_every_table_asset_reports_the_standard_table_metadata(small_world):
    _, result = small_world
    tables = {m.asset_key.path[-1]: m.materialization.metadata for m in result.get_asset_materialization_events()}
    for name in ("users", "places", "interactions", "user_user_edges", "friend_labels", "user_blocks",
                 "interaction_split_table", "friend_label_split_table", "user_embeddings", "place_embeddings",
                 "eval_metrics"):
        meta = tables[name]
        assert {"dagster/row_count", "dagster/column_schema", "dagster/table_name", "dagster/uri"} <= set(meta), name
        assert meta["dagster/row_count"].value > 0 and meta["dagster/uri"].value.startswith("file://")


def test_duckdb_shows_exactly_the_published_tables_of_one_release(small_world):
    data_dir, result = small_world
    with duckdb.connect(str(data_dir / "graphrec.duckdb"), read_only=True) as con:
        views = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        release = con.execute("SELECT release_id FROM release").fetchone()[0]
    assert views == {*WORLD_TABLES, "interaction_split", "friend_label_split", "user_embeddings", "place_embeddings",
                     "eval_metrics", "release"}
    assert release == result.run_id == DataDir(data_dir).live_id()

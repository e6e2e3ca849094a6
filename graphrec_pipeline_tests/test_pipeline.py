"""The small config materializes in process: tables in Parquet and DuckDB, checks pass."""

import dagster as dg
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
        "event_log_rules", "training_graph_has_no_leakage", "ann_indexes_recall", "recommender_answers_queries",
        "release_gate"}
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
    ndcg = {r: meta[f"ndcg20_{r}_all"].value
            for r in ("random", "popularity", "content", "oracle", "oracle_joint", "oracle_observed")}
    print(ndcg, meta["observed_oracle_over_oracle"].value)
    assert ndcg["random"] < min(ndcg["popularity"], ndcg["content"])
    assert max(ndcg["popularity"], ndcg["content"]) < ndcg["oracle_observed"] < ndcg["oracle"]
    # Most taste is latent: the stated part alone ranks far below the full affinity.
    assert meta["observed_oracle_over_oracle"].value < 0.8
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
    assert {"graphrec", "graphrec_dot", "graphrec_match", "graphrec_served", "oracle", "oracle_joint", "oracle_slot",
            "oracle_observed", "popularity", "content", "lightgcn", "random"} <= models
    assert {r[2] for r in rows} >= {"place", "place_solo", "place_outing", "place_all", "place_context", "people",
                                    "people_new", "friend_compat", "friend_attend", "friend_attend_within_compat",
                                    "place_users_warm", "place_users_heavy", "place_users_social"}
    ndcg = {r[1]: r[5] for r in rows if r[2] == "place" and r[3] == "ndcg" and r[4] == 20}
    assert ndcg["oracle_observed"] < ndcg["oracle"]  # the latent taste is part of the ceiling
    assert all(0.0 <= r[5] <= 1.0 for r in rows if r[3] != "lift")
    people = {r[1] for r in rows if r[2] == "people"}
    assert people == {"graphrec_served", "graphrec_served_new", "content", "content_new", "past_partners", "popularity",
                      "random", "oracle", "oracle_new"}
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
    terms = meta["friend_linear_terms"].value
    assert terms["set_by"] == "fit"  # fitted before training: the world pairs people by their fine tags
    assert terms["compatibility"]["fine_tags"] > 2 * abs(terms["compatibility"]["coarse_categories"])


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


def test_index_steps_per_city_write_what_one_process_builds(small_world, tmp_path):
    """ann_indexes builds its cities in parallel steps; their files equal a one-process build."""
    import shutil

    import dagster as dg

    from graphrec_pipeline.definitions import defs
    from graphrec_pipeline.serving.city_indexes import build_city_indexes, save_city_indexes
    from graphrec_pipeline.artifacts import INDEX_ROOT
    from graphrec_pipeline.artifacts.embeddings import load_embeddings
    from graphrec_pipeline.storage import Storage
    from graphrec_pipeline_tests.conftest import INSTANCE

    data_dir = tmp_path / "data"
    shutil.copytree(small_world[0], data_dir)
    config = {"backend": "hnswlib", "hnsw_m": 8, "ef_construction": 64}
    job = defs.resolve_implicit_global_asset_job_def().get_subset(asset_selection={dg.AssetKey("ann_indexes")})
    result = job.execute_in_process(instance=INSTANCE, run_config={
        "resources": {"storage": {"config": {"data_dir": str(data_dir)}}},
        "ops": {"ann_indexes": {"ops": {"index_plan": {"config": config}}}}})
    assert result.success
    store = DataDir(data_dir).storage(result.run_id)
    emb = load_embeddings(store)
    n_cities = len(set(emb.user_city.tolist()) | set(emb.place_city.tolist()))
    shard_logs = {e.step_key for e in INSTANCE.all_logs(result.run_id)
                  if (e.step_key or "").startswith("ann_indexes.city_shard_") and "index of city" in e.user_message}
    assert len(shard_logs) == n_cities > 1  # one city per step here: each step built its own

    from graphrec_pipeline.defs.assets.serving_assets import IndexConfig, index_settings

    one = Storage(tmp_path / "one")
    settings = index_settings(IndexConfig(**config))
    built, _ = build_city_indexes(emb, settings, seed=0, log=lambda m: None)
    version = save_city_indexes(one, built)
    live = store.read_json(f"{INDEX_ROOT}/CURRENT.json")["version"]
    files = [f for f in one.list_dir(f"{INDEX_ROOT}/{version}") if f != "manifest.json"]
    assert len(files) >= 4 * n_cities and any(f.endswith(".hnswlib") for f in files)
    for f in files:
        assert store.read_bytes(f"{INDEX_ROOT}/{live}/{f}") == one.read_bytes(f"{INDEX_ROOT}/{version}/{f}"), f
    manifest = store.read_json(f"{INDEX_ROOT}/{live}/manifest.json")
    assert [(r["kind"], r["city_id"]) for r in manifest["indexes"]] == [
        (r["kind"], r["city_id"]) for r in built.manifest["indexes"]]


def test_interactions_made_in_city_steps_equal_one_process(small_world):
    """The eight interactions_part steps and their combination publish the table that one
    process generating the whole world makes."""
    from graphrec_pipeline.tables import to_arrow
    from graphrec_pipeline.world.config import WorldConfig
    from graphrec_pipeline.world.generate import generate_world

    live = DataDir(small_world[0]).live()
    whole = generate_world(WorldConfig(n_users=1000, n_places=1000))["interactions"]
    assert to_arrow("interactions", whole).equals(live.read_arrow("interactions"))
    steps = {m.asset_key.path[-1] for m in small_world[1].get_asset_materialization_events()}
    assert {f"interactions_part_{k}" for k in range(8)} <= steps


@pytest.mark.parametrize(("asset", "key", "column"), [("eval_metrics", "places", "model"),
                                                       ("world_report", "holdout_rankers", "ranker"),
                                                       ("world_report", "calibration", "measure")])
def test_evaluation_and_calibration_tables_are_dagster_tables(small_world, asset, key, column):
    """Tables the UI renders and compares between runs, not markdown text."""
    _, result = small_world
    meta = next(m.materialization.metadata for m in result.get_asset_materialization_events()
                if m.asset_key.path[-1] == asset)
    table = meta[key]
    assert isinstance(table, dg.TableMetadataValue) and len(table.records) >= 2
    assert column in [c.name for c in table.schema.columns]
    assert all(r.data[column] is not None for r in table.records)

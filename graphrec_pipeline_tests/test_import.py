"""Bring your own data: Parquet tables in the §2 schemas replace the generator, and a
bad file is rejected by rule while the previous good outputs stay as they were."""

import shutil

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from graphrec_pipeline.releases import DataDir
from graphrec_pipeline.tables import WORLD_TABLES
from graphrec_pipeline_tests.conftest import TINY, materialize

SIZE = {"n_users": TINY.n_users, "n_places": TINY.n_places, "n_cities": TINY.n_cities}  # tiny_release's world


def import_config(source_dir) -> dict:
    return {"resources": {"world": {"config": {**SIZE, "source": "parquet", "source_dir": str(source_dir)}}}}


def copy_world(data_dir, tmp_path):
    source = tmp_path / "source"
    source.mkdir(parents=True)
    live = DataDir(data_dir).live()
    for t in WORLD_TABLES:
        shutil.copy(live.table_path(t), source / f"{t}.parquet")
    return source


def test_import_then_reject_bad_file(tiny_release, tmp_path):
    """The world_tables job publishes into its run's release (not live: no model yet)."""
    source = copy_world(tiny_release, tmp_path)
    data_dir = tmp_path / "data"

    result = materialize(data_dir, import_config(source), job="world_tables")
    assert result.success
    first = DataDir(data_dir).release_dir(result.run_id)
    for t in WORLD_TABLES:
        assert pl.read_parquet(first / f"{t}.parquet").equals(pl.read_parquet(source / f"{t}.parquet"))

    # An extra column and a foreign key that points nowhere.
    bad = pq.read_table(source / "interactions.parquet")
    user_id = bad.column("user_id").to_numpy().copy()
    user_id[:3] = 123_456
    bad = bad.set_column(0, "user_id", pa.array(user_id)).append_column("note", pa.array(["x"] * len(bad)))
    pq.write_table(bad, source / "interactions.parquet")

    result = materialize(data_dir, import_config(source), raise_on_error=False, job="world_tables")
    check = next(e for e in result.get_asset_check_evaluations() if e.check_name == "interactions_contract")
    assert not check.passed
    failed = check.metadata["failed_rules"].value
    assert "no_extra_columns" in failed and "foreign_key_user_id" in failed
    materialized = {m.asset_key.path[-1] for m in result.get_asset_materialization_events()}
    assert "published_tables" not in materialized and "user_user_edges" not in materialized
    assert not (DataDir(data_dir).release_dir(result.run_id) / "interactions.parquet").exists()
    assert DataDir(data_dir).live_id() is None  # nothing unchecked (nor any world alone) goes live


def test_parquet_type_mismatch_is_rejected(tiny_release, tmp_path):
    source = copy_world(tiny_release, tmp_path)
    places = pq.read_table(source / "places.parquet")
    places = places.set_column(1, "city_id", places.column("city_id").cast(pa.int64()))
    pq.write_table(places, source / "places.parquet")

    result = materialize(tmp_path / "data", import_config(source), raise_on_error=False, job="world_tables")
    check = next(e for e in result.get_asset_check_evaluations() if e.check_name == "places_contract")
    assert not check.passed and "parquet_types" in check.metadata["failed_rules"].value
    assert not (DataDir(tmp_path / "data").release_dir(result.run_id) / "places.parquet").exists()


def _contract(result, table):
    return next(e for e in result.get_asset_check_evaluations() if e.check_name == f"{table}_contract")


def test_unreadable_columnless_and_empty_files_fail_their_checks_by_rule(tiny_release, tmp_path):
    """No raw exception inside an asset: each bad file is staged as it is and its blocking
    check names the rule, the file and what it found."""
    source = copy_world(tiny_release, tmp_path)
    data = (source / "places.parquet").read_bytes()
    (source / "places.parquet").write_bytes(data[: len(data) // 3])
    pq.write_table(pq.read_table(source / "users.parquet").drop_columns(["home_city_id"]), source / "users.parquet")
    result = materialize(tmp_path / "data", import_config(source), raise_on_error=False, job="world_tables")
    places, users = _contract(result, "places"), _contract(result, "users")
    assert not places.passed and places.metadata["failed_rules"].value == "readable_parquet"
    assert "staging/places.parquet" in places.metadata["details"].value
    assert not users.passed and users.metadata["failed_rules"].value == "missing_columns"
    assert "missing: home_city_id" in users.metadata["details"].value

    source = copy_world(tiny_release, tmp_path / "again")
    pq.write_table(pq.read_table(source / "interactions.parquet").slice(0, 0), source / "interactions.parquet")
    result = materialize(tmp_path / "data2", import_config(source), raise_on_error=False, job="world_tables")
    empty = _contract(result, "interactions")
    assert not empty.passed and empty.metadata["failed_rules"].value == "not_empty"
    assert "found: 0 rows" in empty.metadata["details"].value
    assert DataDir(tmp_path / "data2").live_id() is None

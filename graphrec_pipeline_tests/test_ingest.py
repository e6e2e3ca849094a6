"""Importing a check-in log: both formats, column mapping, derivation from training events
only, vocabularies of other sizes, missing optional files, and every bad-input rule."""

import json
import os
import shutil
from pathlib import Path

import dagster as dg
import httpx
import polars as pl
import pytest

from graphrec_pipeline import cli

from graphrec_pipeline.ingest import BadInput, ImportConfig, import_log, log_widths, read_log
from graphrec_pipeline.ingest.derive import OTHER
from graphrec_pipeline.storage import location, maps_as_lists
from graphrec_pipeline.tables import WORLD_TABLES, to_arrow
from graphrec_pipeline.validation.rules import References
from graphrec_pipeline.releases import DataDir
from graphrec_pipeline.serving.http_api import create_app
from graphrec_pipeline.serving.query import PlaceQuery, QueryError
from graphrec_pipeline.serving.recommender import Recommender
from graphrec_pipeline.validation.validate import label_references, validate_table
from graphrec_pipeline.widths import Widths
from graphrec_pipeline_tests.conftest import TINY_OPS, ThreadServer, materialize

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
FEATURE_TABLES = ("users", "places", "user_user_edges", "friend_labels", "user_blocks")


def _import(folder: Path, fmt: str = "events", columns=None, cfg: ImportConfig = ImportConfig(neighborhoods_per_city=4)):
    return import_log(read_log(location(str(folder)), fmt, columns), cfg)


@pytest.fixture()
def log_dir(tmp_path) -> Path:
    """A writable copy of the committed CSV example."""
    shutil.copytree(EXAMPLES / "checkins", tmp_path / "log")
    return tmp_path / "log"


def _edit(path: Path, change) -> None:
    change(pl.read_csv(path, infer_schema=False)).write_csv(path)


def test_the_example_imports_into_tables_that_meet_the_contract():
    world = _import(EXAMPLES / "checkins")
    t = world.tables
    n_cities = world.extras["vocabulary"].filter(pl.col("kind") == "city").height
    overlap, coatt = label_references(t["users"], t["user_user_edges"], t["friend_labels"])
    ref = References(n_cities=n_cities, neighborhoods_per_city=4, user_ids=t["users"]["user_id"],
                     place_ids=t["places"]["place_id"], label_overlap=overlap, label_coattendance=coatt,
                     widths=log_widths(world.extras["vocabulary"]))
    for name in WORLD_TABLES:
        validate_table(name, maps_as_lists(pl.from_arrow(to_arrow(name, t[name]))), ref)  # raises on a broken rule
    keys = world.extras["user_keys"]
    assert keys["user_id"].to_list() == list(range(keys.height))
    assert keys["user_key"].to_list() == sorted(keys["user_key"].to_list())
    assert t["user_user_edges"].height > 0 and t["friend_labels"]["label_compat"].sum() > 0
    assert set(world.extras["event_split"]["split"]) == {"train", "val", "test"}


def test_recbole_atomic_files_give_the_same_world_as_the_csv_files():
    csv, recbole = _import(EXAMPLES / "checkins"), _import(EXAMPLES / "recbole", "recbole")
    for name in [t for t in WORLD_TABLES if t != "user_blocks"] + ["place_keys", "vocabulary"]:  # RecBole has no blocks
        a = csv.tables.get(name, csv.extras.get(name))
        b = recbole.tables.get(name, recbole.extras.get(name))
        assert a.equals(b), name


def test_a_column_mapping_reads_a_log_with_its_own_names(log_dir):
    _edit(log_dir / "events.csv", lambda f: f.rename({"user": "member", "place": "venue", "timestamp": "when"}))
    columns = {"events": {"user": "member", "place": "venue", "timestamp": "when"}}
    assert _import(log_dir, columns=columns).tables["interactions"].equals(_import(EXAMPLES / "checkins").tables["interactions"])
    with pytest.raises(BadInput, match="required_column.*'user'"):
        _import(log_dir)


def test_epoch_seconds_and_iso_timestamps_are_the_same_events(log_dir):
    _edit(log_dir / "events.csv", lambda f: f.with_columns(
        pl.col("timestamp").str.to_datetime().dt.epoch("s").cast(pl.String)))
    assert _import(log_dir).tables["interactions"].equals(_import(EXAMPLES / "checkins").tables["interactions"])


def test_a_held_out_event_changes_no_feature_edge_or_label(log_dir):
    """Features are derived from training events only: moving a test-period visit to
    another place (and adding a test-period co-visit) leaves every feature table as it was."""
    before = _import(log_dir)
    split = before.extras["event_split"]
    test_rows = split.with_row_index("i").filter(pl.col("split") == "test")
    assert test_rows.height > 2
    events = pl.read_csv(log_dir / "events.csv", infer_schema=False)
    late = events.sort("timestamp").tail(2)
    other_place = events.filter(~pl.col("place").is_in(late["place"].implode()))["place"][0]
    changed = pl.concat([events.filter(~pl.col("timestamp").is_in(late["timestamp"].implode())),
                         late.with_columns(place=pl.lit(other_place)),
                         late.head(1).with_columns(user=pl.lit(events["user"][0]), place=pl.lit(other_place))])
    changed.write_csv(log_dir / "events.csv")
    after = _import(log_dir)
    assert not after.tables["interactions"].equals(before.tables["interactions"])
    assert after.extras["event_split"].filter(pl.col("split") == "train").equals(split.filter(pl.col("split") == "train"))
    for name in FEATURE_TABLES:
        assert after.tables[name].equals(before.tables[name]), name


def test_a_training_event_does_change_the_features(log_dir):
    """The counterpart: the features do read the training events."""
    before = _import(log_dir)
    _edit(log_dir / "events.csv", lambda f: f.with_columns(
        place=pl.when(pl.int_range(pl.len()) == 0).then(pl.lit(f.sort("timestamp")["place"][-1])).otherwise("place")))
    assert not _import(log_dir).tables["users"].equals(before.tables["users"])


@pytest.mark.parametrize("cap", [1, 3, 6, 10])
def test_category_vocabulary_is_capped_with_other(cap):
    """The example's places have 6 categories: a smaller cap folds the rest into ``other``,
    a larger one keeps the 6; the vectors are as wide as the vocabularies."""
    world = _import(EXAMPLES / "checkins", cfg=ImportConfig(neighborhoods_per_city=4, max_categories=cap, max_tags=5))
    vocab = world.extras["vocabulary"]
    cats, tags = vocab.filter(pl.col("kind") == "category"), vocab.filter(pl.col("kind") == "tag")
    kept = min(cap, 6)
    assert cats.height == kept and tags.height == 5
    places, users = world.tables["places"], world.tables["users"]
    assert Widths.of_tables(users, places) == log_widths(vocab) == Widths(kept, 5, 1)
    assert (places["category_one_hot"].list.len() == kept).all() and (users["fine_pref"].list.len() == 5).all()
    assert tags["name"][-1] == OTHER and (cap >= 6 or cats["name"][-1] == OTHER)
    ids = world.tables["places"]["category_ids"].explode()
    assert ids.min() >= 0 and ids.max() < kept
    assert (cats["places"].head(kept - 1).diff().drop_nulls() <= 0).all()  # kept by frequency


def test_an_interaction_only_log_with_a_split_imports(tmp_path):
    """No places file, no friends, no timestamps: one city, one category, no social edges."""
    events = pl.read_csv(EXAMPLES / "checkins" / "events.csv").sort("timestamp")
    n = events.height
    split = ["train"] * (n - n // 5) + ["valid"] * (n // 10) + ["test"] * (n // 5 - n // 10)
    (tmp_path / "log").mkdir()
    events.select("user", "place").with_columns(split=pl.Series(split)).write_parquet(tmp_path / "log" / "events.parquet")
    world = _import(tmp_path / "log")
    assert world.summary["cities"] == 1 and world.summary["categories"] == 1
    assert world.tables["user_user_edges"].height == 0 and world.tables["friend_labels"].height == 0
    assert world.extras["event_split"]["split"].value_counts().sort("split")["count"].to_list() == [n // 5 - n // 10, n - n // 5, n // 10]
    ts = world.extras["event_split"].group_by("split").agg(lo=pl.col("timestamp").min(), hi=pl.col("timestamp").max())
    bounds = {r["split"]: (r["lo"], r["hi"]) for r in ts.iter_rows(named=True)}
    assert bounds["train"][1] < bounds["val"][0] and bounds["val"][1] < bounds["test"][0]


BAD = {
    "unknown_key": ("events.csv", lambda f: f.with_columns(place=pl.when(pl.int_range(pl.len()) == 3)
                                                            .then(pl.lit("nowhere")).otherwise("place"))),
    "timestamp_parsable": ("events.csv", lambda f: f.with_columns(
        timestamp=pl.when(pl.int_range(pl.len()) == 5).then(pl.lit("yesterday")).otherwise("timestamp"))),
    "duplicate_key": ("places.csv", lambda f: pl.concat([f, f.head(1)])),
    "empty_file": ("friends.csv", lambda f: f.head(0)),
    "split_value": ("events.csv", lambda f: f.with_columns(split=pl.when(pl.int_range(pl.len()) == 7)
                                                           .then(pl.lit("holdout")).otherwise(pl.lit("train")))),
    "timestamp_or_split": ("events.csv", lambda f: f.drop("timestamp")),
    "key_present": ("events.csv", lambda f: f.with_columns(user=pl.when(pl.int_range(pl.len()) == 2)
                                                           .then(pl.lit(" ")).otherwise("user"))),
    "coordinates": ("places.csv", lambda f: f.with_columns(latitude=pl.when(pl.int_range(pl.len()) == 4)
                                                           .then(pl.lit("123.0")).otherwise("latitude"))),
}


@pytest.mark.parametrize("rule", list(BAD))
def test_bad_input_names_the_rule_the_file_and_the_rows(log_dir, rule):
    file, change = BAD[rule]
    _edit(log_dir / file, change)
    with pytest.raises(BadInput) as err:
        _import(log_dir)
    assert err.value.rule == rule and err.value.file.endswith(file)
    if rule not in ("empty_file", "timestamp_or_split"):
        assert err.value.rows is not None and 1 <= err.value.rows.height <= 2  # a duplicate is both rows
        assert "'row'" in str(err.value)


# --- the pipeline on an imported log ---------------------------------------------------

def _example_run(source: Path, fmt: str = "events") -> dict:
    return {"resources": {"world": {"config": {"source": fmt, "source_dir": str(source), "neighborhoods_per_city": 4}}},
            "ops": TINY_OPS}


@pytest.fixture(scope="module")
def example_release(tmp_path_factory):
    """The committed CSV example through the whole pipeline, in process."""
    data_dir = tmp_path_factory.mktemp("example") / "data"
    return data_dir, materialize(data_dir, _example_run(EXAMPLES / "checkins"))


def _checks(result) -> dict[str, bool]:
    return {e.asset_check_evaluation_data.check_name: e.asset_check_evaluation_data.passed
            for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"}


def test_the_example_log_trains_evaluates_and_serves_with_its_own_keys(example_release):
    data_dir, result = example_release
    assert result.success
    checks = _checks(result)
    assert checks["event_log_rules"] and checks["training_graph_has_no_leakage"] and checks["places_contract"]
    data = DataDir(data_dir)
    with data.connect() as con:
        (n_keys,) = con.execute("SELECT count(*) FROM user_keys WHERE user_key LIKE 'u%'").fetchone()
        (served,) = con.execute("SELECT count(*) FROM eval_metrics WHERE model = ?", ["graphrec_served"]).fetchone()
        (friend,) = con.execute("SELECT count(*) FROM eval_metrics WHERE task LIKE 'friend%'").fetchone()
    assert n_keys == 40 and served > 0
    assert friend == 0  # derived labels are a function of the model's inputs: classifying them proves nothing
    rec = Recommender(data.live())
    n_tags = len(rec.vocabulary.tags)  # the log's 99 tags, not the taxonomy's 100; one vibe slot
    assert rec.model.widths == rec.world.widths == Widths(len(rec.vocabulary.categories), n_tags, 1) != Widths()
    assert rec.model.place_context.lin.in_features == n_tags + len(rec.vocabulary.categories) + 6  # its context layout
    with pytest.raises(QueryError, match=f"not in 0..{n_tags - 1}"):
        rec.recommend_places(0, PlaceQuery(tags=(n_tags,)))
    user = int(rec.user_ids(["u7"])[0])
    tag = rec.vocabulary.tags[0]
    places = rec.recommend_places(user, k=5, tags=tag)
    assert places and all(p.place_key.startswith("p") and p.name == f"Place {p.place_key[1:]}" for p in places)
    assert any("Place" not in e and "tag" not in e for p in places for e in p.explanations)
    people = rec.recommend_people(user, k=3)
    assert people and all(p.user_key == f"u{rec.world.user_keys[p.user_id][1:]}" for p in people)
    assert not any("vibe" in e for p in people for e in p.explanations)  # a log says nothing of vibes


def test_the_cli_and_the_http_api_take_the_original_keys(example_release, capsys):
    data_dir, _ = example_release
    assert cli.main(["recommend", "places", "--user-key", "u7", "-k", "3", "--json", "--data-dir", str(data_dir)]) == 0
    by_key = json.loads(capsys.readouterr().out)
    user = int(Recommender(DataDir(data_dir).live()).user_ids(["u7"])[0])
    assert cli.main(["recommend", "places", "--user-id", str(user), "-k", "3", "--json", "--data-dir", str(data_dir)]) == 0
    assert json.loads(capsys.readouterr().out) == by_key and all(r["place_key"].startswith("p") for r in by_key)
    assert cli.main(["recommend", "people", "--user-key", "nobody", "--data-dir", str(data_dir)]) == 2
    assert "unknown user key 'nobody'" in capsys.readouterr().err
    assert cli.main(["list", "cities", "--data-dir", str(data_dir)]) == 0
    assert capsys.readouterr().out.split() == ["City", "0", "City", "1"]  # the log's own, not the taxonomy's
    assert cli.main(["list", "cities", "--json", "--data-dir", str(data_dir)]) == 0
    assert json.loads(capsys.readouterr().out) == ["City 0", "City 1"]
    assert cli.main(["sql", "SELECT user_key, user_id FROM user_keys ORDER BY user_id LIMIT 2", "--json",
                     "--data-dir", str(data_dir)]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["user_id"] for r in rows] == [0, 1] and all(r["user_key"].startswith("u") for r in rows)

    app = create_app(str(data_dir))
    with ThreadServer(app) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        one = client.get("/recommend/places", params={"user_key": "u7", "k": 3})
        assert one.status_code == 200 and one.json()["user_id"] == user and one.json()["user_key"] == "u7"
        assert [r["place_key"] for r in one.json()["results"]] == [r["place_key"] for r in by_key]
        batch = client.post("/recommend/people/batch", json={"user_keys": ["u7", "u8"], "k": 2})
        assert batch.status_code == 200 and [r["user_key"] for r in batch.json()["results"]] == ["u7", "u8"]
        assert client.get("/recommend/places", params={"user_key": "u7", "user_id": 1}).status_code == 422
        page = client.get("/", params={"user_key": "u7"})  # the page plots the log's own coordinates
        assert page.status_code == 200 and "axes: longitude, latitude" in page.text and "City 0" in page.text
        assert "Place " in page.text.split('id="places"')[1]  # places named as the log names them
        assert client.post("/recommend/places/batch", json={"k": 2}).status_code == 422
        assert client.get("/recommend/places", params={"user_key": "nobody"}).status_code == 404


def test_a_bad_log_fails_its_check_and_the_live_release_stays(example_release, log_dir, tmp_path):
    data_dir = tmp_path / "data"
    shutil.copytree(example_release[0], data_dir)
    live = DataDir(data_dir).live_id()
    _edit(log_dir / "events.csv", BAD["unknown_key"][1])
    result = materialize(data_dir, _example_run(log_dir), raise_on_error=False)
    assert not result.success and _checks(result) == {"event_log_rules": False}
    assert DataDir(data_dir).live_id() == live


@pytest.mark.slow
def test_the_recbole_example_runs_end_to_end(tmp_path):
    result = materialize(tmp_path / "data", _example_run(EXAMPLES / "recbole", "recbole"))
    assert result.success and _checks(result)["training_graph_has_no_leakage"]


def _interaction_only(folder: Path) -> Path:
    """The example's events alone (no places, friends or timestamps), with a given split."""
    events = pl.read_csv(EXAMPLES / "checkins" / "events.csv").sort("timestamp")
    n = events.height
    split = ["train"] * (n - n // 5) + ["valid"] * (n // 10) + ["test"] * (n // 5 - n // 10)
    folder.mkdir(parents=True)
    events.select("user", "place").with_columns(split=pl.Series(split)).write_parquet(folder / "events.parquet")
    return folder


def test_an_interaction_only_log_runs_end_to_end_without_social_data(tmp_path):
    data_dir = tmp_path / "data"
    result = materialize(data_dir, _example_run(_interaction_only(tmp_path / "log")))
    assert result.success
    rec = Recommender(DataDir(data_dir).live())
    assert rec.model.widths == Widths(1, 1, 1)  # no place metadata: one "other" category, used as the tag too
    assert rec.recommend_places(0, k=3)
    with pytest.raises(QueryError, match="no social data"):
        rec.recommend_people(0, k=3)


def test_without_a_city_column_cities_are_clusters_of_coordinates(log_dir):
    """The example's two cities lie 2 degrees apart: dropping `city` finds the same two
    groups from the coordinates alone, and a stray place joins its nearest city."""
    with_city = _import(log_dir)
    _edit(log_dir / "places.csv", lambda f: f.drop("city").with_columns(
        latitude=pl.when(pl.int_range(pl.len()) == 0).then(pl.col("latitude").cast(pl.Float64) + 0.6)
        .otherwise(pl.col("latitude").cast(pl.Float64)).cast(pl.String)))
    clustered = _import(log_dir)
    assert clustered.summary["cities"] == with_city.summary["cities"] == 2
    same = with_city.tables["places"]["city_id"] == with_city.tables["places"]["city_id"][0]
    assert ((clustered.tables["places"]["city_id"] == clustered.tables["places"]["city_id"][0]) == same).all()


def test_an_imported_log_keeps_the_split_its_features_were_derived_with(tmp_path):
    run = _example_run(EXAMPLES / "checkins")
    run["ops"] = {**run["ops"], "interaction_split_table": {"config": {"val_fraction": 0.2}}}
    result = materialize(tmp_path / "data", run, raise_on_error=False)
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert failure.step_key == "interaction_split_table" and "split at import" in str(failure.event_specific_data)


def test_the_file_sensor_starts_a_run_when_the_log_changes(log_dir):
    from graphrec_pipeline.defs.jobs import source_files_changed
    from graphrec_pipeline.defs.resources import WorldResource

    world = WorldResource(source="events", source_dir=str(log_dir))
    first = dg.build_sensor_context(resources={"world": world})
    assert isinstance(source_files_changed(first), dg.SkipReason) and first.cursor  # the first look records
    same = dg.build_sensor_context(cursor=first.cursor, resources={"world": world})
    assert isinstance(source_files_changed(same), dg.SkipReason)
    (log_dir / "blocks.csv").write_text("user,blocked\nu1,u2\n")
    os.utime(log_dir / "blocks.csv", (1, 1))  # a file rewritten: its time changes, whatever the clock's resolution
    changed = dg.build_sensor_context(cursor=first.cursor, resources={"world": world})
    request = source_files_changed(changed)
    assert isinstance(request, dg.RunRequest) and request.run_key == changed.cursor != first.cursor
    generated = dg.build_sensor_context(resources={"world": WorldResource()})
    assert isinstance(source_files_changed(generated), dg.SkipReason)

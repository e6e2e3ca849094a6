"""A data dir on object storage (``s3://``), against a real S3-compatible server on loopback
(moto in server mode): whole-or-absent writes, the conditional-put lock, a failed run that
leaves the live release serving, the CLI / resource / SQL reading from the bucket, and one
clear line for each way the store can be wrong."""

import json

import pytest

from graphrec_pipeline.cli import main
from graphrec_pipeline.defs.resources import RecommenderResource, StorageResource
from graphrec_pipeline.releases import DataDir, LockHeld
from graphrec_pipeline.serving.query import PlaceQuery
from graphrec_pipeline.storage import ObjectStore, Storage
from graphrec_pipeline.tables import WORLD_TABLES
from graphrec_pipeline_tests.conftest import (
    ThreadServer,
    free_port,
    materialize,
    new_bucket,
    start_moto,
    tiny_run_config,
)


def _cli(args: list[str], capsys) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def test_a_write_is_whole_or_absent(s3_endpoint):
    store = ObjectStore(f"{new_bucket(s3_endpoint)}/d", s3_endpoint)
    store.write_bytes("a/b.json", b'{"v": 1}')
    with pytest.raises(RuntimeError, match="half-way"):
        with store.write("a/b.json") as tmp:
            tmp.write_bytes(b'{"v": 2, "trunc')
            raise RuntimeError("crashed half-way")
    assert store.read_bytes("a/b.json") == b'{"v": 1}'
    assert store.files() == ["a/b.json"] and store.list("a") == ["b.json"]
    assert store.create("lock", b"one") and not store.create("lock", b"two")
    assert store.read_bytes("lock") == b"one"
    store.remove("lock")
    assert not store.replace_if_unchanged("lock", b"three") and not store.exists("lock")
    assert not store.touch("lock") and not store.exists("lock")
    store.write_bytes("lock", b"four")
    assert store.touch("lock") and store.read_bytes("lock") == b"four"


def test_tables_round_trip_through_the_bucket(s3_endpoint, tiny_world):
    store = Storage(ObjectStore(f"{new_bucket(s3_endpoint)}/r", s3_endpoint))
    users = tiny_world["users"]
    from graphrec_pipeline.tables import to_arrow

    store.write_table("users", to_arrow("users", users), staged=True)
    store.publish(["users"])
    assert store.read_table("users").equals(Storage(store.location).read_table("users", staged=True))
    assert store.parquet_metadata("users").num_rows == len(users)
    assert store.digest("users.parquet") == store.location.sha256("staging/users.parquet")


def test_a_process_opens_one_client_per_endpoint_and_credentials(monkeypatch):
    """Data dirs on one endpoint share an S3 client; another endpoint or other credentials
    in the environment get their own (no request is made here)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "one")
    a = ObjectStore("s3://bucket/a", "http://127.0.0.1:1")
    assert ObjectStore("s3://other/b", "http://127.0.0.1:1").fs is a.fs
    assert ObjectStore("s3://bucket/a", "http://127.0.0.1:2").fs is not a.fs
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "two")
    assert ObjectStore("s3://bucket/a", "http://127.0.0.1:1").fs is not a.fs


def test_the_lock_is_a_conditional_put(s3_endpoint):
    where = f"{new_bucket(s3_endpoint)}/d"
    first, second = DataDir(where, s3_endpoint), DataDir(where, s3_endpoint)
    first.acquire("run-a")
    first.acquire("run-a")  # re-entrant for the run's other steps
    with pytest.raises(LockHeld, match="run-a"):
        second.acquire("run-b")
    second.acquire("run-b", finished=lambda run_id: run_id == "run-a")  # run-a ended without releasing
    assert second.holds("run-b") and not first.holds("run-a")
    second.release_lock("run-b")
    assert not second.location.exists(".lock")


@pytest.mark.slow
def test_cli_resource_and_sql_answer_from_the_bucket(s3_tiny_world, capsys, monkeypatch):
    data, _ = s3_tiny_world
    where, endpoint = data.location.url(), data.location.endpoint_url
    code, out, err = _cli(["--data-dir", where, "--endpoint-url", endpoint, "recommend", "places", "--user-id", "3",
                           "-k", "5", "--json"], capsys)
    assert code == 0, err
    assert len(json.loads(out)) == 5

    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)  # the standard variable works as well
    code, out, err = _cli(["--data-dir", where, "releases", "--json"], capsys)
    assert code == 0 and [r["live"] for r in json.loads(out)] == [True], err
    code, out, err = _cli(["--data-dir", where, "sql", "SELECT count(*) AS n FROM interactions", "--csv"], capsys)
    live = data.live()
    assert code == 0 and out.splitlines() == ["n", str(live.parquet_metadata("interactions").num_rows)], err
    code, out, err = _cli(["--data-dir", where, "sql", "SELECT * FROM no_such_view"], capsys)
    assert code == 2 and err.startswith("graphrec: error: sql:") and err.count("\n") == 1, err

    with data.connect() as con:
        views = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        assert set(WORLD_TABLES) <= views and "release" in views
        assert con.execute("SELECT release_id FROM release").fetchone()[0] == live.release
        assert con.execute("SELECT count(*) FROM users").fetchone()[0] == live.parquet_metadata("users").num_rows

    resource = RecommenderResource(storage=StorageResource(data_dir=where, endpoint_url=endpoint))
    found = resource.recommend_places(3, PlaceQuery.parse(k=4))
    assert len(found) == 4 and all(r.place_id >= 0 for r in found)
    assert resource.recommender().release == live.release


@pytest.mark.slow
def test_a_failed_run_on_the_bucket_leaves_the_release_live(s3_tiny_world, monkeypatch):
    data, _ = s3_tiny_world
    fs = data.location.fs
    bucket = data.location.bucket
    work = DataDir(f"s3://{bucket}/failed-run", data.location.endpoint_url)
    fs.copy(data.location.prefix, work.location.prefix, recursive=True)
    live = work.live_id()
    source = work.location.child("source")
    for t in WORLD_TABLES:
        source.write_bytes(f"{t}.parquet", work.live().read_bytes(f"{t}.parquet"))
    source.write_bytes("interactions.parquet", b"PAR1 not really parquet")

    monkeypatch.setenv("AWS_ENDPOINT_URL", data.location.endpoint_url)  # the import reads the bucket too
    world = tiny_run_config(42)["resources"]["world"]["config"]
    config = {"resources": {"world": {"config": {**world, "source": "parquet", "source_dir": source.url()}}}}
    result = materialize(work.location.url(), config, raise_on_error=False, job="full_pipeline",
                         endpoint_url=data.location.endpoint_url)
    assert not result.success
    check = next(e for e in result.get_asset_check_evaluations() if e.check_name == "interactions_contract")
    assert not check.passed and "readable_parquet" in check.metadata["failed_rules"].value
    assert work.live_id() == live and [r["release"] for r in work.releases()] == [live]
    assert not work.location.exists(f"releases/{result.run_id}/RELEASE.json")
    assert len(RecommenderResource(storage=StorageResource(data_dir=work.location.url())).recommend_places(5)) == 10


def _one_line(args: list[str], capsys) -> str:
    code, _, err = _cli(args, capsys)
    assert code == 2 and err.startswith("graphrec: error: ") and err.count("\n") == 1, err
    return err


@pytest.mark.slow
def test_a_wrong_store_gets_one_clear_line(s3_endpoint, tmp_path, capsys):
    dead = f"http://127.0.0.1:{free_port()}"
    err = _one_line(["--data-dir", "s3://bucket/d", "--endpoint-url", dead, "releases"], capsys)
    assert dead in err
    err = _one_line(["--data-dir", "s3://no-such-bucket/d", "--endpoint-url", s3_endpoint, "releases"], capsys)
    assert "bucket 'no-such-bucket' does not exist" in err
    (tmp_path / "file").write_text("x")
    err = _one_line(["--data-dir", str(tmp_path / "file"), "releases"], capsys)
    assert "is a file" in err

    strict, url = start_moto({"INITIAL_NO_AUTH_ACTION_COUNT": "0"})  # checks signatures: our keys are unknown
    try:
        err = _one_line(["--data-dir", "s3://any-bucket/d", "--endpoint-url", url, "releases"], capsys)
        assert "denied" in err and "credentials" in err
    finally:
        strict.terminate()


def test_a_run_against_a_missing_bucket_fails_naming_it(s3_endpoint):
    result = materialize("s3://missing-bucket/graphrec", raise_on_error=False, job="world_tables",
                         endpoint_url=s3_endpoint,
                         run_config={"resources": {"world": {"config": {"n_users": 300, "n_places": 300, "n_cities": 3}}}})
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "bucket 'missing-bucket' does not exist" in failure.event_specific_data.error.message



@pytest.mark.slow
def test_concurrent_first_steps_copy_the_live_release_once(s3_tiny_world):
    from concurrent.futures import ThreadPoolExecutor

    from graphrec_pipeline.releases import file_digests

    data, _ = s3_tiny_world
    work = DataDir(f"s3://{data.location.bucket}/seeding", data.location.endpoint_url)
    data.location.fs.copy(data.location.prefix, work.location.prefix, recursive=True)
    live, run = work.live_id(), "00000000-0000-0000-0000-0000000000bb"
    with ThreadPoolExecutor(4) as pool:
        assert {s.release for s in pool.map(lambda _: work.for_run(run), range(4))} == {run}
    assert file_digests(work.release_location(run)) == file_digests(work.release_location(live))
    assert work.location.exists(f"releases/{run}/.seeded")
    assert not [n for n in work.location.list("releases") if n.endswith(".seeding")]
    work.release_lock(run)


@pytest.mark.slow
def test_the_http_api_serves_from_the_bucket(s3_tiny_world, monkeypatch):
    import httpx

    from graphrec_pipeline.serving.http_api import create_app

    data, _ = s3_tiny_world
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)  # the endpoint is an argument, as `graphrec serve` passes it
    app = create_app(data.location.url(), poll_seconds=0.2, endpoint_url=data.location.endpoint_url)
    with ThreadServer(app) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        got = client.get("/recommend/places", params={"user_id": 3, "k": 4})
        assert got.status_code == 200 and len(got.json()["results"]) == 4
        assert got.json()["release"] == data.live_id() == client.get("/version").json()["release"]

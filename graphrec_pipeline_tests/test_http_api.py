"""The HTTP API: real servers on free loopback ports, called with a real HTTP client."""

import os
import pickle
import shutil
import subprocess
import sys
import threading
import time
import uuid

import httpx
import numpy as np
import pytest
import uvicorn

from graphrec_pipeline.releases import DataDir
from graphrec_pipeline.serving.http_api import create_app
from graphrec_pipeline.serving.live import LiveRecommender
from graphrec_pipeline.serving.query import PeopleQuery, PlaceQuery
from graphrec_pipeline_tests.conftest import ThreadServer, free_port, wait_ready


def _copy(served, dest) -> DataDir:
    shutil.copytree(served["data"].root, dest)
    return DataDir(dest)


def _new_release(data: DataDir) -> str:
    """Another complete release of the same content, as a run that changed nothing makes."""
    run_id = str(uuid.uuid4())
    data.for_run(run_id)
    data.seal(run_id, {"run_id": run_id})
    data.switch(run_id, verify=False)
    data.release_lock(run_id)
    return run_id


@pytest.fixture(scope="module")
def api(served, tmp_path_factory):
    data = _copy(served, tmp_path_factory.mktemp("http") / "data")
    app = create_app(str(data.root), poll_seconds=0.1)
    with ThreadServer(app) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        yield {"client": client, "app": app, "data": data, "rec": served["recommender"]}


def test_places_and_people_answer_as_the_recommender_does(api):
    client, rec = api["client"], api["rec"]
    got = client.get("/recommend/places", params={"user_id": 42, "k": 5, "time_slot": "evening", "tags": "jazz,techno"})
    assert got.status_code == 200
    body = got.json()
    want = rec.recommend_places(42, PlaceQuery.parse(k=5, time_slot="evening", tags="jazz,techno"))
    assert [r["place_id"] for r in body["results"]] == [r.place_id for r in want]
    assert body["results"][0] == want[0].to_dict() | {"score": pytest.approx(want[0].score, rel=1e-6)}
    assert body["release"] == api["data"].live_id() and sorted(body["query"]["tags"]) == ["jazz", "techno"]
    target = int(np.flatnonzero(rec.world.place_city == rec.world.user_city[42])[0])
    people = client.get("/recommend/people", params={"user_id": 42, "target_place_id": target}).json()
    assert [r["user_id"] for r in people["results"]] == [r.user_id for r in rec.recommend_people(
        42, PeopleQuery(target_place_id=target))]
    assert set(people["results"][0]) == {"user_id", "user_key", "s_compat", "p_attend", "s_final", "explanations"}
    new = client.get("/recommend/people", params={"user_id": 42, "k": 50, "new_people": "true"}).json()
    assert new["query"]["new_people"] is True
    assert [r["user_id"] for r in new["results"]] == [r.user_id for r in rec.recommend_people(
        42, PeopleQuery(k=50, new_people=True))]


def test_batches_answer_as_single_calls(api):
    client = api["client"]
    users = [3, 17, 17, 250]
    query = {"k": 7, "time_slot": "weekend_night", "categories": ["clubs", "dining"], "max_price": 3}
    batch = client.post("/recommend/places/batch", json={"user_ids": users, **query}).json()
    assert [b["user_id"] for b in batch["results"]] == users
    for b in batch["results"]:
        single = client.get("/recommend/places", params={"user_id": b["user_id"], **query,
                                                         "categories": "clubs,dining"}).json()
        assert [r["place_id"] for r in b["results"]] == [r["place_id"] for r in single["results"]]
    people = client.post("/recommend/people/batch", json={"user_ids": users, "activity_tags": ["jazz"]}).json()
    for b in people["results"]:
        single = client.get("/recommend/people", params={"user_id": b["user_id"], "activity_tags": "jazz"}).json()
        assert [r["user_id"] for r in b["results"]] == [r["user_id"] for r in single["results"]]


BAD = [
    ("/recommend/places", {"user_id": 5000}, 404, "unknown user id 5000"),
    ("/recommend/places", {"user_id": "abc"}, 422, "user_id: expected an integer, got 'abc'"),
    ("/recommend/places", {}, 422, "user_id or user_key: give one of the two"),
    ("/recommend/places", {"user_id": 1, "time-slot": "evening"}, 422, "unknown parameter 'time-slot'"),
    ("/recommend/places", {"user_id": 1, "tags": "jaz"}, 400, "unknown tag 'jaz'; closest: jazz"),
    ("/recommend/places", {"user_id": 1, "categories": "dinning"}, 400, "closest: dining"),
    ("/recommend/places", {"user_id": 1, "time_slot": "noon"}, 400, "invalid time slot 'noon'"),
    ("/recommend/places", {"user_id": 1, "k": 0}, 400, "k must be an integer in 1..200"),
    ("/recommend/places", {"user_id": 1, "k": 201}, 400, "k must be an integer in 1..200"),
    ("/recommend/places", {"user_id": 1, "max_price": 9}, 400, "max_price must be a price band"),
    ("/recommend/places", {"user_id": 1, "city_id": 99}, 404, "unknown city id 99"),
    ("/recommend/people", {"user_id": 1, "target_place_id": 5000}, 404, "unknown place id 5000"),
    ("/recommend/people", {"user_id": 1, "activity_tags": "zzzz"}, 400, "unknown tag 'zzzz'"),
    ("/recommend/people", {"user_id": 1, "new_people": "maybe"}, 400, "new_people: expected true or false"),
]


@pytest.mark.parametrize(("path", "params", "status", "message"), BAD)
def test_bad_queries_get_a_4xx_naming_the_parameter(api, path, params, status, message):
    """422 malformed, 400 a value outside what is valid, 404 an unknown id: as the OpenAPI
    document says."""
    got = api["client"].get(path, params=params)
    assert got.status_code == status
    assert message in got.json()["error"] and "Traceback" not in got.text
    documented = api["client"].get("/openapi.json").json()["paths"][path]["get"]["responses"]
    assert str(status) in documented


def test_bad_batches_and_an_empty_city(api, monkeypatch):
    client = api["client"]
    too_many = client.post("/recommend/places/batch", json={"user_ids": list(range(1001))})
    assert too_many.status_code == 422 and "user_ids" in too_many.json()["error"]
    for field, value in (("time_slot", True), ("k", "10"), ("user_ids", [1, True])):
        loose = client.post("/recommend/places/batch", json={"user_ids": [1, 2], field: value})
        assert loose.status_code == 422 and field in loose.json()["error"], (field, loose.text)
    unknown = client.post("/recommend/people/batch", json={"user_ids": [1, 4000]})
    assert unknown.status_code == 404 and "unknown user id 4000" in unknown.json()["error"]
    rec = api["app"].state.live.get()
    monkeypatch.delitem(rec.indexes.indexes["place"], 2)
    empty = client.get("/recommend/places", params={"user_id": 1, "city_id": 2})
    assert empty.status_code == 404 and "city 2 has no places" in empty.json()["error"]


def test_an_internal_error_is_a_500_without_traceback(api, monkeypatch):
    rec = api["app"].state.live.get()
    monkeypatch.setattr(rec, "recommend_people", lambda *a, **k: (_ for _ in ()).throw(KeyError("boom")))
    got = api["client"].get("/recommend/people", params={"user_id": 1})
    assert got.status_code == 500 and "KeyError" in got.json()["error"]
    assert "Traceback" not in got.text and "boom" not in got.text


def test_version_and_health_name_the_release(api):
    client, data = api["client"], api["data"]
    version = client.get("/version").json()
    live = data.live_id()
    assert version["release"] == live and version["model_sha256"] == api["rec"].emb.model_sha256
    assert version["index_version"] and len(version["world_sha256"]) == 64 and version["world_built"]
    health = client.get("/healthz").json()
    loaded_at = health.pop("loaded_at")
    assert health == {"status": "ok", "serving": live, "live": live, "error": None} and loaded_at > 0
    paths = client.get("/openapi.json").json()["paths"]
    assert "/recommend/places/batch" in paths
    assert [p["name"] for p in paths["/recommend/people"]["get"]["parameters"]] == [
        "user_id", "user_key", "k", "city_id", "target_place_id", "activity_tags", "new_people"]


def test_missing_assets_are_a_503_until_a_release_goes_live(served, tmp_path):
    data = DataDir(tmp_path / "data")
    data.root.mkdir()
    app = create_app(str(data.root), poll_seconds=0.1)
    with ThreadServer(app) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        got = client.get("/recommend/places", params={"user_id": 1})
        assert got.status_code == 503 and "no release is live" in got.json()["error"]
        assert str(data.root) not in got.text and "the data directory" in got.json()["error"]  # no server paths
        assert "materialize" in got.json()["error"] and client.get("/healthz").status_code == 503
        shutil.rmtree(data.root)
        _copy(served, data.root)
        deadline = time.monotonic() + 300  # a guard against a hang, not a figure
        while client.get("/healthz").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert client.get("/recommend/places", params={"user_id": 1}).json()["release"] == data.live_id()



def test_a_release_with_an_unreadable_file_is_a_503_naming_it(served, tmp_path):
    """Digests that match but bytes no parser reads: the server starts, answers 503 with
    one JSON line naming the file (no server path), and serves once a good release is live."""
    import hashlib
    import json

    data = _copy(served, tmp_path / "data")
    good = data.live_id()
    bad = _new_release(data)
    weights = data.release_dir(bad) / "model" / "graphrec.safetensors"
    weights.unlink()  # a release shares its predecessor's unchanged files (hard links)
    weights.write_bytes(b"garbage" * 9)
    manifest = json.loads((data.release_dir(bad) / "RELEASE.json").read_text())
    manifest["files"]["model/graphrec.safetensors"] = hashlib.sha256(weights.read_bytes()).hexdigest()
    (data.release_dir(bad) / "RELEASE.json").write_text(json.dumps(manifest))
    app = create_app(str(data.root), poll_seconds=0.1)
    with ThreadServer(app) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        got = client.get("/recommend/places", params={"user_id": 1})
        assert got.status_code == 503 and "graphrec.safetensors: not readable as safetensors" in got.json()["error"]
        assert str(data.root) not in got.text and client.get("/healthz").status_code == 503
        data.switch(good)
        deadline = time.monotonic() + 300  # a guard against a hang, not a figure
        while client.get("/healthz").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert client.get("/recommend/places", params={"user_id": 1}).json()["release"] == good


def test_a_url_the_http_parser_rejects_gets_a_json_400(api):
    """A 100 kB URL (over the parser's limit, so no route sees it), sent on a raw socket:
    HTTP clients refuse to send one."""
    import json
    import socket
    from urllib.parse import urlsplit

    url = urlsplit(str(api["client"].base_url))
    with socket.create_connection((url.hostname, url.port), timeout=30) as conn:
        conn.sendall(b"GET /recommend/places?user_id=1&tags=" + b"x" * 100_000 + b" HTTP/1.1\r\nHost: a\r\n\r\n")
        reply = b""
        while chunk := conn.recv(65536):
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400") and b"content-type: application/json" in head.lower()
    assert "could not be parsed before routing" in json.loads(body)["error"]

def test_an_old_version_finishes_what_it_started(served, tmp_path):
    data = _copy(served, tmp_path / "data")
    live = LiveRecommender(data)
    live.refresh()
    old = live.get()
    new = _new_release(data)
    assert live.refresh() and live.get().release == new and old.release != new
    shutil.rmtree(data.release_dir(old.release))  # pruned under it: the old object still answers
    assert len(old.recommend_places(3, PlaceQuery(k=5))) == 5


@pytest.mark.slow
def test_releases_swap_under_load_without_a_failed_request(served, tmp_path):
    """``graphrec serve`` as a user starts it; requests loop while a new release goes live
    and is rolled back; every answer is a 200 and names one of the two releases."""
    data = _copy(served, tmp_path / "data")
    first, port = data.live_id(), free_port()
    proc = subprocess.Popen([sys.executable, "-m", "graphrec_pipeline.cli", "--data-dir", str(data.root), "serve",
                             "--port", str(port), "--poll-seconds", "0.1"], stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, proc)
        seen, failures, stop = [], [], threading.Event()

        def hammer(user: int) -> None:
            with httpx.Client(base_url=url, timeout=30) as client:
                while not stop.is_set():
                    r = client.get("/recommend/places", params={"user_id": user, "k": 10})
                    (seen if r.status_code == 200 and len(r.json()["results"]) == 10 else failures).append(
                        r.json().get("release") if r.status_code == 200 else r.text)

        threads = [threading.Thread(target=hammer, args=(u,)) for u in (1, 2, 3, 4)]
        for t in threads:
            t.start()

        def wait_for(release: str, answers: int = 5) -> None:
            """Until the hammering clients got ``answers`` answers from ``release`` (a guard
            against a hang, however slow the machine)."""
            deadline = time.monotonic() + 120
            while seen.count(release) < answers and not failures:
                assert time.monotonic() < deadline, f"{release} never served"
                time.sleep(0.05)

        wait_for(first)
        second = _new_release(data)
        wait_for(second)
        subprocess.run([sys.executable, "-m", "graphrec_pipeline.cli", "--data-dir", str(data.root), "rollback",
                        first], check=True, capture_output=True)
        n_before = seen.count(first)
        deadline = time.monotonic() + 120
        while seen.count(first) < n_before + 5 and not failures:
            assert time.monotonic() < deadline, f"{first} never served again"
            time.sleep(0.05)
        stop.set()
        for t in threads:
            t.join()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert not failures, failures[:3]
    assert set(seen) == {first, second}


def test_serve_rejects_bad_options_in_one_line(served, capsys):
    from graphrec_pipeline.cli import main

    for option in ("--candidates", "--people-candidates"):
        assert main(["--data-dir", str(served["data"].root), "serve", option, "5"]) == 2
        err = capsys.readouterr().err
        assert "--people-candidates in 10..1000" in err and ", 5" in err and err.count("\n") == 1
    assert main(["--data-dir", str(served["data"].root), "serve", "--max-body-bytes", "0"]) == 2
    assert "--max-body-bytes >= 1, not 0" in capsys.readouterr().err


def test_serve_hands_its_options_to_every_worker_as_arguments(served, monkeypatch):
    """``graphrec serve --workers 2`` gives each spawned worker the app factory with the
    options bound (picklable, as a spawned worker receives it), and no environment variable."""
    from uvicorn.supervisors import Multiprocess

    from graphrec_pipeline.cli import main

    started = {}
    monkeypatch.setattr(Multiprocess, "run", lambda self: started.setdefault("config", self.config))
    monkeypatch.setattr(uvicorn.Config, "bind_socket", lambda self: None)
    before = dict(os.environ)
    assert main(["--data-dir", str(served["data"].root), "serve", "--workers", "2", "--max-body-bytes", "100",
                 "--candidates", "150", "--people-candidates", "40", "--poll-seconds", "0.5"]) == 0
    assert dict(os.environ) == before
    config = started["config"]
    factory = config.app
    assert pickle.dumps(factory)  # a spawned worker receives it pickled (a closure or lambda would raise here)
    assert factory.func is create_app and config.workers == 2 and config.factory
    assert factory.args == (str(served["data"].root),) and factory.keywords.items() >= {
        "poll_seconds": 0.5, "candidates": 150, "people_candidates": 40, "max_body_bytes": 100}.items()
    app = factory()
    live = app.state.live
    assert (live.poll_seconds, live.settings) == (0.5, {"candidates": 150, "people_candidates": 40})
    with ThreadServer(app) as server:
        big = httpx.post(server.url + "/recommend/places/batch", content=b"x" * 200, timeout=30)
    assert big.status_code == 413


def test_metrics_count_requests_by_route_and_status_and_name_the_release(api):
    client, live = api["client"], api["data"].live_id()

    def count(route: str, status: int) -> float:
        for line in client.get("/metrics").text.splitlines():
            if line.startswith("graphrec_http_requests_total{") and f'route="{route}"' in line \
                    and f'status="{status}"' in line:
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    before_ok, before_bad = count("/recommend/places", 200), count("/recommend/places", 400)
    assert client.get("/recommend/places", params={"user_id": 1, "k": 3}).status_code == 200
    assert client.get("/recommend/places", params={"user_id": 1, "k": 0}).status_code == 400
    assert client.get("/no/such/path").status_code == 404
    assert count("/recommend/places", 200) == before_ok + 1 and count("/recommend/places", 400) == before_bad + 1
    assert count("unmatched", 404) >= 1
    text = client.get("/metrics").text
    assert f'graphrec_release_info{{release="{live}"}} 1.0' in text
    assert 'graphrec_http_request_seconds_bucket{le="+Inf",route="/recommend/places"}' in text


def test_every_route_documents_its_answer_and_its_errors(api):
    doc = api["client"].get("/openapi.json").json()
    schemas = doc["components"]["schemas"]
    for path in ("/recommend/places", "/recommend/people", "/recommend/places/batch", "/recommend/people/batch",
                 "/healthz", "/version"):
        (op,) = doc["paths"][path].values()
        ref = op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
        assert schemas[ref]["properties"], path
        assert "503" in op["responses"], path
    answer = api["client"].get("/recommend/places", params={"user_id": 1, "k": 2}).json()
    assert set(answer) == set(schemas["PlacesAnswer"]["properties"])
    assert set(answer["results"][0]) == set(schemas["PlaceOut"]["properties"])


def test_health_and_metrics_answer_while_an_answer_is_being_computed(api, monkeypatch):
    """Answers run off the event loop: with one held mid-computation, /healthz and
    /metrics still answer (the client's timeout is only a hang guard)."""
    rec = api["app"].state.live.get()
    entered, release = threading.Event(), threading.Event()
    original = rec.recommend_places

    def held(*args, **kwargs):
        entered.set()
        release.wait(60)
        return original(*args, **kwargs)

    monkeypatch.setattr(rec, "recommend_places", held)
    client = api["client"]
    batch = {}
    worker = threading.Thread(target=lambda: batch.setdefault(
        "answer", client.get("/recommend/places", params={"user_id": 1, "k": 3})))
    worker.start()
    try:
        assert entered.wait(60)
        assert client.get("/healthz", timeout=30).status_code == 200
        assert client.get("/metrics", timeout=30).status_code == 200
        assert "answer" not in batch  # still held
    finally:
        release.set()
        worker.join(60)
    assert batch["answer"].status_code == 200


def test_a_token_guards_every_route_but_health_and_big_bodies_are_refused(served, tmp_path):
    data = _copy(served, tmp_path / "data")
    app = create_app(str(data.root), poll_seconds=0.1, token="s3cret", max_body_bytes=10_000)
    with ThreadServer(app) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        params = {"user_id": 1, "k": 2}
        assert client.get("/recommend/places", params=params).status_code == 401
        wrong = client.get("/recommend/places", params=params, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401 and "bearer token" in wrong.json()["error"]
        auth = {"Authorization": "Bearer s3cret"}
        assert client.get("/recommend/places", params=params, headers=auth).status_code == 200
        assert client.get("/healthz").status_code == 200  # probes need no token
        assert client.get("/metrics").status_code == 401
        ok = client.post("/recommend/places/batch", json={"user_ids": [1, 2], "k": 2}, headers=auth)
        assert ok.status_code == 200
        big = client.post("/recommend/places/batch", content=b'{"user_ids": [' + b"1, " * 5_000 + b'1]}',
                          headers={**auth, "content-type": "application/json"})
        assert big.status_code == 413 and "over 10,000 bytes" in big.json()["error"]

        def chunks():  # no content-length: counted while read
            yield b'{"user_ids": ['
            for _ in range(100):
                yield b"1, " * 100
            yield b"1]}"
        streamed = client.post("/recommend/places/batch", content=chunks(),
                               headers={**auth, "content-type": "application/json"})
        assert streamed.status_code == 413

"""One consistent release: readers never see two worlds, a killed or concurrent run never
serves wrong answers, corrupt files get one clear line, pruning and rollback are safe."""

import contextlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from graphrec_pipeline.cli import main
from graphrec_pipeline.releases import POINTER, DataDir, LockHeld, ReleaseError
from graphrec_pipeline.serving.recommender import Recommender
from graphrec_pipeline.storage import LocalDir, Storage
from graphrec_pipeline.storage.warehouse import build_duckdb
from graphrec_pipeline_tests.conftest import materialize, tiny_run_config, warm_process

run_config = tiny_run_config


def _run(data_dir: Path, config: dict, out: Path) -> None:
    result = materialize(data_dir, config, raise_on_error=False)
    out.write_text("SUCCESS" if result.success else "FAILED")


def _run_then_die(data_dir: Path, config: dict, live: str, marker: str, out: Path) -> None:
    data_dir, write = data_dir.resolve(), LocalDir.write

    @contextlib.contextmanager
    def write_then_die(self, name):
        with write(self, name) as tmp:
            yield tmp
        rel = self._p(name).resolve().relative_to(data_dir).parts
        if rel[:1] == ("releases",) and len(rel) > 2 and rel[1] != live and "/".join(rel[2:]) == marker:
            out.write_text(f"REACHED {marker}")
            os.killpg(0, signal.SIGKILL)  # the run and anything it started, as kill -9 would

    LocalDir.write = write_then_die
    _run(data_dir, config, out)


def finish(proc, out: Path) -> tuple[int, str]:
    """Wait for a run's process; its exit code and what it wrote (a process still running
    after the guard is killed and reports no exit code)."""
    proc.join(timeout=600)  # a guard against a hang, not a figure
    code = proc.exitcode
    if code is None:
        proc.kill()
        proc.join()
    return code, out.read_text() if out.exists() else ""


def start_run(data_dir: Path, seed: int, out: Path):
    return warm_process(_run, data_dir, run_config(seed), out)


def run_until_killed(data_dir: Path, seed: int, live: str, marker: str) -> tuple[int, str]:
    """A run in another process that SIGKILLs its whole process group right after its
    release's ``marker`` file is written: the crash lands at that phase every time, on any
    machine."""
    out = data_dir.parent / "run.out"
    return finish(warm_process(_run_then_die, data_dir, run_config(seed), live, marker, out), out)


def wrong_city_answers(data_dir: Path, users=(0, 150, 299)) -> int:
    """Places recommended outside the user's home city, through the CLI's entry point."""
    wrong = 0
    home = DataDir(data_dir).live().read_table("users")["home_city_id"]
    for u in users:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = main(["--data-dir", str(data_dir), "recommend", "places", "--user-id", str(u), "-k", "5", "--json"])
        assert code == 0
        wrong += sum(p["city_id"] != home[u] for p in json.loads(out.getvalue()))
    return wrong


def embedding_city_mismatches(data_dir: Path) -> int:
    with DataDir(data_dir).connect() as con:
        return con.execute("SELECT count(*) FROM user_embeddings e JOIN users u USING (user_id) "
                           "WHERE e.city_id <> u.home_city_id").fetchone()[0]


@pytest.fixture(scope="module")
def published(tiny_release, tmp_path_factory):
    """The tiny seed-42 release live, and a pristine copy to restore from."""
    data_dir = tmp_path_factory.mktemp("releases") / "data"
    shutil.copytree(tiny_release, data_dir, symlinks=True)
    pristine = data_dir.parent / "pristine"
    shutil.copytree(tiny_release, pristine, symlinks=True)
    return data_dir, pristine


def fresh(published, tmp_path) -> Path:
    """A private copy of the published data dir (views re-pointed at the copy)."""
    dest = tmp_path / "data"
    shutil.copytree(published[1], dest)
    data = DataDir(dest)
    build_duckdb(data.live(), data.location)
    return dest


KILL_POINTS = {  # phase -> the file of the new release whose write marks it
    "world generation": "staging/users.parquet",
    "publishing": "users.parquet",
    "training": "graph/manifest.json",
    "export": "model/manifest.json",
    "index building": "serving/embeddings.json",
}


@pytest.mark.slow
@pytest.mark.parametrize("phase", list(KILL_POINTS))
def test_kill_9_leaves_the_previous_release_live(published, tmp_path, phase):
    data_dir = fresh(published, tmp_path)
    data = DataDir(data_dir)
    live = data.live_id()
    code, out = run_until_killed(data_dir, 7, live, KILL_POINTS[phase])
    assert code == -signal.SIGKILL and f"REACHED {KILL_POINTS[phase]}" in out, f"{phase} was not reached: {out}"
    assert data.live_id() == live
    assert embedding_city_mismatches(data_dir) == 0
    assert wrong_city_answers(data_dir) == 0
    if phase == "training":  # a re-run cleans the debris, completes and switches
        assert materialize(data_dir, run_config(7)).success
        assert data.live_id() not in (None, live)
        assert embedding_city_mismatches(data_dir) == 0 and wrong_city_answers(data_dir) == 0
        assert not [p for p in data_dir.rglob("*.tmp")]
        incomplete = [d for d in (data_dir / "releases").iterdir() if not (d / "RELEASE.json").exists()]
        assert incomplete == []


def _read(data_dir: Path, stop: Path, log: Path, out: Path) -> None:
    """Loop over DuckDB and the recommender until ``stop`` exists, logging each release read;
    then write ``OK <reads> BAD <wrong answers> SEEN <releases>`` to ``out``."""
    ok = bad = 0
    seen = []
    while not stop.exists():
        data = DataDir(data_dir)
        with data.connect() as con:
            release, = con.execute("SELECT release_id FROM release").fetchone()
            mismatch, = con.execute("SELECT count(*) FROM user_embeddings e JOIN users u USING (user_id) "
                                    "WHERE e.city_id <> u.home_city_id").fetchone()
        rec = Recommender(data.live())
        home = rec.world.user_city
        bad += int(mismatch > 0) + sum(int(rec.world.place_city[r.place_id] != home[u])
                                       for u in (0, 50, 100) for r in rec.recommend_places(u))
        ok += 1
        seen.append(release[:8])
        with open(log, "a") as f:
            f.write(release[:8] + "\n")
    out.write_text(" ".join(["OK", str(ok), "BAD", str(bad), "SEEN", *sorted(set(seen))]))


@pytest.mark.slow
def test_a_reader_never_sees_two_releases(published, tmp_path):
    """A reader in another process loops over DuckDB and the recommender from before the run
    until after its switch (it says which releases it has read: no timing involved)."""
    data_dir, log, out = fresh(published, tmp_path), tmp_path / "read", tmp_path / "reader.out"
    reader = warm_process(_read, data_dir, tmp_path / "stop", log, out)

    def until_read(release: str) -> None:
        deadline = time.monotonic() + 300  # a guard against a hang, not a figure
        while not (log.exists() and release[:8] in log.read_text().split()):
            assert reader.is_alive() and time.monotonic() < deadline, finish(reader, out)
            time.sleep(0.05)

    try:
        until_read(DataDir(data_dir).live_id())
        assert materialize(data_dir, run_config(7)).success
        until_read(DataDir(data_dir).live_id())
    finally:
        (tmp_path / "stop").touch()
        code, last = finish(reader, out)
    last = last.split()
    assert code == 0 and last[0] == "OK" and int(last[1]) >= 2 and last[2] == "BAD" and int(last[3]) == 0, last
    assert len(set(last[5:])) == 2, last  # it read before and after the switch


@pytest.mark.slow
def test_a_second_run_fails_fast_naming_the_holder(published, tmp_path):
    data_dir = fresh(published, tmp_path)
    data = DataDir(data_dir)
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (data_dir / ".lock").write_text(json.dumps({"run_id": "other-run", "pid": holder.pid,
                                                    "host": os.uname().nodename, "since": "2026-11-30T00:00:00"}))
        result = materialize(data_dir, run_config(7), raise_on_error=False)
        assert not result.success
        failure = next(e for e in result.all_events if e.is_step_failure)
        assert "locked by run other-run" in str(failure.event_specific_data.error) and str(holder.pid) in str(
            failure.event_specific_data.error)
        assert data.live_id() == DataDir(published[1]).live_id()
    finally:
        holder.kill()
        holder.wait()
    again = materialize(data_dir, run_config(42))  # its process is gone: the lock is taken over
    assert again.success and data.live_id() == again.run_id
    lightgcn = next(m.materialization.metadata for m in again.get_asset_materialization_events()
                    if m.asset_key.path[-1] == "lightgcn_baseline")
    assert lightgcn["reused"].value and lightgcn["trained_in"].value == DataDir(published[1]).live_id()
    with DataDir(data_dir).connect() as con:  # the same graph: the evaluation ranks the kept embeddings
        assert con.execute("SELECT count(*) FROM eval_metrics WHERE model = 'lightgcn' AND run_id = ?",
                           [again.run_id]).fetchone()[0] > 0


@pytest.mark.slow
def test_concurrent_runs_end_in_one_runs_release(published, tmp_path):
    data_dir = fresh(published, tmp_path)
    runs = [(start_run(data_dir, seed, tmp_path / f"{seed}.out"), tmp_path / f"{seed}.out") for seed in (7, 8)]
    outs = [finish(proc, out)[1] for proc, out in runs]
    assert sum("SUCCESS" in o for o in outs) >= 1, outs
    data = DataDir(data_dir)
    data.verify(data.live_id())
    assert embedding_city_mismatches(data_dir) == 0 and wrong_city_answers(data_dir) == 0


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: max(len(path.read_bytes()) // 2, 1)])


CORRUPTIONS = {
    "model config": lambda r: _truncate(r / "model" / "config.json"),
    "index pointer": lambda r: _truncate(r / "indexes" / "CURRENT.json"),
    "index version outside": lambda r: (r / "indexes" / "CURRENT.json").write_text('{"version": "../.."}'),
    "index file": lambda r: _truncate(next((r / "indexes").glob("*/*city0.*"))),
    "embeddings table": lambda r: _truncate(r / "user_embeddings.parquet"),
    "users table": lambda r: _truncate(r / "users.parquet"),
    "embeddings manifest": lambda r: _truncate(r / "serving" / "embeddings.json"),
    "model weights": lambda r: _truncate(r / "model" / "graphrec.safetensors"),
    "release manifest": lambda r: _truncate(r / "RELEASE.json"),
    "pointer": lambda r: _truncate(r.parents[1] / POINTER),
    "pointer outside": lambda r: (r.parents[1] / POINTER).write_text('{"release": "../.."}'),
}


@pytest.mark.parametrize("case", list(CORRUPTIONS))
def test_corrupt_files_exit_2_with_one_line(published, tmp_path, capsys, case):
    data_dir = fresh(published, tmp_path)
    CORRUPTIONS[case](DataDir(data_dir).live().root)
    code = main(["--data-dir", str(data_dir), "recommend", "places", "--user-id", "1"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("graphrec: error: ") and err.count("\n") == 1, err



def _garbage_with_its_digest(release: Path, rel: str, payload: bytes) -> None:
    """Replace a release file and record the new bytes' digest: the manifest check passes,
    so only the file's own reader can find it unreadable."""
    import hashlib

    (release / rel).unlink()  # a release shares its predecessor's unchanged files (hard links)
    (release / rel).write_bytes(payload)
    manifest = json.loads((release / "RELEASE.json").read_text())
    manifest["files"][rel] = hashlib.sha256(payload).hexdigest()
    (release / "RELEASE.json").write_text(json.dumps(manifest))


def _replace_by_folder(path: Path) -> None:
    path.unlink()
    path.mkdir()


DAMAGED = {  # case -> (damage, what the error names)
    "database truncated": (lambda d, r: _truncate(d / "graphrec.duckdb"), None),  # rebuilt by the reader
    "database is a folder": (lambda d, r: _replace_by_folder(d / "graphrec.duckdb"), "graphrec.duckdb"),
    "pointer is a folder": (lambda d, r: _replace_by_folder(d / POINTER), POINTER),
    "releases is a file": (lambda d, r: (shutil.rmtree(d / "releases"), (d / "releases").write_text("x")), "releases/"),
    "garbage Parquet, digest matching": (lambda d, r: _garbage_with_its_digest(r, "places.parquet", b"garbage" * 9),
                                         "places.parquet"),
    "garbage safetensors, digest matching": (lambda d, r: _garbage_with_its_digest(
        r, "model/graphrec.safetensors", b"garbage" * 9), "graphrec.safetensors"),
    "garbage model config, digest matching": (lambda d, r: _garbage_with_its_digest(r, "model/config.json", b"{"),
                                              "config.json"),
    "model config lacks a key, digest matching": (lambda d, r: _garbage_with_its_digest(r, "model/config.json", b"{}"),
                                                  "config.json"),
}


EDIT_LOOP_DAMAGE = ("pointer is a folder", "garbage Parquet, digest matching")  # the rest are marked slow


@pytest.mark.parametrize("case", [c if c in EDIT_LOOP_DAMAGE else pytest.param(c, marks=pytest.mark.slow)
                                  for c in DAMAGED])
def test_a_damaged_data_dir_is_one_line_for_every_command(published, tmp_path, capsys, case):
    """Each command either works around the damage (a truncated database is rebuilt) or
    exits 2 with one line naming the damaged file; never a traceback."""
    data_dir = fresh(published, tmp_path)
    live = DataDir(data_dir).live_id()
    damage, names = DAMAGED[case]
    damage(data_dir, data_dir / "releases" / live)
    commands = [["recommend", "places", "--user-id", "1"], ["recommend", "people", "--user-id", "1"],
                ["releases"], ["sql", "SELECT count(*) FROM users"], ["rollback", live]]
    failed = []
    for command in commands:
        code = main(["--data-dir", str(data_dir), *command])
        err = capsys.readouterr().err
        assert code in (0, 2), (command, code, err)
        if code == 2:
            assert err.startswith("graphrec: error: ") and err.count("\n") == 1, (command, err)
            assert names is not None and names in err, (command, err)
            failed.append(command[0])
    assert failed if names else not failed, failed

def test_a_hostile_file_name_is_no_sql(tmp_path):
    store = Storage(tmp_path / "r", release="x")
    (tmp_path / "r").mkdir()
    import pyarrow as pa
    import pyarrow.parquet as pq

    name = 'x" AS SELECT 1; CREATE TABLE pwned AS SELECT 42 AS v; CREATE VIEW "y'
    pq.write_table(pa.table({"a": [1]}), tmp_path / "r" / f"{name}.parquet")
    pq.write_table(pa.table({'b"; DROP TABLE t; --': [1]}), tmp_path / "r" / "users.parquet")
    db = build_duckdb(store, LocalDir(tmp_path), "g.duckdb")
    import duckdb

    with duckdb.connect(str(db), read_only=True) as con:
        names = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        assert names == {"users", "release"}
        assert con.execute("SELECT * FROM users").fetchall() == [(1,)]


def test_pruning_spares_foreign_folders_and_the_live_release(published, tmp_path):
    data_dir = fresh(published, tmp_path)
    data = DataDir(data_dir)
    live = data.live_id()
    for foreign in ("backup", "manual", ".hidden"):
        (data_dir / "releases" / foreign).mkdir()
    (data_dir / "indexes-backup").mkdir()
    older = []
    for i in range(3):
        rid = f"00000000-0000-0000-0000-00000000000{i}"
        shutil.copytree(data.release_dir(live), data.release_dir(rid))
        manifest = json.loads((data.release_dir(rid) / "RELEASE.json").read_text())
        manifest["created"] = f"2020-01-0{i + 1}T00:00:00+00:00"
        (data.release_dir(rid) / "RELEASE.json").write_text(json.dumps(manifest))
        older.append(rid)
    removed = data.prune(keep=2)
    assert set(removed) == set(older[:2]) and live not in removed
    assert all((data_dir / "releases" / f).exists() for f in ("backup", "manual", ".hidden"))
    assert (data_dir / "indexes-backup").exists() and data.live_id() == live
    data.verify(live)
    with pytest.raises(ReleaseError):
        data.release_dir("../..")


@pytest.mark.slow
def test_rollback_points_readers_at_an_earlier_release(published, tmp_path, capsys):
    data_dir = fresh(published, tmp_path)
    data = DataDir(data_dir)
    first = data.live_id()
    assert materialize(data_dir, run_config(7)).success
    second = data.live_id()
    assert second != first
    assert main(["--data-dir", str(data_dir), "releases"]) == 0
    listing = capsys.readouterr().out
    assert f"* {second}" in listing and first in listing and "served_place_ndcg20=" in listing
    assert main(["--data-dir", str(data_dir), "rollback", first]) == 0
    assert data.live_id() == first
    with data.connect() as con:
        assert con.execute("SELECT release_id FROM release").fetchone()[0] == first
    assert main(["--data-dir", str(data_dir), "rollback", "00000000-0000-0000-0000-000000000009"]) == 2
    assert data.live_id() == first


def test_a_switch_cut_short_is_mended_by_the_next_reader_and_the_next_lock_holder(published, tmp_path):
    """The next release's database is built before the pointer moves (a crash there
    changes nothing readers see); a crash after the pointer moved and before the database
    did is found by the next reader, or the next run taking the lock, and rebuilt."""
    from graphrec_pipeline.releases import DUCKDB_NEXT
    from graphrec_pipeline.storage.warehouse import connect

    def release_view(con) -> str:
        with con:
            return con.execute("SELECT release_id FROM release").fetchone()[0]

    data_dir = fresh(published, tmp_path)
    data = DataDir(data_dir)
    first, second = data.live_id(), "00000000-0000-0000-0000-0000000000aa"
    shutil.copytree(data_dir / "releases" / first, data_dir / "releases" / second)

    build_duckdb(data.storage(second), data.location, DUCKDB_NEXT)  # killed before the pointer moved
    assert data.live_id() == first and release_view(data.connect()) == first

    (data_dir / POINTER).write_text(json.dumps({"release": second}))  # killed after it moved
    assert release_view(connect(data.location)) == first  # split: DuckDB still serves the old release
    assert release_view(data.connect()) == second  # the next reader mends it

    (data_dir / POINTER).write_text(json.dumps({"release": first}))
    data.acquire("next-run")  # the next run, before any reader
    assert release_view(connect(data.location)) == first
    assert not data.repair_duckdb()  # nothing left to mend


def test_a_data_dir_whose_path_is_a_glob_reads_only_its_own_files(published, tmp_path):
    """DuckDB reads paths as glob patterns: ``a[1]`` would match a sibling ``a1``. The views
    escape the data directory's path, so each reads its own tables."""
    import pyarrow.parquet as pq

    odd = fresh(published, tmp_path / "a[1]*")
    sibling = tmp_path / "a1x" / "data"  # what a[1]* matches as a glob
    shutil.copytree(odd, sibling)
    live = DataDir(sibling).live_id()
    users = sibling / "releases" / live / "users.parquet"
    pq.write_table(pq.read_table(users).slice(0, 5), users)
    rows = pq.read_metadata(odd / "releases" / live / "users.parquet").num_rows
    build_duckdb(DataDir(odd).live(), DataDir(odd).location)
    with DataDir(odd).connect() as con:
        assert con.execute("SELECT count(*) FROM users").fetchone()[0] == rows > 5
        assert con.execute("SELECT count(*) FROM eval_metrics").fetchone()[0] > 0  # a folder table too


def test_a_copied_data_dir_keeps_working_after_the_original_is_gone(published, tmp_path, capsys):
    """The database's views name files by path; a copy's first connection sees that the
    database was built for another data directory and rebuilds it over its own files."""
    original = fresh(published, tmp_path / "original")
    copy = tmp_path / "copy"
    shutil.copytree(original, copy, symlinks=True)
    shutil.rmtree(original)
    with DataDir(copy).connect() as con:
        assert con.execute("SELECT count(*) FROM users").fetchone()[0] > 0
        assert con.execute("SELECT data_dir FROM release").fetchone()[0] == str(copy.resolve())
    assert main(["--data-dir", str(copy), "sql", "SELECT count(*) AS n FROM interactions", "--csv"]) == 0
    assert capsys.readouterr().out.splitlines()[1] != "0"


def test_a_lock_is_reentrant_for_its_run_and_released(tmp_path):
    data = DataDir(tmp_path)
    data.acquire("run-a")
    data.acquire("run-a")
    with pytest.raises(LockHeld, match="locked by run run-a"):
        data.acquire("run-b")
    data.release_lock("run-a")
    data.acquire("run-b")
    assert data.holds("run-b")


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_dead_holders_lock_is_kept_for_its_grace_then_taken_over(tmp_path):
    """The grace is measured on the data dir's clock: a fixed clock says where in it we are."""
    import socket

    data = DataDir(tmp_path)
    (tmp_path / ".lock").write_text(json.dumps({"run_id": "crashed", "pid": _dead_pid(),
                                                "host": socket.gethostname(), "since": "2026-11-30T00:00:00"}))
    written = (tmp_path / ".lock").stat().st_mtime
    data.clock = lambda: written + 10.0
    with pytest.raises(LockHeld, match=r"its process is gone, .* 30 s grace ends at .* \(20 s from now\)"):
        data.acquire("next", grace_seconds=30.0)
    data.clock = lambda: written + 31.0
    data.acquire("next", grace_seconds=30.0)
    assert data.holds("next")


def _race_for_the_lock(path: str, run_id: str, start, done, results) -> None:
    """One writer: wait for the others, try to take the stale lock once, report, and stay
    alive until every writer has tried (a winner that exited would look dead itself)."""
    start.wait()
    try:
        DataDir(path).acquire(run_id, grace_seconds=0.0)
        results.put(run_id)
    except LockHeld:
        results.put(None)
    done.wait()


@pytest.mark.slow  # eighty processes
def test_many_writers_taking_over_one_stale_lock_exactly_one_wins(tmp_path):
    """A stale lock raced by four processes at once, twenty times: each time exactly one
    writer holds it, and the lock names that writer."""
    import multiprocessing
    import socket

    ctx = multiprocessing.get_context("fork")
    dead = _dead_pid()
    for round_ in range(20):
        lock = tmp_path / ".lock"
        lock.write_text(json.dumps({"run_id": "crashed", "pid": dead, "host": socket.gethostname(),
                                    "since": "2026-11-30T00:00:00"}))
        start, done, results = ctx.Barrier(4), ctx.Barrier(4), ctx.Queue()
        procs = [ctx.Process(target=_race_for_the_lock, args=(str(tmp_path), f"run-{round_}-{i}", start, done, results))
                 for i in range(4)]
        for p in procs:
            p.start()
        winners = [w for w in (results.get(timeout=120) for _ in procs) if w is not None]
        holder = json.loads(lock.read_text())["run_id"]
        for p in procs:
            p.join(timeout=120)
        assert len(winners) == 1 and holder == winners[0], (round_, winners, holder)


def test_a_live_holders_lock_is_never_taken_over(tmp_path):
    import socket

    data = DataDir(tmp_path, clock=lambda: 1e12)  # far beyond any grace
    (tmp_path / ".lock").write_text(json.dumps({"run_id": "running", "pid": os.getpid(),
                                                "host": socket.gethostname(), "since": "2026-11-30T00:00:00"}))
    with pytest.raises(LockHeld, match="locked by run running .* wait for it to finish"):
        data.acquire("next", grace_seconds=30.0)


def test_a_heartbeat_never_brings_a_released_lock_back(tmp_path):
    """The heartbeat refreshes the lock's time from a thread while the run's last step
    releases it: a refresh racing the release must not write the lock again (it did, and
    the still-running process then held the data directory for good)."""
    from graphrec_pipeline.releases import LOCK, _HEARTBEATS

    data = DataDir(tmp_path)
    for i in range(30):
        run = f"run-{i}"
        data.acquire(run)
        data.heartbeat(run, every_seconds=0.0)
        time.sleep(0.002)
        data.release_lock(run)
        deadline = time.monotonic() + 120  # a guard against a hang; the thread ends on its own
        while (data.location.url(), run) in _HEARTBEATS and time.monotonic() < deadline:
            time.sleep(0.001)
        assert not data.location.exists(LOCK), f"lock back after release {i}"
    assert not data.location.touch(LOCK) and not data.location.exists(LOCK)


def test_the_first_steps_of_a_run_copy_the_live_release_once(published, tmp_path):
    """users and places start together and both ask for the run's release: one copies the
    live release, the other waits for the copy to be complete."""
    from concurrent.futures import ThreadPoolExecutor

    from graphrec_pipeline.releases import file_digests

    data = DataDir(fresh(published, tmp_path))
    live, run = data.live_id(), "00000000-0000-0000-0000-0000000000aa"
    with ThreadPoolExecutor(4) as pool:
        stores = list(pool.map(lambda _: data.for_run(run), range(4)))
    assert {s.release for s in stores} == {run}
    assert file_digests(data.release_location(run)) == file_digests(data.release_location(live))
    assert not [n for n in data.location.list("releases") if n.startswith(".")]
    data.release_lock(run)


def test_a_release_id_with_a_trailing_newline_is_no_release_id(tmp_path):
    good = "00000000-0000-0000-0000-000000000001"
    assert DataDir.release_name(good) == f"releases/{good}"
    with pytest.raises(ReleaseError, match="is not a release id"):
        DataDir.release_name(good + "\n")


def test_rollback_refuses_a_bad_id_before_it_takes_the_lock(published, tmp_path, capsys):
    data_dir = fresh(published, tmp_path)
    debris = data_dir / "releases" / "00000000-0000-0000-0000-0000000000dd"  # an incomplete run's folder
    debris.mkdir()
    for bad in ("../..", "00000000-0000-0000-0000-000000000001\n", debris.name):
        assert main(["--data-dir", str(data_dir), "rollback", bad]) == 2
        err = capsys.readouterr().err
        assert err.startswith("graphrec: error: ") and err.count("\n") == 1, err
    assert debris.exists() and not (data_dir / ".lock").exists()  # no lock taken, nothing cleaned


def test_sql_refuses_statements_that_write_files_unless_allowed(published, tmp_path, capsys):
    data_dir, out = fresh(published, tmp_path), tmp_path / "out.csv"
    copy = f"COPY (SELECT user_id FROM users) TO '{out}'"
    assert main(["--data-dir", str(data_dir), "sql", copy]) == 2
    err = capsys.readouterr().err
    assert "COPY may write files; pass --allow-write" in err and err.count("\n") == 1 and not out.exists()
    assert main(["--data-dir", str(data_dir), "sql", "SELECT 1 AS a; EXPORT DATABASE 'x'"]) == 2
    assert "EXPORT" in capsys.readouterr().err
    assert main(["--data-dir", str(data_dir), "sql", "SELECT count(*) AS n FROM users", "--csv"]) == 0
    assert capsys.readouterr().out.splitlines() == ["n", "300"]
    assert main(["--data-dir", str(data_dir), "sql", copy, "--allow-write"]) == 0
    assert out.read_text().splitlines()[0] == "user_id" and len(out.read_text().splitlines()) == 301

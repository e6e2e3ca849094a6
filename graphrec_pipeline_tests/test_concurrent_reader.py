"""A reader in another process queries graphrec.duckdb while a materialization writes."""

import subprocess
import sys
import time

from graphrec_pipeline_tests.conftest import materialize

TINY_RUN = {"resources": {"world": {"config": {"n_users": 300, "n_places": 300, "n_cities": 3}}}}

READER = r"""
import sys, time, duckdb
db, stop = sys.argv[1], sys.argv[2]
import os
ok = errors = 0
while not os.path.exists(stop):
    try:
        with duckdb.connect(db, read_only=True) as con:
            n = con.execute("SELECT count(*) FROM users").fetchone()[0]
            m = con.execute("SELECT count(*) FROM interactions").fetchone()[0]
            assert n == 300 and m > 0, (n, m)
        ok += 1
    except Exception as exc:
        errors += 1
        print("failed:", repr(exc), flush=True)
    time.sleep(0.005)
print("OK", ok, "ERRORS", errors, flush=True)
"""


def test_reader_during_materialization(tmp_path):
    data_dir = tmp_path / "data"
    assert materialize(data_dir, TINY_RUN, job="world_tables").success
    stop = tmp_path / "stop"
    reader = subprocess.Popen(
        [sys.executable, "-c", READER, str(data_dir / "graphrec.duckdb"), str(stop)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        time.sleep(0.5)
        for _ in range(2):
            assert materialize(data_dir, TINY_RUN, job="world_tables").success
    finally:
        stop.touch()
        out, _ = reader.communicate(timeout=60)
    summary = out.strip().splitlines()[-1].split()
    assert summary[0] == "OK" and summary[2] == "ERRORS", out
    assert int(summary[3]) == 0, out
    assert int(summary[1]) > 10, out

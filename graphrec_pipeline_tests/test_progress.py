"""Progress lines of long steps: rate and ETA, and heartbeats that reach the Dagster log."""

import time

import dagster as dg

from graphrec_pipeline.progress import Progress, heartbeat


def test_progress_logs_done_share_and_eta():
    lines = []
    progress = Progress("training", 200, lines.append, every=0.0)
    time.sleep(0.01)
    progress.update(50, note="epoch 1")
    assert lines and lines[-1].startswith("training: 50/200 steps (25%)") and "ETA" in lines[-1]
    assert lines[-1].endswith("; epoch 1")
    capped = Progress("training", 10**9, lines.append, every=0.0, deadline_seconds=60)
    time.sleep(0.01)
    capped.update()
    assert "ETA 1 min 00 s at most" in lines[-1] or "ETA 59 s at most" in lines[-1]


def test_progress_is_quiet_between_intervals():
    lines = []
    progress = Progress("x", 10, lines.append, every=3600)
    for _ in range(10):
        progress.update()
    assert lines == []


def test_heartbeat_beats_while_the_call_runs_and_stops_after():
    lines = []
    with heartbeat("generating interactions", lines.append, every=0.05):
        time.sleep(0.3)
    n = len(lines)
    time.sleep(0.15)
    assert n >= 2 and len(lines) == n and lines[0].startswith("still generating interactions, ")


def test_heartbeats_reach_the_dagster_log():
    @dg.asset
    def slow(context: dg.AssetExecutionContext) -> None:
        with heartbeat("thinking", context.log.info, every=0.05):
            time.sleep(0.3)

    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize([slow], instance=instance)
    assert result.success
    beats = [r.user_message for r in instance.all_logs(result.run_id) if "still thinking" in r.user_message]
    assert len(beats) >= 2

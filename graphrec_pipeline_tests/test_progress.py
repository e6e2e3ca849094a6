"""Progress lines of long steps: rate and ETA, and heartbeats that reach the Dagster log.
Every figure comes from an injected clock; a heartbeat test waits for the beats it needs
(however slow the machine) instead of counting what a fixed sleep produced."""

import threading

import dagster as dg

from graphrec_pipeline.progress import Progress, heartbeat

WAIT = 120  # seconds: a guard against a hang, never a figure the test measures


class FakeClock:
    def __init__(self, now: float = 1000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_progress_logs_done_share_rate_and_eta():
    lines, clock = [], FakeClock()
    progress = Progress("training", 200, lines.append, every=0.0, clock=clock)
    clock.now += 30.0
    progress.update(50, note="epoch 1")  # 50 steps in 30 s: 150 more take 90 s
    assert lines == ["training: 50/200 steps (25%), 30 s elapsed, ETA 1 min 30 s; epoch 1"]
    capped = Progress("training", 10**9, lines.append, every=0.0, deadline_seconds=60, clock=clock)
    clock.now += 20.0
    capped.update()
    assert lines[-1] == "training: 1/1,000,000,000 steps (0%), 20 s elapsed, ETA 40 s at most"


def test_progress_is_quiet_between_intervals():
    lines, clock = [], FakeClock()
    progress = Progress("x", 10, lines.append, every=30.0, clock=clock)
    for _ in range(9):
        clock.now += 3.0
        progress.update()
    assert lines == []  # 27 s: not yet
    clock.now += 3.0
    progress.update()
    assert lines == ["x: 10/10 steps (100%), 30 s elapsed, ETA 0 s"]


def _beats_until(n: int, lines: list[str]):
    """A log that records lines and an event set once ``n`` of them arrived."""
    enough = threading.Event()

    def log(line: str) -> None:
        lines.append(line)
        if len(lines) >= n:
            enough.set()

    return log, enough


def test_heartbeat_beats_while_the_call_runs_and_stops_after():
    lines, clock = [], FakeClock()
    log, enough = _beats_until(2, lines)
    with heartbeat("generating interactions", log, every=0.001, clock=clock):
        clock.now += 75.0
        assert enough.wait(WAIT)
    n = len(lines)
    assert lines[0] == "still generating interactions, 1 min 15 s elapsed"
    stopped = threading.Event()
    stopped.wait(0.05)  # the beat thread was joined on exit: nothing can come after it
    assert len(lines) == n


def test_heartbeats_reach_the_dagster_log():
    @dg.asset
    def slow(context: dg.AssetExecutionContext) -> None:
        lines: list[str] = []
        log, enough = _beats_until(2, lines)

        def both(line: str) -> None:
            context.log.info(line)
            log(line)

        with heartbeat("thinking", both, every=0.001):
            assert enough.wait(WAIT)

    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize([slow], instance=instance)
    assert result.success
    beats = [r.user_message for r in instance.all_logs(result.run_id) if "still thinking" in r.user_message]
    assert len(beats) >= 2

"""Per-step wall time of one pipeline run, read from the Dagster instance's event log.

    DAGSTER_HOME=.dagster python benchmarks/pipeline_benchmark.py            # the latest run
    DAGSTER_HOME=.dagster python benchmarks/pipeline_benchmark.py --run-id <id>

Prints a markdown table: each step's start (seconds after the run started), its duration,
and the run's total (first event to RUN_SUCCESS or RUN_FAILURE), the figures of
docs/benchmarks.md. Steps run side by side under the multiprocess executor, so the
durations add up to more than the total; the critical path is what the total shows.
"""

from __future__ import annotations

import argparse
import sys

import dagster as dg
from dagster._core.events import DagsterEventType


def step_times(instance: dg.DagsterInstance, run_id: str) -> tuple[list[dict], float, str]:
    """(rows of step, start, seconds, status; the run's total seconds; its status)."""
    records = instance.all_logs(run_id)
    t0 = records[0].timestamp
    started: dict[str, float] = {}
    rows, end, status = [], records[-1].timestamp, "running"
    for r in records:
        event = r.dagster_event
        if event is None:
            continue
        kind = event.event_type
        if kind == DagsterEventType.STEP_START:
            started[event.step_key] = r.timestamp
        elif kind in (DagsterEventType.STEP_SUCCESS, DagsterEventType.STEP_FAILURE) and event.step_key in started:
            begin = started.pop(event.step_key)
            rows.append({"step": event.step_key, "start": begin - t0, "seconds": r.timestamp - begin,
                         "status": "ok" if kind == DagsterEventType.STEP_SUCCESS else "FAILED"})
        elif kind in (DagsterEventType.RUN_SUCCESS, DagsterEventType.RUN_FAILURE):
            end, status = r.timestamp, "success" if kind == DagsterEventType.RUN_SUCCESS else "failure"
    return sorted(rows, key=lambda row: row["start"]), end - t0, status


def _clock(seconds: float) -> str:
    return f"{int(seconds // 60)} min {seconds % 60:04.1f} s" if seconds >= 60 else f"{seconds:.1f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-id", default=None, help="a run of the instance (default: the latest)")
    parser.add_argument("--min-seconds", type=float, default=0.0, help="leave out steps shorter than this")
    args = parser.parse_args()
    with dg.DagsterInstance.get() as instance:
        run_id = args.run_id
        if run_id is None:
            runs = instance.get_run_records(limit=1)
            if not runs:
                sys.exit("no runs in this Dagster instance (is DAGSTER_HOME set?)")
            run_id = runs[0].dagster_run.run_id
        rows, total, status = step_times(instance, run_id)
    print(f"run {run_id}: {status}, {_clock(total)} from its first event to its end\n")
    print("| step | starts at | seconds |\n|---|---:|---:|")
    for row in rows:
        if row["seconds"] >= args.min_seconds:
            flag = "" if row["status"] == "ok" else " (failed)"
            print(f"| {row['step']}{flag} | {row['start']:.1f} | {row['seconds']:.1f} |")


if __name__ == "__main__":
    main()

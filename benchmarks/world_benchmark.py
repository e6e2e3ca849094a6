"""Time world generation plus validation, with peak memory, at the default scale and 10x,
and check the world's calibration (``world/report.py``) at the scales up to ``--calibrate-max``.

Each scale runs in a fresh subprocess so that its peak RSS is its own:

    python benchmarks/world_benchmark.py                 # default (10k) and 100k
    python benchmarks/world_benchmark.py --scales 10000  # one scale

Results print as a markdown table and land in benchmarks/results/world.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


TARGETS = {  # calibration figure: (bound, "min" or "max")
    "best_oracle_over_popularity": (2.0, "min"),
    "best_oracle_over_content": (1.3, "min"),
    "outing_places_rule_over_best_oracle": (0.8, "max"),
    "outing_hotspots_rule_over_best_oracle": (0.8, "max"),
    "observed_oracle_over_oracle": (0.6, "max"),
}


def calibrate(world: dict, cfg) -> dict:
    from graphrec_pipeline.world.report import holdout_benchmark

    table, cal = holdout_benchmark(world["users"], world["places"], world["interactions"], cfg.neighborhoods_per_city, cfg)
    ndcg = table.filter(table["metric"] == "ndcg").pivot(on="positives", index="ranker", values="value")
    return {"calibration": cal, "ndcg20": ndcg.rows_by_key("ranker", named=True, unique=True)}


def run_one(n: int, with_calibration: bool) -> dict:
    from graphrec_pipeline.tables import WORLD_TABLES, to_arrow
    from graphrec_pipeline.validation.rules import References
    from graphrec_pipeline.validation.validate import label_references, validate_table
    from graphrec_pipeline.world.config import WorldConfig
    from graphrec_pipeline.world.generate import generate_world

    cfg = WorldConfig(n_users=n, n_places=n)
    t0 = time.perf_counter()
    def log(msg: str) -> None:
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
        print(f"  [{n}] {time.perf_counter() - t0:7.1f}s peak {rss:5.2f} GB  {msg}", file=sys.stderr, flush=True)

    world = generate_world(cfg, log=log)
    t1 = time.perf_counter()
    for name in WORLD_TABLES:
        to_arrow(name, world[name])
    ref = References(cfg.n_cities, cfg.neighborhoods_per_city, world["users"]["user_id"], world["places"]["place_id"])
    ref.label_overlap, ref.label_coattendance = label_references(
        world["users"], world["user_user_edges"], world["friend_labels"]
    )
    for name in WORLD_TABLES:
        validate_table(name, world[name], ref)
    t2 = time.perf_counter()
    extra = calibrate(world, cfg) if with_calibration else {}
    return {**extra,
        "n_users": n,
        "n_places": n,
        "rows": {k: len(v) for k, v in world.items()},
        "generate_s": round(t1 - t0, 1),
        "validate_s": round(t2 - t1, 1),
        "total_s": round(t2 - t0, 1),
        "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scales", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--calibrate-max", type=int, default=10_000, help="largest scale whose calibration is checked")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--calibrate", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one, args.calibrate)))
        return
    results = []
    for n in args.scales:
        cmd = [sys.executable, __file__, "--one", str(n)] + (["--calibrate"] if n <= args.calibrate_max else [])
        out = subprocess.run(cmd, check=True, capture_output=True, text=True)
        sys.stderr.write(out.stderr)
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    RESULTS.mkdir(exist_ok=True)
    meta = {"machine": f"{platform.machine()}, {platform.processor() or 'cpu'}, python {platform.python_version()}"}
    (RESULTS / "world.json").write_text(json.dumps({"meta": meta, "results": results}, indent=2))
    print("| users x places | interactions | generate (s) | validate (s) | total (s) | peak RSS (GB) |")
    print("|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['n_users']:,} x {r['n_places']:,} | {r['rows']['interactions']:,} | {r['generate_s']} | "
              f"{r['validate_s']} | {r['total_s']} | {r['peak_rss_gb']} |")
    for r in results:
        if "calibration" not in r:
            continue
        print(f"\ncalibration at {r['n_users']:,} x {r['n_places']:,} (hold-out NDCG@20):\n")
        print("| ranker | all | solo | outing |\n|---|---|---|---|")
        for name, row in r["ndcg20"].items():
            print(f"| {name} | {row['all']:.4f} | {row['solo']:.4f} | {row['outing']:.4f} |")
        cal = r["calibration"]
        gini_ok = cal["gini_outing_traffic"] <= cal["gini_solo_traffic"] + 0.05
        print(f"\n- gini outing {cal['gini_outing_traffic']:.3f} vs solo {cal['gini_solo_traffic']:.3f} "
              f"(target <= solo + 0.05: {'met' if gini_ok else 'MISSED'})")
        for key, (bound, kind) in TARGETS.items():
            ok = cal[key] >= bound if kind == "min" else cal[key] <= bound
            print(f"- {key} {cal[key]:.3f} (target {'>=' if kind == 'min' else '<='} {bound}: {'met' if ok else 'MISSED'})")
        for key, value in cal.items():
            if key not in TARGETS and not key.startswith("gini"):
                print(f"- {key} {value:.3f}")


if __name__ == "__main__":
    main()

"""Time world generation plus validation, with peak memory, at the default scale and 10x.

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


def run_one(n: int) -> dict:
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
    return {
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
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one)))
        return
    results = []
    for n in args.scales:
        out = subprocess.run([sys.executable, __file__, "--one", str(n)], check=True, capture_output=True, text=True)
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


if __name__ == "__main__":
    main()

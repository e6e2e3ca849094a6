"""Stage 6, the release: this run's outputs go live for every reader in one switch."""

import dagster as dg
import polars as pl

from graphrec_pipeline.artifacts import WORLD_MANIFEST
from graphrec_pipeline.defs.metadata import code_version
from graphrec_pipeline.defs.resources import StorageResource
from graphrec_pipeline.defs.settings import build, config_from
from graphrec_pipeline.profiles import markdown_table
from graphrec_pipeline.release_builder import make_live
from graphrec_pipeline.release_gate import GateSettings, gate_problems, headlines
from graphrec_pipeline.releases import ReleaseError

HEADLINES = {  # (model, task, metric, k) -> name in the release manifest
    ("graphrec_served", "place", "ndcg", 20): "served_place_ndcg20",
    ("lightgcn", "place", "ndcg", 20): "lightgcn_place_ndcg20",
    ("graphrec_served", "people", "recall", 10): "served_people_recall10",
}


def headline_metrics(store, run_id: str) -> dict[str, float]:
    """A few numbers of this run's evaluation, for ``graphrec releases``."""
    part = f"eval_metrics/{run_id}.parquet"
    if not store.has(part):
        return {}
    rows = pl.read_parquet(store.read_bytes(part))
    return {name: round(float(r["value"][0]), 4) for key, name in HEADLINES.items()
            if len(r := rows.filter((pl.col("model") == key[0]) & (pl.col("task") == key[1])
                                    & (pl.col("metric") == key[2]) & (pl.col("k") == key[3])))}


GATE_RECORD = "release_gate.json"  # in the run's release: what the gate found, and whether it was overridden

ReleaseGate = config_from("ReleaseGate", "When a run's model may go live (``release_gate.py``); the defaults are "
                          "``GateSettings``'.", GateSettings)


@dg.asset_check(asset="eval_metrics", blocking=True, description=(
    "The release gate: the served flow's place NDCG@20 and people Recall@10 beat popularity's by "
    "min_lift_over_popularity and fall at most max_drop_vs_live below the live release's (same world). A refused "
    "run never reaches the release step, the live release stays, and `graphrec releases` lists the run with the "
    "reasons; override: true lets it through and the release records that."))
def release_gate(context: dg.AssetCheckExecutionContext, config: ReleaseGate, storage: StorageResource) -> dg.AssetCheckResult:
    settings = build(GateSettings, config)
    data, store = storage.data(), storage.for_run(context)
    metrics = pl.read_parquet(store.read_bytes(f"eval_metrics/{context.run.run_id}.parquet"))
    served, popularity = headlines(metrics, "graphrec_served"), headlines(metrics, "popularity")
    live_id, live = data.live_id(), None
    if live_id is not None:
        same_world = ((data.storage(live_id).read_json(WORLD_MANIFEST) or {}).get("world_sha256")
                      == (store.read_json(WORLD_MANIFEST) or {}).get("world_sha256"))
        live = data.manifest(live_id).get("metrics", {}) if same_world else None
    problems = gate_problems(served, popularity, live, settings)
    refused = bool(problems) and not settings.override
    store.write_json(GATE_RECORD, {"problems": problems, "overridden": bool(problems) and settings.override})
    for p in problems:
        (context.log.error if refused else context.log.warning)(f"release gate: {p}")
    if refused:
        data.refuse(store.release, problems, {k: round(v, 4) for k, v in served.items()})
    return dg.AssetCheckResult(
        passed=not refused, severity=dg.AssetCheckSeverity.ERROR,
        metadata={"served": dg.MetadataValue.json(served), "popularity": dg.MetadataValue.json(popularity),
                  "live": dg.MetadataValue.json(live or {}), "compared_with_live": live is not None,
                  "problems": dg.MetadataValue.md("\n".join(f"- {p}" for p in problems) or "none"),
                  "overridden": bool(problems) and settings.override})


@dg.asset(group_name="release", code_version=code_version("releases", "lineage", "storage"), deps=["eval_metrics", "world_report", "ann_indexes"], kinds={"duckdb"})
def release(context: dg.AssetExecutionContext, storage: StorageResource) -> dg.MaterializeResult:
    """Makes this run's release live: checks that its pieces agree (world -> graph -> model
    -> embeddings -> indexes, by digest), records every file's digest in ``RELEASE.json``,
    moves the ``CURRENT.json`` pointer by one rename and swaps in a ``graphrec.duckdb`` over
    it; then prunes old releases and frees the data directory. Until this step, every
    reader keeps the previous release in full."""
    data, store = storage.data(), storage.for_run(context)
    previous = data.live_id()
    gate = store.read_json(GATE_RECORD) or {}
    try:
        manifest = make_live(data, store.release, {"run_id": context.run_id, "previous": previous,
                                                   "metrics": headline_metrics(store, context.run_id),
                                                   "gate_overridden": gate.get("overridden", False),
                                                   "gate_problems": gate.get("problems", [])},
                             storage.keep_releases, storage.prune_min_age_hours)
    except ReleaseError as err:
        raise dg.Failure(str(err)) from err
    pruned = manifest.pop("pruned")
    context.log.info(f"release {store.release} is live (was {previous}); pruned {pruned}")
    return dg.MaterializeResult(
        metadata={
            "release": store.release,
            "previous": str(previous),
            "files": len(manifest["files"]),
            "duckdb": dg.MetadataValue.path(data.duckdb_url),
            "pruned": ", ".join(pruned) or "none",
            "releases": dg.MetadataValue.md(markdown_table(pl.DataFrame(
                [{"release": r["release"], "created": r["created"], "live": r["live"], **r["metrics"]}
                 for r in data.releases()]))),
            **manifest["metrics"],
        },
        data_version=dg.DataVersion(store.release),
    )

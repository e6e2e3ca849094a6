"""Stage 6, the release: this run's outputs go live for every reader in one switch."""

import dagster as dg
import polars as pl

from graphrec_pipeline.defs.metadata import code_version
from graphrec_pipeline.defs.resources import StorageResource
from graphrec_pipeline.lineage import lineage_problems
from graphrec_pipeline.profiles import markdown_table

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


@dg.asset(group_name="release", code_version=code_version("releases", "lineage", "storage"), deps=["eval_metrics", "world_report", "ann_indexes"], kinds={"duckdb"})
def release(context: dg.AssetExecutionContext, storage: StorageResource) -> dg.MaterializeResult:
    """Makes this run's release live: checks that its pieces agree (world -> graph -> model
    -> embeddings -> indexes, by digest), records every file's digest in ``RELEASE.json``,
    moves the ``CURRENT.json`` pointer by one rename and swaps in a ``graphrec.duckdb`` over
    it; then prunes old releases and frees the data directory. Until this step, every
    reader keeps the previous release in full."""
    data, store = storage.data(), storage.for_run(context)
    problems = lineage_problems(store)
    if problems:
        raise dg.Failure(f"release {store.release} not made live: " + "; ".join(problems))
    previous = data.live_id()
    manifest = data.seal(store.release, {"run_id": context.run_id, "previous": previous,
                                         "metrics": headline_metrics(store, context.run_id)})
    data.switch(store.release, verify=False)  # seal just recorded every digest
    pruned = data.prune(storage.keep_releases, storage.prune_min_age_hours)
    data.release_lock(context.run_id)
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

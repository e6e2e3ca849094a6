"""Stage 2, the warehouse: publish the audited tables into the run's release and report on them."""


import dagster as dg
import polars as pl

from graphrec_pipeline.defs.metadata import code_version, table_value, value_version
from graphrec_pipeline.defs.resources import StorageResource, WorldResource
from graphrec_pipeline.lineage import stamp_world
from graphrec_pipeline.plots import long_tail_chart
from graphrec_pipeline.profiles import markdown_table
from graphrec_pipeline.ingest.derive import IMPORT_TABLES
from graphrec_pipeline.tables import WORLD_TABLES
from graphrec_pipeline.world.report import holdout_benchmark, interaction_summary

GROUP = "warehouse"
CODE = code_version("storage", "lineage", "world/report", "world/oracle", "simple_rankers", "metrics")


@dg.asset(group_name=GROUP, code_version=CODE, deps=WORLD_TABLES, kinds={"parquet"})
def published_tables(context: dg.AssetExecutionContext, storage: StorageResource, world: WorldResource) -> dg.MaterializeResult:
    """Promotes this run's audited staged tables (and an imported log's key maps, vocabulary
    and split) to ``<release>/<table>.parquet`` and records their digests in
    ``world_manifest.json``. Runs only after every blocking contract check
    has passed; readers see the tables when the ``release`` step makes the run live."""
    store = storage.for_run(context)
    store.publish(WORLD_TABLES + (IMPORT_TABLES if world.imported_log else []))
    manifest = stamp_world(store, {"source": world.source, "source_dir": world.source_dir,
                                   "config": world.world_config().__dict__})
    counts = {t: store.parquet_metadata(t).num_rows for t in WORLD_TABLES}
    context.log.info(f"published {counts} in release {store.release}")
    return dg.MaterializeResult(
        metadata={
            "world_sha256": manifest["world_sha256"],
            "rows": dg.MetadataValue.md(markdown_table(pl.DataFrame({"table": list(counts), "rows": list(counts.values())}))),
            **{f"rows_{t}": n for t, n in counts.items()},
        },
        data_version=dg.DataVersion(manifest["world_sha256"][:16]),
    )


@dg.asset(group_name=GROUP, code_version=CODE, deps=[published_tables], kinds={"numpy"})
def world_report(context: dg.AssetExecutionContext, storage: StorageResource, world: WorldResource) -> dg.MaterializeResult:
    """Is the world learnable, not trivial, and free of artifacts? Interactions per user,
    the long tail, and a temporal hold-out (last 20% of the horizon, places new to the
    user): NDCG/Recall@20 of random, popularity, content and (generated worlds) the two
    oracles and the outing traps, for all, solo and outing positives; traffic concentration
    of outings vs solo visits (``world/report.py`` gives the targets)."""
    store = storage.for_run(context)
    users, places, inter = (store.read_table(t) for t in ("users", "places", "interactions"))
    summary = interaction_summary(users, places, inter)
    table, calibration = holdout_benchmark(users, places, inter, world.neighborhoods_per_city,
                                           world.world_config() if world.generated else None,
                                           positive_rating=world.positive_rating)
    wide = (
        table.with_columns(name=pl.col("metric") + "@" + pl.col("k").cast(pl.String) + " " + pl.col("positives"))
        .pivot(on="name", index="ranker", values="value")
        .with_columns(pl.selectors.float().round(4))
    )
    ndcg = table.filter((pl.col("metric") == "ndcg") & (pl.col("positives") == "all"))
    context.log.info(f"hold-out NDCG@20: { {r: round(v, 4) for r, v in ndcg.select('ranker', 'value').iter_rows()} }")
    quantiles = summary.pop("interactions_per_user")
    tail = long_tail_chart(inter.group_by("place_id").len()["len"].to_numpy(),
                           inter.group_by("user_id").len()["len"].to_numpy())
    return dg.MaterializeResult(
        metadata={
            "long_tail": dg.MetadataValue.md(tail),
            "holdout_rankers": table_value(wide),
            "interactions_per_user": dg.MetadataValue.md(
                markdown_table(pl.DataFrame({"quantile": list(quantiles), "interactions": list(quantiles.values())}))
            ),
            **{f"ndcg20_{r['ranker']}_{r['positives']}": r["value"] for r in table.filter(pl.col("metric") == "ndcg").iter_rows(named=True)},
            **{f"recall20_{r['ranker']}_{r['positives']}": r["value"] for r in table.filter(pl.col("metric") == "recall").iter_rows(named=True)},
            **summary,
            **{k: round(v, 4) for k, v in calibration.items()},
            **({"calibration": table_value(pl.DataFrame({"measure": list(calibration),
                                                         "value": [float(v) for v in calibration.values()]}))}
               if calibration else {}),
        },
        data_version=value_version(table.write_csv()),
    )

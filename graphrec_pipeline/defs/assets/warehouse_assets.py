"""Stage 2, the warehouse: publish the audited tables (Parquet + DuckDB) and report on them."""


import dagster as dg
import polars as pl

from graphrec_pipeline.defs.resources import StorageResource, WorldResource
from graphrec_pipeline.profiles import markdown_table
from graphrec_pipeline.tables import WORLD_TABLES
from graphrec_pipeline.world.report import holdout_recall, interaction_summary

GROUP = "warehouse"
MANIFEST = "world_manifest.json"


@dg.asset(group_name=GROUP, deps=WORLD_TABLES, kinds={"duckdb", "parquet"})
def published_tables(context: dg.AssetExecutionContext, storage: StorageResource, world: WorldResource) -> dg.MaterializeResult:
    """Promotes the audited staged tables to ``<data dir>/<table>.parquet`` and swaps in a
    fresh ``graphrec.duckdb`` with one view per table. Runs only after every blocking
    contract check has passed, so a bad table never replaces a good one."""
    store = storage.storage()
    store.publish(WORLD_TABLES)
    store.write_json(
        MANIFEST,
        {"source": world.source, "source_dir": world.source_dir, "config": world.world_config().__dict__},
    )
    with store.connect() as con:
        counts = {t: con.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in WORLD_TABLES}
    context.log.info(f"published {counts} to {store.root}")
    return dg.MaterializeResult(
        metadata={
            "duckdb": dg.MetadataValue.path(str(store.duckdb_path)),
            "rows": dg.MetadataValue.md(markdown_table(pl.DataFrame({"table": list(counts), "rows": list(counts.values())}))),
            **{f"rows_{t}": n for t, n in counts.items()},
        }
    )


@dg.asset(group_name=GROUP, deps=[published_tables], kinds={"numpy"})
def world_report(context: dg.AssetExecutionContext, storage: StorageResource, world: WorldResource) -> dg.MaterializeResult:
    """Is the world learnable but not trivial? Interactions per user, the popularity long
    tail, and Recall/NDCG@20 of random, popularity and (generated worlds only) oracle
    rankers on a temporal hold-out of the last 20% of the horizon, places new to the user."""
    store = storage.storage()
    users, places, inter = (store.read_table(t) for t in ("users", "places", "interactions"))
    summary = interaction_summary(users, places, inter)
    scores = holdout_recall(users, places, inter, world.neighborhoods_per_city, with_oracle=world.generated)
    info = scores.pop("_")
    table = pl.DataFrame(
        [{"ranker": r, **{m: round(v, 4) for m, v in s.items()}} for r, s in scores.items()]
    )
    context.log.info(f"hold-out recall@20: { {r: round(s['recall'], 4) for r, s in scores.items()} }")
    quantiles = summary.pop("interactions_per_user")
    return dg.MaterializeResult(
        metadata={
            "holdout_rankers": dg.MetadataValue.md(markdown_table(table)),
            "interactions_per_user": dg.MetadataValue.md(
                markdown_table(pl.DataFrame({"quantile": list(quantiles), "interactions": list(quantiles.values())}))
            ),
            "eval_users": int(info["eval_users"]),
            **{f"recall20_{r}": s["recall"] for r, s in scores.items()},
            **{f"ndcg20_{r}": s["ndcg"] for r, s in scores.items()},
            **{k: v for k, v in summary.items()},
        }
    )

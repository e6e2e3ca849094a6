"""Stage 6, serving (§6): embedding tables, per-city ANN indexes, and the checks that the
recommender answers queries from them."""

import time

import dagster as dg
import numpy as np
import polars as pl

from graphrec_pipeline.defs.executor import CRITICAL, TORCH_STEP
from graphrec_pipeline.defs.metadata import code_version, file_version, parquet_metadata
from graphrec_pipeline.defs.resources import RecommenderResource, StorageResource
from graphrec_pipeline.defs.settings import build, config_from
from graphrec_pipeline.artifacts.graph import load_graph
from graphrec_pipeline.profiles import markdown_table
from graphrec_pipeline.progress import heartbeat
from graphrec_pipeline.serving.ann import HnswSettings
from graphrec_pipeline.defs.io_managers import STEP_OUTPUTS
from graphrec_pipeline.defs.sharding import CITY_STEPS, shard_cities
from graphrec_pipeline.storage import STAGING
from graphrec_pipeline.serving.city_indexes import IndexSettings, build_city, cities, index_manifest, load_city_indexes, write_city
from graphrec_pipeline.artifacts.indexes import new_version, publish_version, version_dir
from graphrec_pipeline.serving.embeddings import export_embeddings
from graphrec_pipeline.artifacts.embeddings import PLACE_EMBEDDINGS, USER_EMBEDDINGS, load_embeddings
from graphrec_pipeline.serving.results import results_frame
from graphrec_pipeline.serving.smoke import smoke_test
from graphrec_pipeline.model.saved import load_model

GROUP = "serving"
CODE = code_version("serving", "model/inference")
RECALL_TARGET = 0.99


def _norms(z: np.ndarray) -> dict:
    n = np.linalg.norm(z, axis=1)
    return {f"norm_p{q}": float(np.percentile(n, q)) for q in (5, 50, 95)}


@dg.multi_asset(
    specs=[
        dg.AssetSpec(USER_EMBEDDINGS, group_name=GROUP, code_version=CODE, deps=["graphrec_model", "training_graph"],
                     kinds={"pytorch", "parquet"},
                     description="z_user of every user (user_id, city_id, embedding FLOAT[128]), §6.1."),
        dg.AssetSpec(PLACE_EMBEDDINGS, group_name=GROUP, code_version=CODE, deps=["graphrec_model", "training_graph"],
                     kinds={"pytorch", "parquet"},
                     description="z_place of every place (place_id, city_id, embedding FLOAT[128]), §6.1."),
    ],
    op_tags={**TORCH_STEP, **CRITICAL},
)
def embeddings(context: dg.AssetExecutionContext, storage: StorageResource):
    """One full forward pass of the trained model over the training graph (in blocks of
    destination nodes, so memory stays bounded at 100k), written as two tables."""
    store = storage.for_run(context)
    start = time.perf_counter()
    users = store.read_table("users", columns=["user_id", "home_city_id"]).sort("user_id")
    places = store.read_table("places", columns=["place_id", "city_id"]).sort("place_id")
    with heartbeat("exporting embeddings", context.log.info):
        emb = export_embeddings(store, load_model(store), load_graph(store),
                                users["home_city_id"].to_numpy(), places["city_id"].to_numpy())
    seconds = round(time.perf_counter() - start, 1)
    context.log.info(f"exported {len(emb.z_user)} user and {len(emb.z_place)} place embeddings in {seconds} s")
    for key, z in ((USER_EMBEDDINGS, emb.z_user), (PLACE_EMBEDDINGS, emb.z_place)):
        yield dg.MaterializeResult(
            asset_key=key,
            metadata={**parquet_metadata(store, key), "dim": z.shape[1], "seconds": seconds,
                      "model_sha256": emb.model_sha256, **_norms(z)},
            data_version=file_version(store, store.table_file(key)),
        )


IndexConfig = config_from(
    "IndexConfig", "Which index per city (§6.2) and how HNSW is built (``IndexSettings``, ``HnswSettings``); "
    "the defaults are theirs.", IndexSettings, exclude=frozenset({"hnsw", "recall_k"}),
    hnsw_m=(int, HnswSettings.m), ef_construction=(int, HnswSettings.ef_construction),
    ef_search=(int, HnswSettings.ef_search), seed=(int, HnswSettings.seed),
)


def index_settings(config: dg.Config) -> IndexSettings:
    hnsw = HnswSettings(m=config.hnsw_m, ef_construction=config.ef_construction, ef_search=config.ef_search,
                        seed=config.seed)
    return build(IndexSettings, config, hnsw=hnsw)


@dg.op(ins={"after": dg.In(dg.Nothing)}, out=dg.Out(dict, io_manager_key=STEP_OUTPUTS))
def index_plan(context: dg.OpExecutionContext, config: IndexConfig, storage: StorageResource) -> dict:
    """The new index version's name, the settings, the cities to index, and what the
    version's manifest records of the embeddings (so publishing need not reload them)."""
    store = storage.for_run(context)
    emb = load_embeddings(store)
    found, version = cities(emb), new_version()
    context.log.info(f"index version {version}: {len(found)} cities over {CITY_STEPS} steps")
    return {"version": version, "config": config.model_dump(), "cities": found,
            "model_sha256": emb.model_sha256, "dim": emb.dim}


def _city_shard(shard: int) -> dg.OpDefinition:
    @dg.op(name=f"city_shard_{shard}", out=dg.Out(dg.Nothing), tags={"graphrec/shard": str(shard)})
    def city_shard(context: dg.OpExecutionContext, storage: StorageResource, plan: dict) -> None:
        """Builds and writes the place and user index of the cities ``c`` with
        ``c % CITY_STEPS == shard`` (not live yet), and their report rows."""
        store = storage.for_run(context)
        config = IndexConfig(**plan["config"])
        mine = shard_cities(plan["cities"], shard)
        emb = load_embeddings(store) if mine else None
        rows = []
        for city in mine:
            built, city_rows = build_city(emb, city, index_settings(config), config.seed, context.log.info)
            write_city(store, plan["version"], city, built)
            rows += city_rows
        store.write_json(_shard_report(plan["version"], shard), {"rows": rows})

    return city_shard


def _shard_report(version: str, shard: int) -> str:
    return f"{STAGING}/index_reports/{version}/shard_{shard}.json"


CITY_SHARDS = [_city_shard(k) for k in range(CITY_STEPS)]


@dg.op(ins={"plan": dg.In(dict), **{f"shard_{k}": dg.In(dg.Nothing) for k in range(CITY_STEPS)}},
       out=dg.Out(dict, io_manager_key=STEP_OUTPUTS))
def publish_indexes(context: dg.OpExecutionContext, storage: StorageResource, plan: dict) -> dg.Output:
    """Writes the version's manifest from the shards' reports (in the data dir) and makes
    it the release's live index set."""
    store = storage.for_run(context)
    version = plan["version"]
    reports = [store.read_json(_shard_report(version, k)) for k in range(CITY_STEPS)]
    if any(r is None for r in reports):
        raise dg.Failure(f"index version {version}: shards {[k for k, r in enumerate(reports) if r is None]} wrote "
                         "no report")
    rows = [row for r in reports for row in r["rows"]]
    keys = [(r["kind"], r["city_id"]) for r in rows]
    missing = sorted(set(plan["cities"]) - {city for _, city in keys})
    if missing or len(keys) != len(set(keys)):
        raise dg.Failure(f"index version {version}: cities {missing} have no index, or one was indexed twice")
    manifest = index_manifest(plan["model_sha256"], plan["dim"], index_settings(IndexConfig(**plan["config"])), rows)
    publish_version(store, version, manifest)
    report = pl.DataFrame(manifest["indexes"])
    recall = report["recall@200"]
    return dg.Output(
        {"version": version},
        metadata={
            "version": version,
            "indexes": len(report),
            "cities": report["city_id"].n_unique(),
            "backends": ", ".join(sorted(set(report["backend"]))),
            "min_recall@200": float(recall.min()),
            "mean_recall@200": float(recall.mean()),
            "report": dg.MetadataValue.md(markdown_table(report.with_columns(pl.col("recall@200").round(4)))),
        },
        data_version=file_version(store, *(f"{version_dir(version)}/{f}" for f in store.list_dir(version_dir(version)))),
    )


@dg.graph_asset(
    group_name=GROUP, code_version=CODE, kinds={"faiss", "hnswlib"},
    ins={"user_embeddings": dg.AssetIn(USER_EMBEDDINGS, dagster_type=dg.Nothing),
         "place_embeddings": dg.AssetIn(PLACE_EMBEDDINGS, dagster_type=dg.Nothing)},
)
def ann_indexes(user_embeddings, place_embeddings):
    """One place index and one user index per city under ``indexes/``, each with its
    recall@200 against exact search, built in ``CITY_STEPS`` parallel steps
    (``defs/sharding.py``), which a Dask or Kubernetes run spreads over its workers; the
    new set goes live only once every city is written."""
    plan = index_plan(after=[user_embeddings, place_embeddings])
    return publish_indexes(plan=plan, **{f"shard_{k}": shard(plan) for k, shard in enumerate(CITY_SHARDS)})


@dg.asset_check(asset=ann_indexes, description=f"Every index keeps recall@200 >= {RECALL_TARGET} against exact search.")
def ann_indexes_recall(context: dg.AssetCheckExecutionContext, storage: StorageResource) -> dg.AssetCheckResult:
    rows = pl.DataFrame(load_city_indexes(storage.for_run(context)).manifest["indexes"])
    low = rows.filter(pl.col("recall@200") < RECALL_TARGET)
    return dg.AssetCheckResult(
        passed=low.is_empty(),
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"min_recall@200": float(rows["recall@200"].min()), "below_target": len(low),
                  **({"low": dg.MetadataValue.md(markdown_table(low))} if len(low) else {})},
    )


@dg.asset_check(
    asset=ann_indexes,
    blocking=True,
    description="A sample of place and people queries runs through the recommender resource: none may "
    "fail, and each returns k results wherever the city has k eligible items.",
)
def recommender_answers_queries(context: dg.AssetCheckExecutionContext, recommender: RecommenderResource) -> dg.AssetCheckResult:
    rec = recommender.build(store=recommender.storage.for_run(context))  # this run's release, not the live one
    report = smoke_test(rec)
    failures = report.failures
    for f in failures:
        context.log.error(f)
    ms = np.array(report.latencies_ms)
    example = report.example_user
    previews = {}
    if not failures:
        previews = {
            "example_places": dg.MetadataValue.md(f"user {example}\n\n" + markdown_table(
                results_frame(rec.recommend_places(example, k=5)).select("place_id", "name", "score", "explanations"), max_cell=200)),
        }
        if rec.world.has_social:
            previews["example_people"] = dg.MetadataValue.md(f"user {example}\n\n" + markdown_table(
                results_frame(rec.recommend_people(example, k=5)).drop("city_id"), max_cell=200))
    return dg.AssetCheckResult(
        passed=not failures,
        metadata={
            "queries": report.queries,
            "failures": len(failures),
            **({"failed": dg.MetadataValue.md("\n".join(f"- {f}" for f in failures[:20]))} if failures else {}),
            **({"latency_p50_ms": float(np.percentile(ms, 50)), "latency_max_ms": float(ms.max())} if len(ms) else {}),
            **previews,
        },
    )

"""Stage 1, the world: the six §2 tables, generated (§7) or imported, written to staging.

Each table asset writes ``staging/<table>.parquet`` and audits it in the same step (its
blocking ``<table>_contract`` check, ``defs/asset_checks.py``), and only ``published_tables`` (group ``warehouse``) promotes the audited tables.
"""


import time

import dagster as dg
import polars as pl
import pyarrow as pa

from graphrec_pipeline.defs.asset_checks import contract_result, contract_spec
from graphrec_pipeline.ingest import BadInput, import_log, read_log
from graphrec_pipeline.ingest.rules import SAMPLE_ROWS
from graphrec_pipeline.profiles import markdown_table
from graphrec_pipeline.defs.metadata import code_version, file_version, parquet_metadata, table_metadata, value_version
from graphrec_pipeline.defs.resources import StorageResource, WorldResource
from graphrec_pipeline.defs.sharding import CITY_STEPS, shard_cities
from graphrec_pipeline.profiles import table_profile
from graphrec_pipeline.progress import heartbeat
from graphrec_pipeline.storage import Storage, location, maps_as_lists
from graphrec_pipeline.tables import SCHEMAS, to_arrow
from graphrec_pipeline.world import social
from graphrec_pipeline.world.interactions import cities_interactions, combine
from graphrec_pipeline.world.places import generate_places
from graphrec_pipeline.world.users import generate_users

GROUP = "world"
PART = "interaction_parts/city_"  # + city: a staged table name
CODE = code_version("world", "tables", "taxonomy", "constants", "timeslots", "coattendance", "columns")


def stage_table(
    context: dg.AssetExecutionContext, storage: StorageResource, world: WorldResource, name: str, make
) -> dg.MaterializeResult:
    """Generate (``make()``) or import the table, write it to staging, report metadata and
    the result of its contract check."""
    store = storage.for_run(context)
    metadata, version = staged(store, world, name, make, context.log)
    return dg.MaterializeResult(metadata=metadata, data_version=version,
                                check_results=[contract_result(store, name, world, context.log)])


def staged(store: Storage, world: WorldResource, name: str, make, log) -> tuple[dict, dg.DataVersion]:
    """Stage the table (``make()``, or the imported file) and return its metadata and data
    version. An imported file is staged as it is, even when it is unreadable, empty or
    lacks columns: the table's blocking check then fails by rule, naming the file."""
    started = time.perf_counter()
    if world.generated:
        with heartbeat(f"generating {name}", log.info):
            table = to_arrow(name, make())
    elif world.imported_log:  # world_import staged it
        table = store.read_arrow(name, staged=True)
    else:
        if not world.source_dir:
            raise dg.Failure(f"world.source is 'parquet' but world.source_dir is not set (table {name!r})")
        source = location(world.source_dir)
        src = source.url(f"{name}.parquet")
        if not source.exists(f"{name}.parquet"):
            raise dg.Failure(f"world.source_dir has no {name}.parquet: {src} is missing")
        log.info(f"importing {src} as is; the blocking check validates it")
        path = store.stage_file(name, source.read_bytes(f"{name}.parquet"))
        try:
            table = store.read_arrow(name, staged=True)
        except (pa.ArrowException, OSError) as err:
            log.error(f"{src} is not readable Parquet ({err}); the {name}_contract check will fail")
            return ({"path": dg.MetadataValue.path(path), "source": world.source, "readable": False, "error": str(err)},
                    file_version(store, store.table_file(name, staged=True)))
    path = store.write_table(name, table, staged=True) if world.generated else store.table_url(name, staged=True)
    frame = maps_as_lists(pl.from_arrow(table))
    seconds = time.perf_counter() - started
    log.info(f"{name}: {len(frame):,} rows staged at {path} in {seconds:.1f}s")
    complete = len(frame) > 0 and {f.name for f in SCHEMAS[name]} <= set(frame.columns)
    metadata = {
        **table_metadata(name, table.schema, len(frame), path),
        "source": world.source,
        "seconds": round(seconds, 2),
        **({k: dg.MetadataValue.md(v) for k, v in table_profile(name, frame).items()} if complete else {}),
    }
    return metadata, file_version(store, store.table_file(name, staged=True))


IMPORT_CHECK = dg.AssetCheckSpec(
    "event_log_rules", asset="world_import", blocking=True,
    description="The imported log follows every rule (files present and readable, keys present and unique, every "
    "event's place known, timestamps parsable, split values train/valid/test); on failure nothing is staged, "
    "no table step runs and the live release stays.")


@dg.asset(group_name=GROUP, code_version=code_version("ingest", "world", "tables", "columns", "timeslots", "coattendance"),
          kinds={"polars", "parquet"}, check_specs=[IMPORT_CHECK])
def world_import(context: dg.AssetExecutionContext, storage: StorageResource, world: WorldResource) -> dg.MaterializeResult:
    """An imported check-in log (``world.source: events`` or ``recbole``) turned into the six
    tables, derived from its training events (``ingest/derive.py``), plus the key maps
    ``user_keys`` / ``place_keys``, the ``vocabulary`` and the ``event_split``, all staged
    for the table steps to audit. Nothing to do for a generated or Parquet world."""
    if not world.imported_log:
        return dg.MaterializeResult(metadata={"source": world.source, "imported": False},
                                    data_version=value_version(world.source),
                                    check_results=[dg.AssetCheckResult(check_name=IMPORT_CHECK.name, passed=True,
                                                                       metadata={"log": "none"})])
    if not world.source_dir:
        raise dg.Failure(f"world.source is {world.source!r} but world.source_dir is not set")
    store = storage.for_run(context)
    try:
        with heartbeat(f"importing the {world.source} log in {world.source_dir}", context.log.info):
            raw = read_log(location(world.source_dir), world.source, world.columns)
            imported = import_log(raw, world.import_config())
    except BadInput as err:
        context.log.error(str(err))
        rows = {} if err.rows is None else {"rows": dg.MetadataValue.md(markdown_table(err.rows.head(SAMPLE_ROWS)))}
        return dg.MaterializeResult(
            metadata={"source": world.source, "imported": False, "error": str(err)},
            check_results=[dg.AssetCheckResult(
                check_name=IMPORT_CHECK.name, passed=False, severity=dg.AssetCheckSeverity.ERROR,
                metadata={"rule": err.rule, "file": err.file, "error": str(err),
                          "offending_rows": 0 if err.rows is None else err.rows.height, **rows})])
    for name, frame in imported.tables.items():
        store.write_table(name, to_arrow(name, frame), staged=True)
    for name, frame in imported.extras.items():
        store.write_table(name, frame.to_arrow(), staged=True)
    context.log.info(f"imported {imported.summary}")
    vocab = imported.extras["vocabulary"]
    return dg.MaterializeResult(
        metadata={"source": world.source, "imported": True, **imported.summary,
                  "files": dg.MetadataValue.md("\n".join(f"- {k}: {v}" for k, v in raw.files.items())),
                  "vocabulary": dg.MetadataValue.md(markdown_table(vocab.sort("kind", "index").group_by(
                      "kind", maintain_order=True).head(10)))},
        data_version=file_version(store, *(store.table_file(n, staged=True) for n in [*imported.tables, *imported.extras])),
        check_results=[dg.AssetCheckResult(check_name=IMPORT_CHECK.name, passed=True, metadata={
            "files": len(raw.files), "events": imported.summary["events"]})],
    )


def _read(context, storage: StorageResource, name: str) -> pl.DataFrame:
    return storage.for_run(context).read_table(name, staged=True)


@dg.asset(group_name=GROUP, code_version=CODE, deps=[world_import], kinds={"polars", "parquet"},
          check_specs=[contract_spec("places")])
def places(context: dg.AssetExecutionContext, storage: StorageResource, world: WorldResource) -> dg.MaterializeResult:
    """Places (§2.3, §7.2): skewed cities, 1-2 categories, 3-7 category-consistent fine tags,
    city-specific prices, category-specific time slots, log-normal popularity."""
    return stage_table(context, storage, world, "places", lambda: generate_places(world.world_config()))


@dg.asset(group_name=GROUP, code_version=CODE, deps=[world_import], kinds={"polars", "parquet"},
          check_specs=[contract_spec("users")])
def users(context: dg.AssetExecutionContext, storage: StorageResource, world: WorldResource) -> dg.MaterializeResult:
    """Users (§2.2, §7.3): home city and neighborhood, Dirichlet preferences, 3-10 vibe
    traits, behaviour statistics, 1-3 frequent areas."""
    return stage_table(context, storage, world, "users", lambda: generate_users(world.world_config()))


@dg.asset(group_name=GROUP, code_version=CODE, deps=["users"], kinds={"faiss", "parquet"})
def similar_user_candidates(
    context: dg.AssetExecutionContext, storage: StorageResource, world: WorldResource
) -> dg.MaterializeResult:
    """Each user's top-k most similar same-city users by full taste, stated and latent
    (exact faiss inner-product search): the candidate pool for friendships, social edges
    and blocks."""
    cfg = world.world_config()
    users = _read(context, storage, "users")
    pairs = social.world_candidates(cfg, users) if world.generated else social.similar_user_candidates(users[:0], 1)
    store = storage.for_run(context)
    store.write_table("similar_user_candidates", pairs.to_arrow(), staged=True)
    context.log.info(f"{len(pairs):,} candidate pairs (k={cfg.similar_users_k})")
    file = store.table_file("similar_user_candidates", staged=True)
    return dg.MaterializeResult(
        metadata={**parquet_metadata(store, "similar_user_candidates", file),
                  "overlap_median": float(pairs["interest_overlap_score"].median() or 0.0)},
        data_version=file_version(store, file),
    )


def _interactions_part(shard: int) -> dg.AssetsDefinition:
    @dg.asset(name=f"interactions_part_{shard}", group_name=GROUP, code_version=CODE,
              deps=["users", "places", "similar_user_candidates"], kinds={"polars", "parquet"})
    def interactions_part(context: dg.AssetExecutionContext, storage: StorageResource,
                          world: WorldResource) -> dg.MaterializeResult:
        """The interactions of the users whose home is a city ``c`` with ``c % 8 == shard``
        (``defs/sharding.py``), one staged part per city; ``interactions`` combines them.
        Nothing for an imported world."""
        mine = shard_cities(list(range(world.n_cities)), shard) if world.generated else []
        store = storage.for_run(context)
        rows = 0
        if mine:
            tables = [_read(context, storage, t) for t in ("users", "places", "similar_user_candidates")]
            with heartbeat(f"generating the interactions of cities {mine}", context.log.info):
                parts = cities_interactions(world.world_config(), *tables, mine)
            for city, part in zip(mine, parts):
                store.write_table(f"{PART}{city}", part.to_arrow(), staged=True)
            rows = sum(len(p) for p in parts)
            context.log.info(f"cities {mine}: {rows:,} interactions")
        return dg.MaterializeResult(
            metadata={"cities": ", ".join(map(str, mine)) or "none", "rows": rows},
            data_version=file_version(store, *(store.table_file(f"{PART}{c}", staged=True) for c in mine))
            if mine else value_version("none"),
        )

    return interactions_part


INTERACTIONS_PARTS = [_interactions_part(k) for k in range(CITY_STEPS)]


@dg.asset(group_name=GROUP, code_version=CODE, deps=[p.key for p in INTERACTIONS_PARTS], kinds={"polars", "parquet"},
          check_specs=[contract_spec("interactions")])
def interactions(context: dg.AssetExecutionContext, storage: StorageResource, world: WorldResource) -> dg.MaterializeResult:
    """User-place interactions (§2.4, §7.4): softmax sampling over home-city places by
    affinity plus taste noise, occasional travel, friends' joint outings; engagement and the
    implicit rating grow with the score; timestamps mostly in the place's typical slot.
    Generated per home city by the ``interactions_part_*`` steps (each city from its own
    random stream, so the table equals a one-process run), combined here in city order."""
    store = storage.for_run(context)
    return stage_table(context, storage, world, "interactions", lambda: combine(
        [store.read_table(f"{PART}{c}", staged=True) for c in range(world.n_cities)]))


@dg.asset(group_name=GROUP, code_version=CODE, deps=["users", "similar_user_candidates", "interactions"], kinds={"polars", "parquet"},
          check_specs=[contract_spec("user_user_edges")])
def user_user_edges(context: dg.AssetExecutionContext, storage: StorageResource, world: WorldResource) -> dg.MaterializeResult:
    """Soft social edges (§2.5, §7.5): similar users plus repeat co-attenders, with interest
    overlap, co-attendance counted from the interactions, and shared-neighborhood weight."""
    return stage_table(
        context,
        storage,
        world,
        "user_user_edges",
        lambda: social.build_user_user_edges(
            world.neighborhoods_per_city,
            _read(context, storage, "users"),
            _read(context, storage, "similar_user_candidates"),
            _read(context, storage, "interactions"),
        ),
    )


@dg.asset(group_name=GROUP, code_version=CODE, deps=["users", "user_user_edges", "interactions"], kinds={"polars", "parquet"},
          check_specs=[contract_spec("friend_labels")])
def friend_labels(context: dg.AssetExecutionContext, storage: StorageResource, world: WorldResource) -> dg.MaterializeResult:
    """Friend labels (§2.6): positives by overlap >= 0.6 or co-attendance >= 2, negatives
    from random same-city pairs with overlap < 0.3 and no co-attendance, attendance sampled."""
    return stage_table(
        context,
        storage,
        world,
        "friend_labels",
        lambda: social.build_friend_labels(
            world.world_config(),
            _read(context, storage, "users"),
            _read(context, storage, "user_user_edges"),
            _read(context, storage, "interactions"),
        ),
    )


@dg.asset(group_name=GROUP, code_version=CODE, deps=["users", "similar_user_candidates"], kinds={"polars", "parquet"},
          check_specs=[contract_spec("user_blocks")])
def user_blocks(context: dg.AssetExecutionContext, storage: StorageResource, world: WorldResource) -> dg.MaterializeResult:
    """User blocks (blocker -> blocked): people recommendation must never suggest them."""
    return stage_table(
        context,
        storage,
        world,
        "user_blocks",
        lambda: social.build_user_blocks(
            world.world_config(), _read(context, storage, "users"), _read(context, storage, "similar_user_candidates")
        ),
    )


WORLD_TABLE_ASSETS = [places, users, interactions, user_user_edges, friend_labels, user_blocks]
assert {a.key.path[-1] for a in WORLD_TABLE_ASSETS} == set(SCHEMAS)

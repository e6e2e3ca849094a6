"""Stage 3, the graph: the train/val/test split and the leakage-free training graph (§3)."""

import dagster as dg
import polars as pl

from graphrec_pipeline.defs.metadata import code_version, file_version, parquet_metadata
from graphrec_pipeline.defs.resources import StorageResource, WorldResource
from graphrec_pipeline.defs.settings import build, config_from
from graphrec_pipeline.graph.build import build_graph
from graphrec_pipeline.artifacts.graph import EDGE_TYPES, PU, UP, UU, save_graph
from graphrec_pipeline.artifacts import GRAPH_FILE
from graphrec_pipeline.graph.leakage import leakage_report
from graphrec_pipeline.graph.split import SplitConfig, friend_label_split, interaction_split
from graphrec_pipeline.lineage import stamp_graph
from graphrec_pipeline.profiles import markdown_table
from graphrec_pipeline.storage import Storage

GROUP = "graph"
CODE = code_version("graph", "tables", "columns", "timeslots", "coattendance")


SplitSettings = config_from("SplitSettings", "Temporal interaction split and random friend-pair split "
                            "(``SplitConfig``); the defaults are its.", SplitConfig,
                            exclude=frozenset({"positive_rating"}))  # the world's setting (WorldResource)


def _counts(frame: pl.DataFrame) -> dict:
    counts = frame["split"].value_counts()
    return {f"rows_{s}": int(n) for s, n in counts.iter_rows()}


@dg.asset(group_name=GROUP, code_version=CODE, deps=["published_tables"], kinds={"duckdb", "parquet"})
def interaction_split_table(
    context: dg.AssetExecutionContext, config: SplitSettings, storage: StorageResource, world: WorldResource
) -> dg.MaterializeResult:
    """``interaction_split`` (user_id, place_id, timestamp, split): the last
    ``test_fraction`` of the horizon is test, the ``val_fraction`` before it val. An
    imported log keeps the split its features were derived with (``event_split``)."""
    store = storage.for_run(context)
    if world.imported_log:
        cfg = build(SplitConfig, config)
        if (cfg.val_fraction, cfg.test_fraction) != (SplitConfig.val_fraction, SplitConfig.test_fraction):
            raise dg.Failure("an imported log is split at import (its split column, else the default fractions "
                             f"{SplitConfig.val_fraction} / {SplitConfig.test_fraction}), and its features come from "
                             "that split's training events: leave val_fraction and test_fraction at their defaults")
        context.log.info("the imported log's split (event_split) is used as it is")
        split = store.read_table("event_split")
    else:
        split = interaction_split(store.read_table("interactions"), build(SplitConfig, config))
    store.write_table("interaction_split", split.to_arrow(), staged=False)
    context.log.info(f"interaction split: {_counts(split)}")
    return dg.MaterializeResult(metadata={**parquet_metadata(store, "interaction_split"), **_counts(split)},
                                data_version=file_version(store, store.table_file("interaction_split")))


@dg.asset(group_name=GROUP, code_version=CODE, deps=["published_tables"], kinds={"duckdb", "parquet"})
def friend_label_split_table(
    context: dg.AssetExecutionContext, config: SplitSettings, storage: StorageResource
) -> dg.MaterializeResult:
    """``friend_label_split`` (user_u, user_v, split): a seeded random split by pair."""
    store = storage.for_run(context)
    split = friend_label_split(store.read_table("friend_labels"), build(SplitConfig, config))
    store.write_table("friend_label_split", split.to_arrow(), staged=False)
    return dg.MaterializeResult(metadata={**parquet_metadata(store, "friend_label_split"), **_counts(split)},
                                data_version=file_version(store, store.table_file("friend_label_split")))


LEAKAGE_CHECK = dg.AssetCheckSpec(
    "training_graph_has_no_leakage", asset="training_graph", blocking=True,
    description="No validation or test interaction is an edge of the training graph, no validation or test friend "
    "pair is a social edge, and every edge and edge feature is what training data alone gives (co-attendance "
    "counted on training visits). Audited on the saved graph, in the graph's own step.")


@dg.asset(group_name=GROUP, code_version=CODE, deps=[interaction_split_table, friend_label_split_table],
          kinds={"pytorch", "safetensors"}, check_specs=[LEAKAGE_CHECK])
def training_graph(context: dg.AssetExecutionContext, storage: StorageResource, world: WorldResource) -> dg.MaterializeResult:
    """The PyG ``HeteroData`` of §3 over **training** data only: user (148) and place (114)
    nodes, interacts / rev_interacts edges (12 features, one per training user-place pair)
    and social edges (3 features) minus every val/test friend pair. Saved as safetensors."""
    store = storage.for_run(context)
    data = build_graph(
        store.read_table("users"),
        store.read_table("places"),
        store.read_table("interactions"),
        store.read_table("interaction_split"),
        store.read_table("user_user_edges"),
        store.read_table("friend_label_split"),
        world.neighborhoods_per_city,
    )
    path = save_graph(store, data)
    for kind, key in (("user", "user_id"), ("place", "place_id")):
        ids = pl.DataFrame({key: pl.int_range(data[kind].num_nodes, eager=True), "index": pl.int_range(data[kind].num_nodes, eager=True)})
        store.write_table(f"graph/{kind}_id_map", ids.to_arrow(), staged=False)
    stamp_graph(store)
    shapes = pl.DataFrame(
        [{"tensor": f"{t}.x", "shape": str(tuple(data[t].x.shape))} for t in ("user", "place")]
        + [{"tensor": "__".join(et), "shape": str(tuple(data[et].edge_attr.shape))} for et in EDGE_TYPES]
    )
    context.log.info(f"training graph: {data}")
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(path),
            "tensors": dg.MetadataValue.md(markdown_table(shapes)),
            "users": data["user"].num_nodes,
            "places": data["place"].num_nodes,
            "interacts_edges": int(data[UP].edge_index.shape[1]),
            "rev_interacts_edges": int(data[PU].edge_index.shape[1]),
            "social_edges_directed": int(data[UU].edge_index.shape[1]),
        },
        data_version=file_version(store, GRAPH_FILE),
        check_results=[leakage_result(store, world)],
    )


def leakage_result(store: Storage, world: WorldResource) -> dg.AssetCheckResult:
    """The leakage audit (``graph/leakage.py``) of the graph as saved, from the tables."""
    report = leakage_report(
        store.read_tensors(GRAPH_FILE),
        store.read_table("users"),
        store.read_table("interactions"),
        store.read_table("interaction_split"),
        store.read_table("friend_labels"),
        store.read_table("user_user_edges"),
        store.read_table("friend_label_split"),
        world.neighborhoods_per_city,
    )
    return dg.AssetCheckResult(check_name=LEAKAGE_CHECK.name, passed=sum(report.values()) == 0, metadata=report)

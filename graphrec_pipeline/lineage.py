"""Which inputs each artifact was made from, and whether a release's pieces agree.

Each artifact records the release that made it and the digest of what it was made from,
in its own manifest:

    world_manifest.json    the six world tables' digests (``world_sha256`` over them)
    graph/manifest.json    the world it was built from, and the two splits' digests
    model/manifest.json    the training graph's digest
    serving/embeddings.json, indexes/<v>/manifest.json   the model's digest

The ids are dense in every world, so foreign keys cannot tell two worlds apart; these
digests can. :func:`lineage_problems` walks the chain; the release step refuses to go live
and the recommender refuses to answer while it finds anything.
"""

from __future__ import annotations

import hashlib
import json

from graphrec_pipeline.artifacts import (
    EMBEDDINGS_MANIFEST,
    GRAPH_FILE,
    GRAPH_MANIFEST,
    MODEL_MANIFEST,
    MODEL_WEIGHTS,
    WORLD_MANIFEST,
)
from graphrec_pipeline.artifacts.indexes import live_manifest
from graphrec_pipeline.storage import Storage
from graphrec_pipeline.tables import WORLD_TABLES

SPLITS = ("interaction_split", "friend_label_split")


def table_digests(store: Storage, names) -> dict[str, str]:
    return {name: store.digest(f"{name}.parquet") for name in names}


def world_sha256(tables: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(tables, sort_keys=True).encode()).hexdigest()


def stamp_world(store: Storage, extra: dict) -> dict:
    tables = table_digests(store, WORLD_TABLES)
    manifest = {**extra, "release": store.release, "tables": tables, "world_sha256": world_sha256(tables)}
    store.write_json(WORLD_MANIFEST, manifest)
    return manifest


def stamp_graph(store: Storage) -> None:
    store.write_json(GRAPH_MANIFEST, {"release": store.release,
                                      "world_sha256": _read(store, WORLD_MANIFEST)["world_sha256"],
                                      "splits": table_digests(store, SPLITS)})


def stamp_model(store: Storage) -> None:
    store.write_json(MODEL_MANIFEST, {"release": store.release, "graph_sha256": store.digest(GRAPH_FILE)})


def _read(store: Storage, name: str) -> dict:
    try:
        manifest = store.read_json(name)
    except ValueError as err:
        raise ValueError(f"{name} is corrupt ({err})") from err
    if manifest is None:
        raise FileNotFoundError(f"{name} is missing")
    return manifest


def lineage_problems(store: Storage) -> list[str]:
    """What disagrees along world -> splits and graph -> model -> embeddings -> indexes;
    each problem names the asset to materialize."""
    problems: list[str] = []
    try:
        world = _read(store, WORLD_MANIFEST)
        if world.get("tables") != table_digests(store, WORLD_TABLES):
            problems.append("the world tables differ from world_manifest.json: materialize published_tables")
        graph = _read(store, GRAPH_MANIFEST)
        if graph.get("world_sha256") != world.get("world_sha256"):
            problems.append("the training graph was built from another world: materialize interaction_split_table, "
                            "friend_label_split_table, training_graph and what follows")
        elif graph.get("splits") != table_digests(store, SPLITS):
            problems.append("the splits changed since the training graph was built: materialize training_graph")
        if _read(store, MODEL_MANIFEST).get("graph_sha256") != store.digest(GRAPH_FILE):
            problems.append("the model was trained on another training graph: materialize graphrec_model")
        model_sha = store.digest(MODEL_WEIGHTS)
        if _read(store, EMBEDDINGS_MANIFEST).get("model_sha256") != model_sha:
            problems.append("the embeddings were made by another model: materialize user_embeddings")
        if live_manifest(store)[1].get("model_sha256") != model_sha:
            problems.append("the ANN indexes were built from another model's embeddings: materialize ann_indexes")
    except (FileNotFoundError, ValueError) as err:
        problems.append(str(err))
    return problems

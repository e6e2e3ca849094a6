"""A complete release built outside Dagster: the world's tables and splits, the training
graph, a trained model, its embeddings and per-city indexes, checked, sealed and made live
in one switch.

The pipeline's assets write the same pieces one step at a time, and its ``release`` step
ends with :func:`make_live`; a test or a notebook that holds a world and a model in memory
calls :func:`build_release` and gets a data directory that ``graphrec``, the HTTP API and
the ``recommender`` resource serve like any run's.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from pathlib import Path

import polars as pl

from graphrec_pipeline.artifacts.graph import save_graph
from graphrec_pipeline.lineage import lineage_problems, stamp_graph, stamp_model, stamp_world
from graphrec_pipeline.model.graphrec import GraphRec
from graphrec_pipeline.model.saved import save_model
from graphrec_pipeline.releases import DataDir, ReleaseError
from graphrec_pipeline.serving.city_indexes import IndexSettings, build_city_indexes, save_city_indexes
from graphrec_pipeline.serving.embeddings import export_embeddings
from graphrec_pipeline.artifacts.embeddings import Embeddings
from graphrec_pipeline.storage import Storage
from graphrec_pipeline.tables import WORLD_TABLES, to_arrow


def publish_world(store: Storage, tables: Mapping[str, pl.DataFrame], interaction_split: pl.DataFrame,
                  friend_label_split: pl.DataFrame, source: dict) -> dict:
    """The six world tables in their exact Parquet types, the two splits, and the world's
    manifest (``source``: how it was made); returns the manifest."""
    for name in WORLD_TABLES:
        store.write_table(name, to_arrow(name, tables[name]), staged=False)
    store.write_table("interaction_split", interaction_split.to_arrow(), staged=False)
    store.write_table("friend_label_split", friend_label_split.to_arrow(), staged=False)
    return stamp_world(store, source)


def publish_graph(store: Storage, graph) -> None:
    """The training graph's tensors and what they were built from."""
    save_graph(store, graph)
    stamp_graph(store)


def publish_model(store: Storage, model: GraphRec) -> None:
    """The weights and config, and the graph they were trained on."""
    save_model(store, model)
    stamp_model(store)


def publish_serving(store: Storage, model: GraphRec, graph, user_city, place_city,
                    settings: IndexSettings = IndexSettings(), log: Callable[[str], None] = print) -> Embeddings:
    """The embedding tables of one full forward pass and a new version of the per-city
    indexes over them."""
    emb = export_embeddings(store, model, graph, user_city, place_city)
    built, _ = build_city_indexes(emb, settings, log=log)
    save_city_indexes(store, built)
    return emb


def make_live(data: DataDir, run_id: str, manifest: dict, keep: int | None = None,
              min_age_hours: float = 0.0) -> dict:
    """Check that the release's pieces agree (world -> graph -> model -> embeddings ->
    indexes), record every file's digest with ``manifest``, switch readers to it in one
    write, prune to ``keep`` releases and free the data directory; returns the sealed
    manifest. Raises :class:`ReleaseError` naming every disagreement (nothing goes live)."""
    problems = lineage_problems(data.storage(run_id))
    if problems:
        raise ReleaseError(f"release {run_id} not made live: " + "; ".join(problems))
    sealed = data.seal(run_id, manifest)
    data.switch(run_id, verify=False)  # seal just recorded every digest
    sealed["pruned"] = data.prune(keep, min_age_hours) if keep is not None else []
    data.release_lock(run_id)
    return sealed


def build_release(data_dir: str | Path | DataDir, tables: Mapping[str, pl.DataFrame], interaction_split: pl.DataFrame,
                  friend_label_split: pl.DataFrame, graph, model: GraphRec, *, run_id: str | None = None,
                  source: dict | None = None, index_settings: IndexSettings = IndexSettings(),
                  log: Callable[[str], None] = print) -> str:
    """Write every piece of a release into ``data_dir`` and make it live; returns its id.

    ``tables`` are the six world tables (§2), the splits those the ``graph`` was built
    from, and ``model`` trained on that graph; ``run_id`` defaults to a new UUID. The data
    directory's lock is held while writing, as a pipeline run holds it."""
    data = data_dir if isinstance(data_dir, DataDir) else DataDir(data_dir)
    run_id = run_id or str(uuid.uuid4())
    store = data.for_run(run_id)
    try:
        publish_world(store, tables, interaction_split, friend_label_split, source or {"source": "build_release"})
        publish_graph(store, graph)
        publish_model(store, model)
        publish_serving(store, model, graph, tables["users"].sort("user_id")["home_city_id"].to_numpy(),
                        tables["places"].sort("place_id")["city_id"].to_numpy(), index_settings, log)
        make_live(data, run_id, {"run_id": run_id, "previous": data.live_id()})
    except BaseException:
        data.release_lock(run_id)  # the live release is untouched; the directory is free again
        raise
    return run_id

"""Shared fixtures: a tiny world as frames, and the small config materialized once."""

from pathlib import Path

import dagster as dg
import pytest
import yaml

from graphrec_pipeline.definitions import defs
from graphrec_pipeline.world.config import WorldConfig
from graphrec_pipeline.world.generate import generate_world

REPO = Path(__file__).resolve().parents[1]
TINY = WorldConfig(n_users=300, n_places=300, n_cities=3, seed=5)


@pytest.fixture(scope="session")
def tiny_world():
    return generate_world(TINY)


def small_run_config() -> dict:
    return yaml.safe_load((REPO / "configs" / "small.yaml").read_text())


def materialize(data_dir: Path, run_config: dict | None = None, raise_on_error: bool = True, job: str = "full_pipeline"):
    """Run a job's assets and checks in process against ``data_dir`` (training and
    evaluation settings from ``configs/small.yaml`` unless the run config gives its own)."""
    small = small_run_config()
    config = {**(run_config or small)}
    resources = dict(config.get("resources", {}))
    resources["storage"] = {"config": {"data_dir": str(data_dir)}}
    config["resources"] = resources
    if job == "full_pipeline":
        config.setdefault("ops", small["ops"])
    else:
        config.pop("ops", None)
    job = defs.resolve_job_def(job)
    return job.execute_in_process(run_config=config, instance=dg.DagsterInstance.ephemeral(), raise_on_error=raise_on_error)


@pytest.fixture(scope="session")
def small_world(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("small")
    result = materialize(data_dir)
    return data_dir, result


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """A 1k world, its split and graph, and a model trained for a few hundred steps."""
    from graphrec_pipeline.graph.build import build_graph
    from graphrec_pipeline.graph.split import SplitConfig, friend_label_split, heldout_positives, interaction_split
    from graphrec_pipeline.model.config import ModelConfig
    from graphrec_pipeline.train.fit import Inputs, fit
    from graphrec_pipeline.train.trainer import TrainConfig

    cfg = WorldConfig(n_users=1000, n_places=1000, seed=11)
    world = generate_world(cfg)
    sc = SplitConfig()
    split = interaction_split(world["interactions"], sc)
    fsplit = friend_label_split(world["friend_labels"], sc)
    graph = build_graph(world["users"], world["places"], world["interactions"], split,
                        world["user_user_edges"], fsplit, cfg.neighborhoods_per_city)
    inputs = Inputs(world["users"], world["places"], world["interactions"], split, world["friend_labels"],
                    fsplit, world["user_user_edges"], graph)
    train_cfg = TrainConfig(max_epochs=12, steps_per_epoch=10, place_examples=4096, friend_examples=2048,
                            eval_users=300, patience=12, warmup_steps=10, decay_steps=120)
    result = fit(inputs, ModelConfig(n_cities=cfg.n_cities), train_cfg, sc.positive_rating, log=lambda m: None)
    val = heldout_positives(world["interactions"], split, "val", sc.positive_rating)
    return {"cfg": cfg, "world": world, "inputs": inputs, "result": result, "val": val, "split_cfg": sc}


@pytest.fixture(scope="session")
def served(trained, tmp_path_factory):
    """The trained 1k model published as the serving assets: tables, model, embeddings and
    exact per-city indexes in a data directory, and a :class:`Recommender` over them."""
    from graphrec_pipeline.graph.build import GRAPH_FILE, graph_to_tensors
    from graphrec_pipeline.serving.city_indexes import IndexSettings, build_city_indexes, save_city_indexes
    from graphrec_pipeline.serving.embeddings import export_embeddings
    from graphrec_pipeline.serving.recommender import Recommender
    from graphrec_pipeline.storage import Storage
    from graphrec_pipeline.tables import to_arrow
    from graphrec_pipeline.train.fit import save_model

    store = Storage(tmp_path_factory.mktemp("served"))
    world = trained["world"]
    for name, frame in world.items():
        if name in ("users", "places", "interactions", "user_user_edges", "friend_labels", "user_blocks"):
            store.write_table(name, to_arrow(name, frame), staged=False)
    model = trained["result"].model
    save_model(store, model)
    store.write_tensors(GRAPH_FILE, graph_to_tensors(trained["inputs"].graph))
    emb = export_embeddings(store, model, trained["inputs"].graph, world["users"]["home_city_id"].to_numpy(),
                            world["places"]["city_id"].to_numpy())
    built, _ = build_city_indexes(emb, IndexSettings(), log=lambda m: None)
    save_city_indexes(store, built)
    store.refresh_duckdb()
    return {"store": store, "emb": emb, "recommender": Recommender(store), "world": world}

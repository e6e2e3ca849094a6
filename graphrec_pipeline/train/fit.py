"""Train the model from the tables and the training graph: the inputs a run reads, and
:func:`fit`, which trains in this process or on data-parallel ranks. Saving and loading
the model is ``model/saved.py``; the validator a run stops on is the caller's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import polars as pl

from graphrec_pipeline.artifacts.graph import load_graph
from graphrec_pipeline.model.config import ModelConfig
from graphrec_pipeline.model.graphrec import GraphRec
from graphrec_pipeline.storage import Storage
from graphrec_pipeline.train.data import TrainingData, prepare
from graphrec_pipeline.train.distributed import train_parallel
from graphrec_pipeline.train.trainer import TrainConfig, TrainResult, Validation, train


@dataclass
class Inputs:
    """Tables and the graph a training or evaluation run reads."""

    users: pl.DataFrame
    places: pl.DataFrame
    interactions: pl.DataFrame
    split: pl.DataFrame
    labels: pl.DataFrame
    friend_split: pl.DataFrame
    edges: pl.DataFrame
    graph: object
    blocks: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema={"user_id": pl.Int64, "blocked_user_id": pl.Int64}))

    @classmethod
    def load(cls, store: Storage) -> "Inputs":
        return cls(
            users=store.read_table("users"),
            places=store.read_table("places"),
            interactions=store.read_table("interactions"),
            split=store.read_table("interaction_split"),
            labels=store.read_table("friend_labels"),
            friend_split=store.read_table("friend_label_split"),
            edges=store.read_table("user_user_edges"),
            graph=load_graph(store),
            blocks=store.read_table("user_blocks"),
        )

    def training_data(self, positive_rating: float) -> TrainingData:
        return prepare(self.graph, self.users, self.places, self.interactions, self.split, self.labels,
                       self.friend_split, positive_rating)

    def train_pairs(self) -> pl.DataFrame:
        return self.interactions.filter(self.split["split"] == "train").select("user_id", "place_id").unique()


def fit(data: TrainingData, model_cfg: ModelConfig, train_cfg: TrainConfig,
        validate: Callable[[GraphRec], float | Validation], log=print) -> TrainResult:
    """Train on ``data`` until ``validate`` (validation NDCG@20 of a model) stops gaining:
    in this process, or on ``train_cfg.ranks`` data-parallel processes
    (``train/distributed.py``), ``validate`` running here on rank 0's weights."""
    if train_cfg.ranks > 1:
        return train_parallel(model_cfg, data, train_cfg, validate, log)
    return train(model_cfg, data, train_cfg, validate=validate, log=log)

"""Train the model from the tables and the training graph, and save / load it.

The saved model is two files: ``model/graphrec.safetensors`` (the state dict) and
``model/config.json`` (the :class:`ModelConfig`); loading never unpickles anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

from graphrec_pipeline.evaluation.two_stage import TwoStageValidator
from graphrec_pipeline.graph.build import GRAPH_FILE, graph_from_tensors
from graphrec_pipeline.graph.split import heldout_visits
from graphrec_pipeline.model.config import ModelConfig
from graphrec_pipeline.model.graphrec import GraphRec
from graphrec_pipeline.storage import Storage
from graphrec_pipeline.train.data import TrainingData, prepare
from graphrec_pipeline.train.trainer import TrainConfig, TrainResult, train

MODEL_WEIGHTS = "model/graphrec.safetensors"
MODEL_CONFIG = "model/config.json"


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
            graph=graph_from_tensors(store.read_tensors(GRAPH_FILE)),
            blocks=store.read_table("user_blocks"),
        )

    def training_data(self, positive_rating: float) -> TrainingData:
        return prepare(self.graph, self.users, self.places, self.interactions, self.split, self.labels,
                       self.friend_split, positive_rating)

    def train_pairs(self) -> pl.DataFrame:
        return self.interactions.filter(self.split["split"] == "train").select("user_id", "place_id").unique()


def validator(inputs: Inputs, data: TrainingData, train_cfg: TrainConfig, positive_rating: float) -> TwoStageValidator:
    """Validation NDCG@20 on the validation visits, as training (and LightGCN) early-stop on."""
    return TwoStageValidator(
        inputs.graph, data.user_city, data.place_city, inputs.train_pairs(),
        heldout_visits(inputs.interactions, inputs.split, "val", positive_rating),
        max_users=train_cfg.eval_users, m=train_cfg.retrieval_candidates, seed=train_cfg.seed,
    )


def fit(inputs: Inputs, model_cfg: ModelConfig, train_cfg: TrainConfig, positive_rating: float, log=print) -> TrainResult:
    data = inputs.training_data(positive_rating)
    return train(model_cfg, data, train_cfg, validate=validator(inputs, data, train_cfg, positive_rating), log=log)


def save_model(store: Storage, model: GraphRec) -> None:
    store.write_tensors(MODEL_WEIGHTS, {k: v.contiguous() for k, v in model.state_dict().items()})
    store.write_bytes(MODEL_CONFIG, model.cfg.to_json().encode())


class ModelMismatchError(ValueError):
    """Saved weights that do not fit this code's :class:`GraphRec` (trained by older code)."""


def load_model(store: Storage) -> GraphRec:
    try:
        cfg = ModelConfig.from_json(store.read_bytes(MODEL_CONFIG).decode())
    except (ValueError, KeyError, TypeError) as err:
        raise ModelMismatchError(f"{store.location.url(MODEL_CONFIG)} is not a model config this code reads "
                                 f"({type(err).__name__}: {err})") from None
    model = GraphRec(cfg)
    weights = store.read_tensors(MODEL_WEIGHTS)
    missing = sorted(set(model.state_dict()) - set(weights))
    unexpected = sorted(set(weights) - set(model.state_dict()))
    if missing or unexpected:
        raise ModelMismatchError(
            f"{MODEL_WEIGHTS} does not fit this code's model (missing {missing[:4]}, unexpected {unexpected[:4]}): "
            "it was trained by another version; materialize 'graphrec_model' and what depends on it")
    model.load_state_dict(weights)
    model.eval()
    return model

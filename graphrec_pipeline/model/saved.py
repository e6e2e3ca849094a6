"""The trained model on storage (files: ``artifacts/model.py``). Loading never unpickles
anything, and a file this code cannot read is a :class:`ModelMismatchError` naming it."""

from __future__ import annotations

from graphrec_pipeline.artifacts import MODEL_CONFIG, MODEL_WEIGHTS
from graphrec_pipeline.artifacts.model import load_model_config, load_model_weights, save_model_files
from graphrec_pipeline.model.config import ModelConfig
from graphrec_pipeline.model.graphrec import GraphRec
from graphrec_pipeline.storage import Storage


def save_model(store: Storage, model: GraphRec) -> None:
    save_model_files(store, model.cfg.to_json(), model.state_dict())


class ModelMismatchError(ValueError):
    """Saved weights that do not fit this code's :class:`GraphRec` (trained by older code)."""


def load_model(store: Storage) -> GraphRec:
    try:
        cfg = ModelConfig.from_json(load_model_config(store))
    except (ValueError, KeyError, TypeError) as err:
        raise ModelMismatchError(f"{store.location.url(MODEL_CONFIG)} is not a model config this code reads "
                                 f"({type(err).__name__}: {err})") from None
    model = GraphRec(cfg)
    weights = load_model_weights(store)
    missing = sorted(set(model.state_dict()) - set(weights))
    unexpected = sorted(set(weights) - set(model.state_dict()))
    if missing or unexpected:
        raise ModelMismatchError(
            f"{MODEL_WEIGHTS} does not fit this code's model (missing {missing[:4]}, unexpected {unexpected[:4]}): "
            "it was trained by another version; materialize 'graphrec_model' and what depends on it")
    model.load_state_dict(weights)
    model.eval()
    return model

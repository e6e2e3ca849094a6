"""The trained model on storage: ``model/graphrec.safetensors`` (the state dict) and
``model/config.json`` (the :class:`ModelConfig`). Loading never unpickles anything, and a
file this code cannot read is a :class:`ModelMismatchError` naming it."""

from __future__ import annotations

from graphrec_pipeline.artifacts import MODEL_CONFIG, MODEL_WEIGHTS
from graphrec_pipeline.model.config import ModelConfig
from graphrec_pipeline.model.graphrec import GraphRec
from graphrec_pipeline.storage import Storage


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

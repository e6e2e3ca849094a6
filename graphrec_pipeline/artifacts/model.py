"""The trained model's files: its state dict (``MODEL_WEIGHTS``, safetensors) and its
config (``MODEL_CONFIG``, the JSON of ``ModelConfig``). Reading never unpickles anything;
``model/saved.py`` turns the pair into a ``GraphRec`` and checks that they fit.
"""

from __future__ import annotations

import torch

from graphrec_pipeline.artifacts import MODEL_CONFIG, MODEL_WEIGHTS
from graphrec_pipeline.storage import Storage


def save_model_files(store: Storage, config_json: str, weights: dict[str, torch.Tensor]) -> None:
    """The weights, then the config (each file written whole)."""
    store.write_tensors(MODEL_WEIGHTS, {k: v.contiguous() for k, v in weights.items()})
    store.write_bytes(MODEL_CONFIG, config_json.encode())


def load_model_config(store: Storage) -> str:
    """The config's JSON text (bytes that are not UTF-8 raise ``UnicodeDecodeError``)."""
    return store.read_bytes(MODEL_CONFIG).decode()


def load_model_weights(store: Storage) -> dict[str, torch.Tensor]:
    return store.read_tensors(MODEL_WEIGHTS)

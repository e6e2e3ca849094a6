"""The LightGCN baseline's files: its user and place embeddings (``LIGHTGCN_FILE``,
safetensors) and a manifest (``LIGHTGCN_MANIFEST``) with the training key they are a
function of (the graph's digest among it) and how training went. An evaluation refuses
embeddings trained on another graph; a run whose key matches keeps them.
"""

from __future__ import annotations

import numpy as np
import torch

from graphrec_pipeline.artifacts import GRAPH_FILE, LIGHTGCN_FILE, LIGHTGCN_MANIFEST
from graphrec_pipeline.storage import Storage


def save_lightgcn(store: Storage, user: np.ndarray, place: np.ndarray, manifest: dict) -> None:
    """The embeddings, then the manifest (its ``graph_sha256`` names the graph they fit)."""
    store.write_tensors(LIGHTGCN_FILE, {"user": torch.from_numpy(np.ascontiguousarray(user)),
                                        "place": torch.from_numpy(np.ascontiguousarray(place))})
    store.write_json(LIGHTGCN_MANIFEST, {"release": store.release, **manifest})


def current_lightgcn(store: Storage, key: dict) -> dict | None:
    """The manifest of embeddings already in the release (carried over from the live one)
    whose manifest holds every item of ``key``; else None."""
    try:
        manifest = store.read_json(LIGHTGCN_MANIFEST)
    except ValueError:
        return None
    if manifest is None or not store.location.exists(LIGHTGCN_FILE):
        return None
    return manifest if all(manifest.get(k) == v for k, v in key.items()) else None


def load_lightgcn(store: Storage) -> tuple[np.ndarray, np.ndarray]:
    """(user, place) embeddings of the LightGCN baseline trained on this release's graph."""
    manifest = store.read_json(LIGHTGCN_MANIFEST)
    if manifest is None or not store.location.exists(LIGHTGCN_FILE):
        raise FileNotFoundError(f"no LightGCN baseline ({LIGHTGCN_FILE}): materialize lightgcn_baseline")
    if manifest.get("graph_sha256") != store.digest(GRAPH_FILE):
        raise ValueError(f"{LIGHTGCN_FILE} was trained on another training graph: materialize lightgcn_baseline")
    tensors = store.read_tensors(LIGHTGCN_FILE)
    return tensors["user"].numpy(), tensors["place"].numpy()
